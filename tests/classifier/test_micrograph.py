"""Whole micrographs: detection, measurement, annotations, the analyse outputs and `classifier analyse`."""

from __future__ import annotations

import copy
import csv
import json

import imageio.v3 as iio
import numpy as np
import pytest
from scipy import ndimage as ndi
import tifffile
import torch
from typer.testing import CliRunner

from classifier.classes import class_names
from classifier.cli import app
from classifier.data import Preprocessing
from classifier.detection.annotations import find_annotations
from classifier.detection.classical import ClassicalSettings, detect
from classifier.detection.score import score_image
from classifier.measure import feret_diameters, measure
from classifier.micrograph import analyse, free_corners, scale_bar_nm
from classifier.model import build_model
from classifier.modelfile import ModelInfo, save_model
from datagen.recipe import parse_recipe
from datagen.run import generate
from datagen.simulate.thon import read_raw_image
from datagen.store import open_samples
from tests.conftest import FIELD_TINY, SHARED_DATA

runner = CliRunner()
CARBON = SHARED_DATA / "amorphous_carbon_thon_rings"


@pytest.fixture(scope="module")
def fields(tmp_path_factory):
    """Four simulated fields with thin films and doses from noise-free to high: particles the detector must find."""
    data = copy.deepcopy(FIELD_TINY)
    data.update(name="detfields", seed=21, fields=4, chunk_size=4)
    data["field"].update(image_px=128, guard_nm=1.6)
    data["field"]["particle"]["diameter_nm"] = [1.2, 2.4]
    data["field"]["particles"]["per_100nm2"] = [7.0, 9.0]
    data["field"]["recording"].update(dose_e_per_A2=[2000.0, 5000.0], eight_bit_probability=0.0, blur_probability=0.0)
    data["field"]["optics"] = {"defocus_nm": [-8.0, -4.0]}
    path = tmp_path_factory.mktemp("det") / "f.zarr"
    generate(parse_recipe(data), path, workers=0)
    return open_samples(path)


def _disc_image(centres, radius_px, shape=(160, 160), depth=0.3, noise=0.02, seed=0):
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    img = np.ones(shape)
    truth = np.zeros(shape, np.int32)
    for k, (cy, cx) in enumerate(centres, start=1):
        disc = (yy - cy) ** 2 + (xx - cx) ** 2 <= radius_px**2
        img[disc] -= depth
        truth[disc] = k
    return (img + rng.normal(0, noise, shape)).astype(np.float32), truth


def test_particles_of_simulated_fields_are_found_with_their_size(fields):
    total = None
    for i in range(fields.sizes["sample"]):
        px = float(fields.pixel_size_nm[i])
        labels, _ = detect(fields.image[i].values, px)
        s = score_image(labels, fields.instances[i].values, px)
        total = s if total is None else total.add(s)
    assert total.true >= 10
    assert total.recall >= 0.7 and total.precision >= 0.85, total.as_dict()  # the old detector: 0.3, 0.2
    assert total.diameter_error <= 0.2, total.as_dict()


def test_touching_discs_are_split():
    image, truth = _disc_image([(80, 60), (80, 60 + 2 * 15)], 15)  # two 1.5 nm discs touching at 0.05 nm/px
    labels, _ = detect(image, 0.05)
    assert labels.max() == 2
    s = score_image(labels, truth, 0.05)
    assert s.found == 2 and s.pairs == 1 and s.pairs_split == 1


@pytest.mark.parametrize(("shape", "px"), [((256, 256), 0.02), ((256, 256), 0.1), ((1024, 1024), 0.064)])
def test_nothing_on_pure_noise_with_the_defaults(shape, px):
    for seed in range(3):
        noise = np.random.default_rng(seed).normal(1.0, 0.1, shape).astype(np.float32)
        assert len(analyse(noise, px).particles) == 0


@pytest.mark.skipif(not CARBON.is_dir(), reason=f"real amorphous-carbon images not found at {CARBON}")
@pytest.mark.parametrize("name", ["img_1.raw", "img_2.raw", "img_50.raw"])
@pytest.mark.parametrize("detector", ["unet", "classical"])
def test_nothing_on_real_amorphous_carbon_but_its_one_dense_spot(name, detector):
    image = read_raw_image(CARBON / name)
    result = analyse(image, 0.135355, detector=detector)
    if name != "img_50.raw":
        assert len(result.particles) == 0
        return
    # img_50 holds one spot far darker than any of the film's speckle (band-passed 25 % below the
    # image's next darkest point away from it): anything reported there must be that spot
    band = ndi.gaussian_filter(image, 2) - ndi.gaussian_filter(image, 20)
    spot = np.unravel_index(np.argmin(band), band.shape)
    assert all(result.labels[spot] == p.id for p in result.particles), [(p.y_px, p.x_px) for p in result.particles]


