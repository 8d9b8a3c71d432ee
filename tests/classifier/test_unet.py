"""The learned detector: its targets, its training (weights with their provenance), and the shipped weights."""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from classifier.cli import app
from classifier.detection import unet
from classifier.detection.score import Score, score_image
from classifier.errors import ClassifierError
from datagen.recipe import parse_recipe
from datagen.run import generate
from datagen.store import open_samples
from tests.conftest import FIELD_TINY

runner = CliRunner()


@pytest.fixture(scope="module")
def field_store(tmp_path_factory):
    data = copy.deepcopy(FIELD_TINY)
    data.update(name="unetfields", fields=6, chunk_size=3, split={"train": 0.5, "val": 0.5, "test": 0.0})
    path = tmp_path_factory.mktemp("unet") / "f.zarr"
    generate(parse_recipe(data), path, workers=0)
    return path


def test_targets_mark_interior_boundary_and_the_line_between_touching_particles():
    inst = np.zeros((30, 40), np.int32)
    inst[5:25, 5:20] = 1
    inst[5:25, 20:35] = 2  # touching along column 19/20
    t = unet.targets(inst, 0.05)  # boundary 0.1 nm = 2 px
    assert set(np.unique(t)) == {0, 1, 2}
    assert (t[inst == 0] == 0).all()
    assert (t[5:7, 5:35] == 2).all() and (t[23:25, 5:35] == 2).all()  # the outer 2 px
    assert (t[10:20, 18:22] == 2).all()  # where the two meet: boundary on both sides
    assert (t[10:20, 8:16] == 1).all() and (t[10:20, 24:31] == 1).all()
    # a particle cut by the image border goes on beyond it: no boundary along the border
    cut = np.zeros((20, 20), np.int32)
    cut[:, :10] = 1
    assert (unet.targets(cut, 0.05)[5:15, 0:6] == 1).all()


def test_the_network_keeps_the_image_size_and_the_resampling_its_content():
    net = unet.build_unet()
    assert net(torch.zeros(1, 1, 64, 48)).shape == (1, 3, 64, 48)
    image = np.random.default_rng(0).normal(size=(100, 100)).astype(np.float32)
    x = unet.to_network(image, 0.1, 0.05)  # twice the network's pixel size: twice the pixels
    assert x.shape == (200, 200) and abs(float(np.median(x))) < 0.05
    inst = np.zeros((10, 10), np.int32)
    inst[2:5, 3:8] = 4
    up = unet.resample_instances(inst, (20, 20))
    assert (up == 4).sum() == 4 * (inst == 4).sum() and set(np.unique(up)) == {0, 4}


def test_the_inference_network_answers_as_the_trained_one():
    """Batch norms folded into the convolutions and channels-last weights: the same probabilities, tile by tile."""
    from classifier.predict import for_inference

    torch.manual_seed(0)
    net = unet.build_unet()
    for m in net.modules():  # running statistics and affine terms far from the identity, as after training
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.2, 3.0)
            m.weight.data.uniform_(0.5, 2.0)
            m.bias.data.uniform_(-0.3, 0.3)
    net.eval()
    fast = for_inference(net)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in fast.modules())
    image = np.random.default_rng(1).normal(size=(200, 150)).astype(np.float32)
    slow_p = unet.probabilities(net, image, tile=96)
    fast_p = unet.probabilities(fast, image, tile=96)
    assert np.abs(fast_p - slow_p).max() < 1e-4
    assert np.abs(slow_p - 1 / 3).max() > 0.05  # the check sees a network that answers something
    training = unet.build_unet().train()
    for_inference(training)
    assert training.training  # the network handed in is left as it was


def test_maps_go_back_to_the_image_as_skimage_resamples_them():
    from skimage.transform import resize

    maps = np.random.default_rng(2).random((2, 57, 83)).astype(np.float32)
    for shape in ((130, 190), (40, 60)):  # a finer image than the network's pixels, and a coarser one
        fast = unet.to_image(maps, shape)
        slow = np.stack([resize(m, shape, order=1, preserve_range=True) for m in maps])
        assert fast.shape == (2, *shape) and fast.dtype == np.float32
        assert np.abs(fast - slow)[:, 3:-3, 3:-3].max() < 1e-4  # the border half-pixel is clamped, not mirrored
    assert np.allclose(unet.to_image(np.full((1, 10, 10), 0.7, np.float32), (33, 21)), 0.7)


