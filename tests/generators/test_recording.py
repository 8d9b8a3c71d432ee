"""A simulation recipe's recording block: noise-free images recorded again per sample (dose, MTF, blur,
8-bit) from a stream of their own, the lattice peak ratio kept, and the same dataset made from a
noise-free store's images (``--images-from``) as from simulating."""

from __future__ import annotations

import copy

import numpy as np
import pytest

from datagen.errors import DatagenError, RecipeError
from datagen.generators.simulated import RecordingDraw, record
from datagen.recipe import parse_recipe
from datagen.run import generate
from datagen.simulate.params import MTF
from datagen.store import open_samples
from datagen.visibility import peak_ratios
from tests.generators.test_simulation_generate import SIM

RECORDING = {"dose_e_per_A2": [200.0, 2000.0], "noise_free_probability": 0.2, "eight_bit_probability": 0.5,
             "blur_probability": 0.5, "ideal_mtf_probability": 0.3}


def with_recording(data: dict, **change) -> dict:
    out = copy.deepcopy(data)
    out["name"] = "simrec"
    out["simulation"]["recording"] = {**RECORDING, **change}
    return out


@pytest.fixture(scope="module")
def stores(tmp_path_factory):
    """The tiny simulated catalog noise-free, and recorded (simulated again, and from the noise-free store)."""
    base = tmp_path_factory.mktemp("recording")
    clean = {**copy.deepcopy(SIM), "classes": {"amorphous": 4, "monocrystalline": 4, "polycrystalline": 4}}
    paths = {k: base / f"{k}.zarr" for k in ("clean", "recorded", "reused")}
    generate(parse_recipe(clean), paths["clean"], workers=0)
    recipe = parse_recipe(with_recording(clean))
    direct = generate(recipe, paths["recorded"], workers=0)
    reused = generate(recipe, paths["reused"], workers=0, backend_options={"images_from": str(paths["clean"])})
    return paths, direct, reused, clean


def test_recording_redraws_only_the_recording(stores):
    paths, _, _, _ = stores
    clean, rec = open_samples(paths["clean"]), open_samples(paths["recorded"])
    # every draw before the recording is the noise-free recipe's: the same models, optics and masks
    for name in ("kind", "diameter_nm", "defocus_nm", "support_thickness_nm", "orientation", "mask", "split"):
        np.testing.assert_array_equal(rec[name].values, clean[name].values, err_msg=name)
    noise_free = ~np.isfinite(rec.dose_e_per_A2.values)
    eight = rec.eight_bit.values.astype(bool)
    assert eight.any() and (~eight).any() and (~noise_free).any()  # the draws reach both sides
    for i in range(rec.sizes["sample"]):
        image, before = rec.image.values[i], clean.image.values[i]
        if eight[i]:  # grey levels of an 8-bit stretch
            assert image.min() >= 0 and image.max() <= 255 and np.array_equal(image, np.rint(image))
        if noise_free[i] and not eight[i] and rec.blur_px.values[i] == 0 and not np.isfinite(rec.mtf_q0.values[i]):
            np.testing.assert_allclose(image, before, atol=1e-6)  # nothing drawn: the noise-free image
        else:
            assert not np.allclose(image, before)
    # the peak ratio is that of the noise-free image, whatever the recording did
    expected = peak_ratios(clean.image.values, clean.mask.values, clean.pixel_size_nm.values, "Au")
    np.testing.assert_allclose(rec.lattice_peak_ratio.values, expected, rtol=1e-5)


def test_images_from_a_noise_free_store_make_the_same_dataset(stores, tmp_path):
    paths, direct, reused, clean = stores
    assert reused.content_sha256 == direct.content_sha256
    other = {**copy.deepcopy(clean), "seed": clean["seed"] + 1}
    with pytest.raises(DatagenError, match="its recipe differs in seed"):
        generate(parse_recipe(with_recording(other)), tmp_path / "x.zarr", workers=0,
                 backend_options={"images_from": str(paths["clean"])})
    assert not (tmp_path / "x.zarr").exists()


def test_dose_noise_has_the_poisson_variance_of_the_dose():
    clean = np.ones((256, 256), np.float32)
    rng = np.random.default_rng(0)
    dose, pixel_A = 400.0, (0.25, 0.25)  # 25 electrons per pixel
    image = record(clean, pixel_A, RecordingDraw(dose, MTF(), 0.0, False, 0.0), rng)
    assert image.mean() == pytest.approx(1.0, abs=0.005)
    assert image.var() == pytest.approx(1 / (dose * pixel_A[0] * pixel_A[1]), rel=0.03)
    blurred = record(clean, pixel_A, RecordingDraw(dose, MTF(), 2.0, False, 0.0), rng)
    assert blurred.var() < image.var() / 10  # a Gaussian of sigma 2 px averages ~50 pixels


def test_recording_and_a_detector_dose_are_refused_together():
    data = with_recording(SIM)
    data["simulation"]["detector"] = {"pixel_size_nm": 0.05, "dose_e_per_A2": 100.0}
    with pytest.raises(RecipeError, match="recording: draws the dose and MTF per sample"):
        parse_recipe(data)
    # a recipe without the block does not name it: the recipes written before it keep their hashes
    assert "recording" not in parse_recipe(SIM).to_json_dict()["simulation"]
    assert parse_recipe(with_recording(SIM)).to_json_dict()["simulation"]["recording"]["noise_free_probability"] == 0.2


def test_the_dataset_card_counts_particles_per_visibility_bin(tmp_path):
    from datagen.report.card import write_card
    from datagen.visibility import bin_index, dataset_visibility
    from tests.classifier.test_visibility_eval import SIM as SIMVIS  # enough amorphous particles for a reference

    generate(parse_recipe(SIMVIS), tmp_path / "clean.zarr", workers=0)
    generate(parse_recipe(with_recording(SIMVIS)), tmp_path / "rec.zarr", workers=0,
             backend_options={"images_from": str(tmp_path / "clean.zarr")})
    ds = open_samples(tmp_path / "rec.zarr")
    vis = dataset_visibility(ds)
    # the stored ratios of the recorded store give the visibility measured on the noise-free store's images
    np.testing.assert_allclose(vis, dataset_visibility(open_samples(tmp_path / "clean.zarr")), rtol=1e-5)
    card = write_card(tmp_path / "rec.zarr", tmp_path / "card.md").read_text()
    assert "### Lattice visibility" in card
    idx = bin_index(vis)
    mono = ds.label.values == 1
    counts = " | ".join(str(int((idx[mono] == b).sum())) for b in range(4))
    assert f"| monocrystalline | {counts} |" in card