def test_a_burned_in_scale_bar_and_its_label_are_ignored(fields):
    px = float(fields.pixel_size_nm[0])
    img = fields.image[0].values.copy()
    lo, hi = np.percentile(img, [0.5, 99.5])
    grey = np.rint(np.clip((img - lo) / (hi - lo), 0, 1) * 255).astype(np.float32)
    grey[110:116, 70:124] = 255  # a white bar
    grey[98:106, 80:84] = 255  # and two "glyphs" above it
    grey[98:106, 90:96] = 255
    found = find_annotations(grey, px)
    assert found[110:116, 70:124].all() and found[98:106, 80:84].all() and found[98:106, 90:96].all()
    assert found.sum() < 0.2 * found.size
    labels, annotations = detect(grey, px)
    assert not (labels[annotations] > 0).any()
    # a particle saturated to black in an 8-bit image is round: it is no annotation
    disc, _ = _disc_image([(60, 60)], 14, depth=2.0)
    disc8 = np.rint(np.clip((disc - 0.5) / 0.6, 0, 1) * 255).astype(np.float32)
    assert not find_annotations(disc8, 0.05).any()


def test_feret_and_shape_of_simple_regions():
    yy, xx = np.mgrid[:100, :100]
    disc = ((yy - 50) ** 2 + (xx - 50) ** 2 <= 20**2).astype(np.int32)
    (p,) = measure(disc, 0.05)
    assert p.diameter_nm == pytest.approx(2.0, rel=0.02)
    assert p.feret_max_nm == pytest.approx(41 * 0.05, rel=0.02) and p.feret_min_nm == pytest.approx(41 * 0.05, rel=0.02)
    assert p.circularity > 0.9 and not p.touches_border
    rect = np.zeros((60, 60), np.int32)
    rect[10:20, 5:35] = 1  # 10 x 30 px
    fmax, fmin = feret_diameters(np.argwhere(rect).astype(float))
    assert fmax == pytest.approx(np.hypot(10, 30)) and fmin == pytest.approx(10.0)
    (q,) = measure(rect, 1.0)
    assert q.aspect_ratio == pytest.approx(np.hypot(10, 30) / 10) and q.bbox == (10, 5, 20, 35)


def test_scale_bar_lengths_and_corner_choice():
    assert [scale_bar_nm(w) for w in (10, 65.5, 400, 3)] == [2.0, 10.0, 50.0, 0.5]
    occupied = np.zeros((100, 100), bool)
    occupied[90:, :30] = True  # bottom left full
    assert free_corners(occupied)[0] == (1, 1)


@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    torch.manual_seed(0)
    info = ModelInfo(arch="resnet18", classes=class_names("three"), mode="three", preprocessing=Preprocessing(32))
    path = tmp_path_factory.mktemp("model") / "m.pt"
    save_model(path, build_model("resnet18", 3).eval(), info)
    return path


