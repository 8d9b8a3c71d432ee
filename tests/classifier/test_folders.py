"""Folders of labelled cut-out images: read as ANTEMA exports them, scored as the store they came from."""

from __future__ import annotations

from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest
import tifffile
from typer.testing import CliRunner

from classifier.cli import app
from classifier.data import Preprocessing
from classifier.errors import ClassifierError
from classifier.evaluate import evaluate
from classifier.folders import flat_background_mask, load_folder_cutouts, read_particle
from datagen.classes import CLASS_NAMES
from datagen.store import open_samples

runner = CliRunner()


def write_folder(store, root):
    """The test split as ANTEMA would export it: one sub-folder per class; even samples as 16-bit PNGs with
    the support set to 0, odd ones as float32 TIFFs with a PNG mask beside them."""
    ds = open_samples(store)
    test = np.flatnonzero(ds.split.values == "test")
    names = ds.label.attrs["flag_meanings"].split()
    for n, i in enumerate(test):
        image, mask = ds.image[i].values, ds.mask[i].values != 0
        folder = root / names[int(ds.label[i])]
        folder.mkdir(parents=True, exist_ok=True)
        if n % 2 == 0:
            lo, hi = image[mask].min(), image[mask].max()
            grey = np.where(mask, 1 + np.rint((image - lo) / (hi - lo) * 65534), 0).astype(np.uint16)
            iio.imwrite(folder / f"p{i:04d}.png", grey)
        else:
            tifffile.imwrite(folder / f"p{i:04d}.tif", image.astype(np.float32))
            iio.imwrite(folder / f"p{i:04d}_mask.png", mask.astype(np.uint8) * 255)
    return len(test)


def test_a_folder_of_cut_outs_scores_as_the_store_it_came_from(pattern_store, model, tmp_path):
    n = write_folder(pattern_store, tmp_path / "cutouts")
    from_store = evaluate(model, [pattern_store], split="test", device="cpu").report.summary()
    from_folder = evaluate(model, [tmp_path / "cutouts"], device="cpu")
    s = from_folder.report.summary()
    assert s["n"] == from_store["n"] == n and s["support"] == from_store["support"]
    assert abs(s["accuracy"] - from_store["accuracy"]) * n <= 1.0 + 1e-9, (s["accuracy"], from_store["accuracy"])
    assert from_folder.cutouts.names[0].split("/")[0] in CLASS_NAMES
    # the command line takes the folder too, and names each file in predictions.csv
    r = runner.invoke(app, ["evaluate", str(model), str(tmp_path / "cutouts"), "--out", str(tmp_path / "ev")])
    assert r.exit_code == 0, r.output
    rows = (tmp_path / "ev" / "predictions.csv").read_text().splitlines()
    files = [row.split(",")[1] for row in rows[1:]]
    assert len(files) == n and not any("_mask" in f for f in files) and any(f.endswith(".tif") for f in files)


def test_the_particle_is_found_by_its_mask_or_its_removed_support(tmp_path):
    image = np.zeros((40, 50), np.float32)
    yy, xx = np.mgrid[:40, :50]
    disc = (yy - 20) ** 2 + (xx - 22) ** 2 <= 12**2
    image[disc] = np.random.default_rng(0).uniform(1, 2, disc.sum())
    image[20, 22] = 0.0  # a pixel inside that happens to equal the support's value: a hole, filled
    image[2, 2] = 5.0  # a speck of the old support, not the particle
    assert (flat_background_mask(image) == disc).all()
    noisy = np.random.default_rng(1).normal(size=(40, 50))
    assert flat_background_mask(noisy).all()  # nothing flat around it: the whole image
    tifffile.imwrite(tmp_path / "a.tif", noisy.astype(np.float32))
    iio.imwrite(tmp_path / "a.mask.png", disc.astype(np.uint8))
    img, mask = read_particle(tmp_path / "a.tif")
    assert (mask == disc).all() and np.allclose(img, noisy.astype(np.float32))
    small = np.zeros((12, 10), np.uint8)  # a small particle's cut-out, smaller than any micrograph
    small[3:9, 2:8] = 200
    iio.imwrite(tmp_path / "small.png", small)
    assert read_particle(tmp_path / "small.png")[1].sum() == 36