def test_training_writes_weights_with_their_provenance_and_they_reload(field_store, tmp_path):
    out = tmp_path / "u.pt"
    r = runner.invoke(app, ["segment", "train", str(field_store), "--out", str(out), "--epochs", "2", "--steps", "3",
                            "--batch-size", "2", "--seed", "3", "--device", "cpu"])
    assert r.exit_code == 0, r.output
    blob = torch.load(out, weights_only=True)
    meta = json.loads(blob["metadata"])
    ds = open_samples(field_store)
    assert meta["datasets"][0]["content_sha256"] == ds.attrs["content_sha256"]
    assert meta["train_settings"]["seed"] == 3 and len(meta["history"]) == 2
    assert meta["retrain"].startswith("classifier segment train")
    assert all(v.dtype == torch.float16 for v in blob["state"].values() if v.is_floating_point())
    net, meta2 = unet.load_weights(out)
    assert meta2 == meta
    image, px = ds.image[0].values, float(ds.pixel_size_nm[0])
    labels, _ = unet.detect(image, px, unet.UNetSettings(weights=str(out)))
    assert labels.shape == image.shape and labels.dtype == np.int32
    # the same seed trains the same weights
    out2 = tmp_path / "u2.pt"
    runner.invoke(app, ["segment", "train", str(field_store), "--out", str(out2), "--epochs", "2", "--steps", "3",
                        "--batch-size", "2", "--seed", "3", "--device", "cpu"])
    b2 = torch.load(out2, weights_only=True)
    assert all(torch.equal(blob["state"][k], b2["state"][k]) for k in blob["state"])
    r = runner.invoke(app, ["segment", "train", str(field_store), "--out", str(out)])
    assert r.exit_code == 1 and "exists; pass --force" in r.output


def test_bad_weights_and_stores_give_one_line(tmp_path, field_store):
    (tmp_path / "empty.pt").write_bytes(b"")
    with pytest.raises(ClassifierError, match="U-Net weights not found"):
        unet.load_weights(tmp_path / "empty.pt")
    (tmp_path / "junk.pt").write_bytes(b"junk" * 100)
    with pytest.raises(ClassifierError, match="not a U-Net weights file"):
        unet.load_weights(tmp_path / "junk.pt")
    from tests.conftest import TINY

    pattern = tmp_path / "p.zarr"
    generate(parse_recipe(TINY), pattern, workers=0)
    r = runner.invoke(app, ["segment", "train", str(pattern), "--out", str(tmp_path / "x.pt")])
    assert r.exit_code == 1 and "not a dataset of fields" in r.output and "Traceback" not in r.output


@pytest.mark.skipif(not unet.WEIGHTS.is_file(), reason="no shipped U-Net weights (make segmenter)")
def test_shipped_weights_find_the_particles_of_unseen_fields(tmp_path):
    from datagen.recipe import load_recipe

    net, meta = unet.load_weights(unet.WEIGHTS)
    catalogs = [d["catalog"].split()[0] for d in meta["datasets"]]
    assert catalogs == ["fields-v1", "fields-support-v1"] and meta["pixel_nm"] == unet.PIXEL_NM
    # fields drawn as fields-v1's are, from a seed it never used, smaller to stay fast
    data = load_recipe("fields-v1").to_json_dict()
    data.update(name="unseen", seed=777, fields=6, chunk_size=6)
    data["field"]["image_px"] = 128
    generate(parse_recipe(data), tmp_path / "u.zarr", workers=0)
    ds = open_samples(tmp_path / "u.zarr")
    total = Score()
    for i in range(ds.sizes["sample"]):
        px = float(ds.pixel_size_nm[i])
        labels, _ = unet.detect(ds.image[i].values, px)
        total.add(score_image(labels, ds.instances[i].values, px))
    assert total.true >= 10 and total.recall >= 0.7 and total.precision >= 0.85, total.as_dict()  # untrained: ~0.2


@pytest.mark.skipif(not unet.WEIGHTS.is_file(), reason="no shipped U-Net weights (make segmenter)")
def test_shipped_weights_find_nothing_on_unseen_bare_support(tmp_path):
    from datagen.recipe import load_recipe

    # bare films drawn as fields-support-v1's are (its negatives), from a seed it never used
    data = load_recipe("fields-support-v1").to_json_dict()
    data.update(name="unseenfilm", seed=778, fields=6, chunk_size=6)
    data["field"]["image_px"] = 128
    generate(parse_recipe(data), tmp_path / "s.zarr", workers=0)
    ds = open_samples(tmp_path / "s.zarr")
    assert int(ds.instances.values.max()) == 0
    found = [int(unet.detect(ds.image[i].values, float(ds.pixel_size_nm[i]))[0].max()) for i in range(ds.sizes["sample"])]
    assert sum(found) == 0, found