def test_analyse_writes_table_labels_overlay_and_summary(fields, model_file, tmp_path):
    px = float(fields.pixel_size_nm[1])
    image = fields.image[1].values
    tifffile.imwrite(tmp_path / "mic.tif", image, imagej=True, resolution=(1 / px, 1 / px), metadata={"unit": "nm"})
    np.save(tmp_path / "mic.npy", image)
    out = tmp_path / "out"
    r = runner.invoke(app, ["analyse", str(tmp_path / "mic.tif"), str(tmp_path / "mic.npy"), "--pixel-size-nm",
                            f"{px:.10g}", "--model", str(model_file), "--out", str(out), "--device", "cpu"])
    assert r.exit_code == 0, r.output
    rows = list(csv.DictReader((out / "mic_tif.csv").open()))
    assert len(rows) >= 2
    labels = tifffile.imread(out / "mic_tif.labels.tif")
    assert labels.dtype == np.uint16 and labels.shape == image.shape
    assert sorted(int(v) for v in np.unique(labels) if v) == [int(row["id"]) for row in rows]
    for row in rows:  # the table's area is the label image's; probabilities sum to one; unknown below 0.8
        assert int(row["area_px"]) == int((labels == int(row["id"])).sum())
        p = np.array([float(row[f"p_{c}"]) for c in class_names("three")])
        assert p.sum() == pytest.approx(1, abs=1e-3)
        assert row["class"] == (class_names("three")[p.argmax()] if p.max() >= 0.8 else "unknown")
    assert iio.imread(out / "mic_tif.png").shape[:2] == image.shape  # the overlay at the input's size
    assert (out / "mic_npy.csv").read_text() == (out / "mic_tif.csv").read_text()
    summary = json.loads((out / "summary.json").read_text())
    assert summary["particles"] == 2 * len(rows) and len(summary["micrographs"]) == 2
    assert sum(summary["counts"].values()) == 2 * len(rows)
    with tifffile.TiffFile(out / "mic_tif.labels.tif") as tif:  # ImageJ and napari read the pixel size
        assert tif.imagej_metadata["unit"] == "nm"
        xr = tif.pages[0].tags["XResolution"].value
        assert xr[1] / xr[0] == pytest.approx(px, rel=1e-4)


def test_analyse_reads_the_pixel_size_from_the_file_and_refuses_bad_input(fields, tmp_path):
    px = float(fields.pixel_size_nm[2])
    image = fields.image[2].values
    tifffile.imwrite(tmp_path / "mic.tif", image, imagej=True, resolution=(1 / px, 1 / px), metadata={"unit": "nm"})
    out = tmp_path / "out"
    r = runner.invoke(app, ["analyse", str(tmp_path / "mic.tif"), "--out", str(out)])
    assert r.exit_code == 0 and f"at {px:.4g} nm/px" in r.output.replace("\n", ""), r.output
    before = (out / "mic.csv").read_bytes()
    np.save(tmp_path / "mic2.npy", image)
    (tmp_path / "bad.png").write_bytes(b"not a png")
    for args, message in [
        (["analyse", str(tmp_path / "mic.tif"), "--out", str(out)], "mic.csv exists; pass --force"),
        (["analyse", str(tmp_path / "mic2.npy"), "--out", str(tmp_path / "o2")], "give --pixel-size-nm"),
        (["analyse", str(tmp_path / "bad.png"), "--pixel-size-nm", "0.05", "--out", str(tmp_path / "o2")], "bad.png: unreadable PNG file"),
        (["analyse", str(tmp_path / "none.tif"), "--out", str(tmp_path / "o2")], "none.tif: micrograph not found"),
        (["analyse", str(tmp_path / "mic2.npy"), "--pixel-size-nm", "-1", "--out", str(tmp_path / "o2")], "--pixel-size-nm: must be positive"),
        (["analyse", str(tmp_path / "mic2.npy"), "--pixel-size-nm", "1e-9", "--out", str(tmp_path / "o2")],
         "--pixel-size-nm: 1e-09 nm per pixel is outside 0.001-100 nm; the pixel size is in nm"),
        (["analyse", str(tmp_path / "mic2.npy"), "--pixel-size-nm", "0.05", "--detector", "magic", "--out", str(tmp_path / "o2")],
         "--detector: 'magic' is not available"),
    ]:
        r = runner.invoke(app, args)
        assert r.exit_code == 1 and message in r.output.replace("\n", " ") and "Traceback" not in r.output, r.output
    assert (out / "mic.csv").read_bytes() == before and not (tmp_path / "o2").exists()


def test_detection_cost_does_not_grow_with_particles_times_pixels():
    # many particles on a large image: each particle is handled in its own box (a 6000 x 6000 image with
    # thousands of particles once took minutes); here 400 discs on 2000 x 2000 must stay far below that
    centres = [(50 + 95 * (k // 20), 50 + 95 * (k % 20)) for k in range(400)]
    image, truth = _disc_image(centres, 20, shape=(2000, 2000))
    result = analyse(image, 0.05)
    assert len(result.particles) == 400
    assert score_image(result.labels, truth, 0.05).recall == 1.0


def test_settings_are_checked():
    from classifier.errors import ClassifierError

    with pytest.raises(ClassifierError, match="thresholds: one per smoothing scale"):
        ClassicalSettings(thresholds=(5.0,))
    with pytest.raises(ClassifierError, match="diameter_nm"):
        ClassicalSettings(diameter_nm=(3.0, 1.0))