def test_bad_folders_get_one_line(tmp_path, pattern_store, model):
    prep = Preprocessing(size=32)
    with pytest.raises(ClassifierError, match="no class sub-folders with images"):
        load_folder_cutouts(tmp_path, "three", prep)
    (tmp_path / "crystalline").mkdir()
    iio.imwrite(tmp_path / "crystalline" / "x.png", np.full((20, 20), 7, np.uint8))
    with pytest.raises(ClassifierError, match="two-class labels"):
        load_folder_cutouts(tmp_path, "three", prep)
    with pytest.raises(ClassifierError, match="x.png: the image is one flat value"):
        load_folder_cutouts(tmp_path, "two", prep)
    r = runner.invoke(app, ["train", str(tmp_path), "--out", str(tmp_path / "n.pt")])
    assert r.exit_code == 1 and "has no train split" in r.output and not (tmp_path / "n.pt").exists(), r.output
    (tmp_path / "crystalline" / "x.png").unlink()
    (tmp_path / "amorphous").mkdir()
    (tmp_path / "amorphous" / "x.png").write_bytes(b"not a png")
    r = runner.invoke(app, ["evaluate", str(model), str(tmp_path)])
    assert r.exit_code == 1 and "x.png" in r.output and "Traceback" not in r.output, r.output


def test_infer_classifies_files_and_folders_as_evaluate_does(pattern_store, model, tmp_path):
    write_folder(pattern_store, tmp_path / "cutouts")
    ev = evaluate(model, [tmp_path / "cutouts"], device="cpu")
    out = tmp_path / "pred.csv"
    r = runner.invoke(app, ["infer", str(tmp_path / "cutouts"), "--model", str(model), "--out", str(out),
                            "--threshold", "0.5", "--device", "cpu"])
    assert r.exit_code == 0, r.output
    rows = [line.split(",") for line in out.read_text().splitlines()]
    assert rows[0][:3] == ["file", "label", "confidence"] and len(rows) == len(ev.cutouts) + 1
    by_file = {Path(row[0]).relative_to(tmp_path / "cutouts").as_posix(): row for row in rows[1:]}
    probs = ev.report.probs
    for n, name in enumerate(ev.cutouts.names):
        row = by_file[name]
        assert np.allclose([float(v) for v in row[3:]], probs[n], atol=1e-4)
        assert row[1] == (ev.info.classes[probs[n].argmax()] if probs[n].max() >= 0.5 else "unknown")
    r = runner.invoke(app, ["infer", str(tmp_path / "cutouts"), "--model", str(model), "--out", str(out)])
    assert r.exit_code == 1 and "exists; pass --force" in r.output
    r = runner.invoke(app, ["infer", str(tmp_path / "none.png"), "--model", str(model), "--out", str(tmp_path / "n.csv")])
    assert r.exit_code == 1 and "none.png: no such file or folder" in r.output and not (tmp_path / "n.csv").exists()


def test_without_model_the_shipped_one_is_used_and_its_absence_is_one_line(pattern_store, model, tmp_path,
                                                                           monkeypatch):
    import classifier.modelfile as modelfile

    monkeypatch.setattr(modelfile, "DEFAULT_MODEL", tmp_path / "absent.pt")
    for args in (["evaluate", str(pattern_store)], ["infer", str(tmp_path), "--out", str(tmp_path / "p.csv")]):
        r = runner.invoke(app, args)
        assert r.exit_code == 1 and "no model given and none shipped" in r.output and "Traceback" not in r.output
    assert not (tmp_path / "p.csv").exists()
    monkeypatch.setattr(modelfile, "DEFAULT_MODEL", model)  # a shipped model: evaluate needs no --model
    named = runner.invoke(app, ["evaluate", str(pattern_store), "--model", str(model), "--out", str(tmp_path / "a")])
    default = runner.invoke(app, ["evaluate", str(pattern_store), "--out", str(tmp_path / "b")])
    assert named.exit_code == 0 and default.exit_code == 0, default.output
    assert (tmp_path / "a" / "predictions.csv").read_text() == (tmp_path / "b" / "predictions.csv").read_text()


def test_half_precision_weights_are_half_the_file_and_predict_alike(pattern_store, tmp_path):
    import torch

    from classifier.data import Preprocessing, load_cutouts
    from classifier.modelfile import load_model
    from classifier.predict import predict_proba

    files = {}
    for half in (False, True):
        files[half] = tmp_path / f"m{int(half)}.pt"
        args = ["train", str(pattern_store), "--out", str(files[half]), "--size", "32", "--epochs", "1",
                "--batch-size", "8", "--device", "cpu"] + (["--half"] if half else [])
        assert runner.invoke(app, args).exit_code == 0
    assert 0.45 < files[True].stat().st_size / files[False].stat().st_size < 0.55
    x = load_cutouts(pattern_store, "test", "three", Preprocessing(size=32)).x
    (full, _), (half, info) = load_model(files[False]), load_model(files[True])
    assert all(p.dtype == torch.float32 for p in half.parameters()) and info.training["half"] is True
    p_full, p_half = predict_proba(full, x, torch.device("cpu")), predict_proba(half, x, torch.device("cpu"))
    assert abs(p_full - p_half).max() < 0.02
