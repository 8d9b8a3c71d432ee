"""The classifier: class mapping, metrics, augmentation, model files, cut-out loading and training."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from classifier.augment import Augmentation
from classifier.classes import class_names, map_labels
from classifier.data import Preprocessing, load_cutouts
from classifier.errors import ClassifierError
from classifier.metrics import Report, confusion_matrix
from classifier.model import build_model
from classifier.modelfile import ModelInfo, load_model, read_info, save_model
from datagen.cutout import cutout
from datagen.generate import generate
from datagen.recipe import parse_recipe
from datagen.store import open_samples

runner = CliRunner()
MEANINGS = "amorphous monocrystalline polycrystalline"


@pytest.fixture(scope="module")
def pattern_store(tmp_path_factory):
    """A small pattern dataset (easy classes: dots against sinusoids), 40 per class, 64 px."""
    from tests.conftest import TINY

    data = {**TINY, "name": "clf", "seed": 11, "chunk_size": 8,
            "classes": {"amorphous": 40, "monocrystalline": 40, "polycrystalline": 40},
            "pattern": {"image_size": 64, "diameter_px": [30, 56]}}
    path = tmp_path_factory.mktemp("clf") / "clf.zarr"
    generate(parse_recipe(data), path, workers=0)
    return path


# --- classes -------------------------------------------------------------------------------------------

def test_labels_map_by_name_not_by_code():
    labels = np.array([0, 1, 2, 2, 0])
    assert map_labels(labels, [0, 1, 2], MEANINGS, "three").tolist() == [0, 1, 2, 2, 0]
    # a dataset that numbers its classes in another order
    assert map_labels(labels, [0, 1, 2], "polycrystalline amorphous monocrystalline", "three").tolist() == [2, 0, 1, 1, 2]
    assert map_labels(labels, [0, 1, 2], MEANINGS, "two").tolist() == [0, 1, 1, 1, 0]
    assert class_names("two") == ("amorphous", "crystalline")


def test_label_mapping_errors_name_the_culprit():
    with pytest.raises(ClassifierError, match="dataset class 'quasicrystal'"):
        map_labels(np.array([0]), [0, 1], "amorphous quasicrystal", "three")
    with pytest.raises(ClassifierError, match="values outside flag_values"):
        map_labels(np.array([3]), [0, 1, 2], MEANINGS, "three")
    with pytest.raises(ClassifierError, match="unknown class mode 'four'"):
        class_names("four")


# --- metrics -------------------------------------------------------------------------------------------

def test_confusion_matrix_counts_every_pair():
    rng = np.random.default_rng(0)
    t, p = rng.integers(0, 3, 500), rng.integers(0, 3, 500)
    cm = confusion_matrix(t, p, 3)
    for i in range(3):
        for j in range(3):
            assert cm[i, j] == np.sum((t == i) & (p == j))
    assert cm.sum() == 500


def test_metrics_and_reject_rule_on_a_worked_example():
    # true: a a a m m p ; predicted (confidence): a(.9) a(.7) m(.95) m(.85) a(.6) p(.99)
    classes = ("amorphous", "monocrystalline", "polycrystalline")
    y = np.array([0, 0, 0, 1, 1, 2])
    pred, conf = np.array([0, 0, 1, 1, 0, 2]), np.array([0.9, 0.7, 0.95, 0.85, 0.6, 0.99])
    probs = np.full((6, 3), 0.0)
    probs[np.arange(6), pred] = conf
    for n in range(6):  # the rest of the probability on the next class
        probs[n, (pred[n] + 1) % 3] = 1 - conf[n]
    r = Report(classes, y, probs, threshold=0.8)
    s = r.summary()
    assert s["accuracy"] == pytest.approx(4 / 6)
    assert s["precision"] == pytest.approx({"amorphous": 2 / 3, "monocrystalline": 1 / 2, "polycrystalline": 1.0})
    assert s["recall"] == pytest.approx({"amorphous": 2 / 3, "monocrystalline": 1 / 2, "polycrystalline": 1.0})
    # kept (>= 0.8): samples 0, 2, 3, 5 -> right: 0, 3, 5
    assert s["coverage"] == pytest.approx(4 / 6) and s["accuracy_kept"] == pytest.approx(3 / 4)
    assert r.labels() == ["amorphous", "unknown", "monocrystalline", "monocrystalline", "unknown", "polycrystalline"]
    t, cov, acc = r.coverage_curve(np.array([0.0, 0.8, 0.999]))
    assert cov.tolist() == pytest.approx([1.0, 4 / 6, 0.0]) and acc[0] == pytest.approx(s["accuracy"])
    assert np.isnan(acc[2])


def test_report_plot_writes_a_png(tmp_path):
    rng = np.random.default_rng(1)
    probs = rng.dirichlet([1, 1, 1], 40)
    path = Report(class_names("three"), rng.integers(0, 3, 40), probs, 0.8).plot(tmp_path / "cm.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# --- augmentation --------------------------------------------------------------------------------------

def _d4(img: torch.Tensor) -> list[torch.Tensor]:
    rots = [torch.rot90(img, k, (-2, -1)) for k in range(4)]
    return rots + [r.flip(-1) for r in rots]


def test_dihedral_augmentation_draws_every_symmetry_of_the_square_and_nothing_else():
    x = torch.arange(16.0).reshape(1, 1, 4, 4).repeat(400, 1, 1, 1)
    aug = Augmentation(dihedral=True, contrast=(1.0, 1.0), noise_sigma=(0.0, 0.0))
    out = aug(x, torch.Generator().manual_seed(0))
    images = _d4(x[0])
    which = [next(k for k, im in enumerate(images) if torch.equal(o, im)) for o in out]  # raises if none fits
    counts = np.bincount(which, minlength=8)
    assert (counts > 25).all(), counts  # each of the 8 elements about 50 times


def test_augmentation_off_is_identity_and_noise_has_the_drawn_size():
    x = torch.randn(8, 1, 32, 32, generator=torch.Generator().manual_seed(2))
    assert torch.equal(Augmentation.none()(x), x)
    noisy = Augmentation(dihedral=False, contrast=(1.0, 1.0), noise_sigma=(0.5, 0.5))(x, torch.Generator().manual_seed(3))
    assert (noisy - x).std().item() == pytest.approx(0.5, rel=0.05)


# --- model and model file ------------------------------------------------------------------------------

def test_one_channel_resnet_gives_one_output_per_class():
    torch.manual_seed(0)
    model = build_model("resnet18", 2).eval()
    assert model.conv1.in_channels == 1
    with torch.no_grad():
        assert model(torch.randn(3, 1, 64, 64)).shape == (3, 2)
    with pytest.raises(ClassifierError, match="unknown architecture 'resnet7'"):
        build_model("resnet7", 3)


def test_rgb_weights_file_starts_the_grey_network(tmp_path):
    from torchvision.models import resnet18

    torch.manual_seed(0)
    rgb = resnet18(num_classes=1000)  # as ImageNet weights come: three channels, 1000 classes
    torch.save(rgb.state_dict(), tmp_path / "rgb.pth")
    grey = build_model("resnet18", 3, weights=tmp_path / "rgb.pth")
    torch.testing.assert_close(grey.conv1.weight, rgb.conv1.weight.sum(1, keepdim=True))
    torch.testing.assert_close(grey.layer3[1].conv2.weight, rgb.layer3[1].conv2.weight)
    assert grey.fc.out_features == 3
    with pytest.raises(ClassifierError, match=r"rgb.pth: does not fit ResNet"):
        build_model("resnet50", 3, weights=tmp_path / "rgb.pth")
    (tmp_path / "junk.pth").write_text("not torch")
    with pytest.raises(ClassifierError, match="junk.pth: not a readable torch weights file"):
        build_model("resnet18", 3, weights=tmp_path / "junk.pth")


def test_model_file_round_trip_and_refusals(tmp_path):
    from classifier.data import DatasetRef

    torch.manual_seed(0)
    model = build_model("resnet18", 3).eval()
    ref = DatasetRef("clf", "1.0.0", "ab" * 32, "/x/clf.zarr")
    info = ModelInfo(arch="resnet18", classes=class_names("three"), mode="three",
                     preprocessing=Preprocessing(64, 0.15), threshold=0.75, datasets=[ref])
    path = save_model(tmp_path / "m.pt", model, info)
    loaded, back = load_model(path)
    x = torch.randn(2, 1, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), model(x))
    assert back.classes == info.classes and back.threshold == 0.75 and back.datasets == [ref]
    assert back.preprocessing == Preprocessing(64, 0.15) and back.software["torch"]
    with pytest.raises(ClassifierError, match="m.pt exists; pass --force"):
        save_model(path, model, info)
    before = path.read_bytes()
    (tmp_path / "t.pt").write_bytes(before[: len(before) // 2])
    with pytest.raises(ClassifierError, match="t.pt: not a readable model file"):
        read_info(tmp_path / "t.pt")
    torch.save({"weights": torch.zeros(1)}, tmp_path / "other.pt")
    with pytest.raises(ClassifierError, match="other.pt: not a classifier model file"):
        read_info(tmp_path / "other.pt")
    assert path.read_bytes() == before


# --- data ----------------------------------------------------------------------------------------------

def test_cutouts_of_a_split_come_from_the_store_through_the_shared_cutout(pattern_store):
    ds = open_samples(pattern_store)
    prep = Preprocessing(48, 0.1)
    test = load_cutouts(pattern_store, "test", "three", prep)
    expected = np.flatnonzero(ds.split.values == "test")
    assert test.index.tolist() == expected.tolist() and test.x.shape == (len(expected), 48, 48)
    assert test.y.tolist() == ds.label.values[expected].tolist()
    k = len(expected) // 2
    i = int(expected[k])
    np.testing.assert_array_equal(test.x[k], cutout(ds.image.values[i], ds["mask"].values[i], 48, margin=0.1))
    assert test.sources[0].name == "clf" and test.sources[0].content_sha256 == ds.attrs["content_sha256"]
    every = sum(len(load_cutouts(pattern_store, s, "two", prep)) for s in ("train", "val", "test"))
    assert every == ds.sizes["sample"] == len(load_cutouts(pattern_store, "all", "two", prep))
    with pytest.raises(ClassifierError, match="unknown split 'dev'"):
        load_cutouts(pattern_store, "dev", "three", prep)
    with pytest.raises(ClassifierError, match="size: input size must be an integer from 16"):
        Preprocessing(8)


# --- training end to end -------------------------------------------------------------------------------

@pytest.mark.slow
def test_training_learns_the_pattern_classes_and_evaluation_reads_the_model_back(pattern_store, tmp_path):
    """Dots (amorphous) against sinusoids (crystalline): a two-class ResNet-18 from scratch on 72
    training cut-outs learns them (val accuracy >= 0.8; predicting the majority class gives 0.67), and
    the written model reproduces its validation accuracy."""
    from classifier.evaluate import evaluate
    from classifier.train import TrainConfig, train

    config = TrainConfig(arch="resnet18", mode="two", size=48, epochs=15, batch_size=16, seed=0)
    result = train([pattern_store], tmp_path / "m.pt", config, device="cpu", progress=False)
    assert len(result.info.history) == 15 and result.path.with_suffix(".history.png").exists()
    best = result.info.history[result.best_epoch - 1]["val_accuracy"]
    assert best >= 0.8, result.info.history
    ev = evaluate(result.path, [pattern_store], split="val", device="cpu")
    assert ev.report.summary()["accuracy"] == pytest.approx(best, abs=1e-6)
    assert ev.info.datasets[0].content_sha256 == open_samples(pattern_store).attrs["content_sha256"]
    paths = ev.write(tmp_path / "report")
    assert paths["figure"].exists() and len(paths["predictions"].read_text().splitlines()) == 1 + len(ev.cutouts)


# --- command line --------------------------------------------------------------------------------------

def test_cli_train_info_evaluate_and_one_line_errors(pattern_store, tmp_path):
    from classifier.cli import app

    model = tmp_path / "m.pt"
    r = runner.invoke(app, ["train", str(pattern_store), "--out", str(model), "--size", "32", "--epochs", "1",
                            "--batch-size", "8", "--device", "cpu"])
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["info", str(model)])
    assert r.exit_code == 0 and "resnet18" in r.output and "clf 1.0.0" in r.output
    r = runner.invoke(app, ["evaluate", str(model), str(pattern_store), "--out", str(tmp_path / "ev")])
    assert r.exit_code == 0 and "accuracy" in r.output and (tmp_path / "ev" / "confusion.png").exists()
    before = model.read_bytes()
    report = (tmp_path / "ev" / "report.json").read_bytes()
    for args, message in [
        (["evaluate", str(model), str(pattern_store), "--split", "val", "--out", str(tmp_path / "ev")],
         "report.json exists; pass --force"),
        (["train", str(pattern_store), "--out", str(model)], "m.pt exists; pass --force"),
        (["train", str(pattern_store), "--out", str(tmp_path / "n.pt"), "--arch", "vgg"], "unknown architecture 'vgg'"),
        (["train", str(tmp_path / "none.zarr"), "--out", str(tmp_path / "n.pt")], "no dataset store at"),
        (["evaluate", str(tmp_path / "none.pt"), str(pattern_store)], "none.pt: model file not found"),
        (["evaluate", str(model), str(pattern_store), "--threshold", "1.5"], "threshold: confidence threshold must be in [0, 1)"),
    ]:
        r = runner.invoke(app, args)
        assert r.exit_code == 1 and message in r.output.replace("\n", " ") and "Traceback" not in r.output, r.output
    assert model.read_bytes() == before and not (tmp_path / "n.pt").exists()
    assert (tmp_path / "ev" / "report.json").read_bytes() == report


# --- micrographs ---------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def tiled_micrograph(tmp_path_factory):
    """3 x 4 pattern images (one particle each, same background noise) tiled into one 288 x 384
    micrograph, with the particles' true masks labelled 1..12. Read at 0.05 nm per pixel, the fringe
    periods (11 to 21 pixels) are 0.6 to 1 nm: finer than the detector's 1 nm background filter, as
    lattice fringes of metals are (0.2 to 0.3 nm)."""
    from tests.conftest import TINY

    data = {**TINY, "name": "mic", "seed": 5, "chunk_size": 12,
            "classes": {"amorphous": 4, "monocrystalline": 4, "polycrystalline": 4},
            "pattern": {"image_size": 96, "diameter_px": [30, 60], "background_noise": [0.1, 0.1],
                        "frequency": [0.3, 0.55]}}
    path = tmp_path_factory.mktemp("mic") / "mic.zarr"
    generate(parse_recipe(data), path, workers=0)
    ds = open_samples(path)
    im, m = ds.image.values, ds["mask"].values
    image = np.block([[im[r * 4 + c] for c in range(4)] for r in range(3)])
    truth = np.block([[m[r * 4 + c].astype(np.int32) * (r * 4 + c + 1) for c in range(4)] for r in range(3)])
    return image, truth


def test_detection_finds_every_particle_with_its_size(tiled_micrograph):
    from skimage.measure import regionprops

    from classifier.micrograph import detect_particles, measure

    image, truth = tiled_micrograph
    px = 0.05  # nm per pixel: particles of 1.5 to 3 nm
    labels = detect_particles(image, px)
    found = measure(labels, px)
    matched = 0
    for region in regionprops(truth):
        ids, counts = np.unique(labels[truth == region.label], return_counts=True)
        counts, ids = counts[ids > 0], ids[ids > 0]
        if len(ids) == 0:
            continue
        best = ids[counts.argmax()]
        iou = ((labels == best) & (truth == region.label)).sum() / ((labels == best) | (truth == region.label)).sum()
        d_true = region.equivalent_diameter_area * px
        d_found = next(p.diameter_nm for p in found if p.id == best)
        matched += iou > 0.4 and abs(d_found / d_true - 1) < 0.25
    assert matched >= 11, matched  # a polycrystalline pattern may split along its domain boundary
    assert len(found) <= 14  # nothing found on the plain background
    # a disk of 2 nm diameter is measured as one (area, circularity)
    yy, xx = np.mgrid[:100, :100]
    disk = ((yy - 50) ** 2 + (xx - 50) ** 2 <= 20 ** 2).astype(np.int32)
    (p,) = measure(disk, px)
    assert p.diameter_nm == pytest.approx(2.0, rel=0.02) and p.aspect_ratio == pytest.approx(1.0, abs=0.02)
    assert p.circularity > 0.9 and not p.touches_border


def test_detection_on_plain_noise_finds_nothing_large():
    from classifier.micrograph import DetectionSettings, detect_particles

    noise = np.random.default_rng(0).normal(1.0, 0.1, (256, 256)).astype(np.float32)
    labels = detect_particles(noise, 0.05, DetectionSettings(threshold=np.log(0.5)))
    assert labels.max() == 0


def test_analyse_classifies_writes_and_refuses(tiled_micrograph, tmp_path):
    import imageio.v3 as iio

    from classifier.cli import app

    image, truth = tiled_micrograph
    torch.manual_seed(0)
    info = ModelInfo(arch="resnet18", classes=class_names("three"), mode="three", preprocessing=Preprocessing(32))
    save_model(tmp_path / "m.pt", build_model("resnet18", 3).eval(), info)
    iio.imwrite(tmp_path / "mic.tif", image.astype(np.float32))
    np.save(tmp_path / "mic.npy", image)
    out = tmp_path / "out"
    r = runner.invoke(app, ["analyse", str(tmp_path / "mic.tif"), str(tmp_path / "mic.npy"), "--pixel-size-nm", "0.05",
                            "--model", str(tmp_path / "m.pt"), "--out", str(out), "--device", "cpu"])
    assert r.exit_code == 0, r.output
    import csv

    rows = list(csv.DictReader((out / "mic_tif.csv").open()))
    assert 11 <= len(rows) <= 14
    assert {row["label"] for row in rows} <= {*class_names("three"), "unknown"}
    for row in rows:  # probabilities sum to one; the label is the most likely class, or unknown below 0.8
        p = np.array([float(row[f"p_{c}"]) for c in class_names("three")])
        assert p.sum() == pytest.approx(1, abs=1e-3)
        assert row["label"] == (class_names("three")[p.argmax()] if p.max() >= 0.8 else "unknown")
    assert (out / "mic_npy.csv").read_text() == (out / "mic_tif.csv").read_text()
    assert (out / "mic_tif.png").read_bytes()[:4] == b"\x89PNG"
    before = (out / "mic_tif.csv").read_bytes()
    (tmp_path / "bad.png").write_bytes(b"not a png")
    for args, message in [
        (["analyse", str(tmp_path / "mic.tif"), "--pixel-size-nm", "0.05", "--out", str(out)], "mic.csv"),
        (["analyse", str(tmp_path / "mic.tif"), str(tmp_path / "mic.npy"), "--pixel-size-nm", "0.05", "--out", str(out)],
         "mic_tif.csv exists; pass --force"),
        (["analyse", str(tmp_path / "bad.png"), "--pixel-size-nm", "0.05", "--out", str(tmp_path / "o2")], "bad.png: unreadable image"),
        (["analyse", str(tmp_path / "none.tif"), "--pixel-size-nm", "0.05", "--out", str(tmp_path / "o2")], "none.tif: micrograph not found"),
        (["analyse", str(tmp_path / "mic.npy"), "--pixel-size-nm", "-1", "--out", str(tmp_path / "o2")], "pixel_size_nm: must be positive"),
    ]:
        r = runner.invoke(app, args)
        if message == "mic.csv":  # a new stem: written
            assert r.exit_code == 0 and (out / "mic.csv").exists(), r.output
            continue
        assert r.exit_code == 1 and message in r.output.replace("\n", " ") and "Traceback" not in r.output, r.output
    assert (out / "mic_tif.csv").read_bytes() == before and not (tmp_path / "o2").exists()


def test_training_is_reproducible_from_its_seed(pattern_store, tmp_path):
    from classifier.train import TrainConfig, train

    def weights(seed, name):
        config = TrainConfig(arch="resnet18", mode="three", size=32, epochs=2, batch_size=16, seed=seed)
        result = train([pattern_store], tmp_path / name, config, device="cpu", progress=False)
        return read_info(result.path)[1], result.info.history

    (w1, h1), (w2, h2), (w3, _) = weights(3, "a.pt"), weights(3, "b.pt"), weights(4, "c.pt")
    assert all(torch.equal(w1[k], w2[k]) for k in w1) and h1 == [{**h, "seconds": h1[i]["seconds"]} for i, h in enumerate(h2)]
    assert not torch.equal(w1["fc.weight"], w3["fc.weight"])


@pytest.mark.slow
def test_ctrl_c_during_training_keeps_the_best_epoch_so_far(pattern_store, tmp_path):
    import os
    import signal
    import subprocess
    import sys

    model = tmp_path / "m.pt"
    cmd = [sys.executable, "-m", "classifier.cli", "train", str(pattern_store), "--out", str(model), "--size", "32",
           "--epochs", "200", "--batch-size", "16", "--device", "cpu"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, "COLUMNS": "200"})
    seen = []
    for line in proc.stdout:
        seen.append(line)
        if line.startswith("epoch 2/200"):
            proc.send_signal(signal.SIGINT)
            break
    out = proc.communicate(timeout=120)[0]
    assert proc.returncode == 130, "".join(seen) + out
    info, _ = read_info(model)
    assert info.training["interrupted_after_epoch"] >= 2 and len(info.history) == info.training["interrupted_after_epoch"]
    assert 1 <= info.training["best_epoch"] <= len(info.history)


def test_cutouts_of_several_datasets_keep_their_origin(pattern_store):
    from classifier.data import concatenate

    a = load_cutouts(pattern_store, "train", "three", Preprocessing(32))
    b = load_cutouts(pattern_store, "test", "three", Preprocessing(32))
    both = concatenate([a, b])
    assert len(both) == len(a) + len(b) and len(both.sources) == 2
    assert both.origin.tolist() == [0] * len(a) + [1] * len(b)
    np.testing.assert_array_equal(both.x[len(a):], b.x)
    assert both.index[len(a):].tolist() == b.index.tolist()
    with pytest.raises(ClassifierError, match="differ in classes or size"):
        concatenate([a, load_cutouts(pattern_store, "test", "three", Preprocessing(48))])
