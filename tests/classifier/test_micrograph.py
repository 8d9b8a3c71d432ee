"""Whole micrographs: particle detection and measurement, and `classifier analyse`."""

from __future__ import annotations

import csv

import imageio.v3 as iio
import numpy as np
import pytest
import torch
from skimage.measure import regionprops
from typer.testing import CliRunner

from classifier.classes import class_names
from classifier.cli import app
from classifier.data import Preprocessing
from classifier.micrograph import DetectionSettings, detect_particles, measure
from classifier.model import build_model
from classifier.modelfile import ModelInfo, save_model
from datagen.run import generate
from datagen.recipe import parse_recipe
from datagen.store import open_samples

runner = CliRunner()


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
    noise = np.random.default_rng(0).normal(1.0, 0.1, (256, 256)).astype(np.float32)
    labels = detect_particles(noise, 0.05, DetectionSettings(threshold=np.log(0.5)))
    assert labels.max() == 0


def test_analyse_classifies_writes_and_refuses(tiled_micrograph, tmp_path):
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
        (["analyse", str(tmp_path / "bad.png"), "--pixel-size-nm", "0.05", "--out", str(tmp_path / "o2")], "bad.png: unreadable PNG file"),
        (["analyse", str(tmp_path / "none.tif"), "--pixel-size-nm", "0.05", "--out", str(tmp_path / "o2")], "none.tif: micrograph not found"),
        (["analyse", str(tmp_path / "mic.npy"), "--pixel-size-nm", "-1", "--out", str(tmp_path / "o2")], "--pixel-size-nm: must be positive"),
        (["analyse", str(tmp_path / "mic.npy"), "--pixel-size-nm", "1e-9", "--out", str(tmp_path / "o2")],
         "--pixel-size-nm: 1e-09 nm per pixel is outside 0.001-100 nm; the pixel size is in nm"),
    ]:
        r = runner.invoke(app, args)
        if message == "mic.csv":  # a new stem: written
            assert r.exit_code == 0 and (out / "mic.csv").exists(), r.output
            continue
        assert r.exit_code == 1 and message in r.output.replace("\n", " ") and "Traceback" not in r.output, r.output
    assert (out / "mic_tif.csv").read_bytes() == before and not (tmp_path / "o2").exists()
