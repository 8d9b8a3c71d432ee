"""`datagen export`: a store as image files, masks and a provenance table; the exported folder scores as the
store it came from, the TIFFs hold the stored values, and fields keep their instance images."""

from __future__ import annotations

import csv

import imageio.v3 as iio
import numpy as np
import pytest
import tifffile
from typer.testing import CliRunner

from classifier.evaluate import evaluate
from datagen.cli import app as datagen_app
from datagen.export import export_images
from datagen.recipe import parse_recipe
from datagen.run import generate
from datagen.store import open_samples
from tests.conftest import FIELD_TINY

runner = CliRunner()


def test_exported_test_split_scores_as_the_store_and_keeps_the_values(pattern_store, model, tmp_path):
    ds = open_samples(pattern_store)
    test = np.flatnonzero(ds.split.values == "test")
    for fmt in ("tiff", "png"):
        out = tmp_path / fmt
        r = runner.invoke(datagen_app, ["export", str(pattern_store), "--out", str(out), "--format", fmt,
                                        "--split", "test", "--cutouts"])
        assert r.exit_code == 0, r.output
        rows = list(csv.DictReader((out / "samples.csv").open()))
        assert [int(r["sample"]) for r in rows] == test.tolist()
        from_store = evaluate(model, [pattern_store], split="test", device="cpu").report.summary()
        s = evaluate(model, [out / "test"], device="cpu").report.summary()
        assert s["n"] == from_store["n"] == len(test) and s["support"] == from_store["support"]
        assert abs(s["accuracy"] - from_store["accuracy"]) * len(test) <= 1.0 + 1e-9
        row = rows[0]
        i = int(row["sample"])
        image = tifffile.imread(out / row["file"]) if fmt == "tiff" else iio.imread(out / row["file"])
        if fmt == "tiff":  # the stored values, bit for bit
            np.testing.assert_array_equal(image, ds.image.values[i])
        else:  # 16-bit, restored from the stretch the table records
            lo, hi = float(row["image_min"]), float(row["image_max"])
            np.testing.assert_allclose(lo + image / 65535 * (hi - lo), ds.image.values[i], atol=(hi - lo) / 65535)
        mask = iio.imread(out / row["mask"])
        np.testing.assert_array_equal(mask > 0, ds.mask.values[i] > 0)
        cut = tifffile.imread(out / row["cutout"]) if fmt == "tiff" else iio.imread(out / row["cutout"])
        outside = cut[ds.mask.values[i] == 0]  # the support removed: one flat value (0 before a PNG's stretch)
        assert len(np.unique(outside)) == 1 and (fmt == "png" or outside[0] == 0)
        assert float(row["diameter_px"]) == pytest.approx(float(ds.diameter_px.values[i]))
    # nothing replaced without --force; a bad format names itself
    before = (tmp_path / "png" / "samples.csv").read_bytes()
    for args, message in ((["--out", str(tmp_path / "png")], "exists; pass --force"),
                          (["--out", str(tmp_path / "x"), "--format", "bmp"], "--format: use tiff or png")):
        r = runner.invoke(datagen_app, ["export", str(pattern_store), *args])
        assert r.exit_code == 1 and message in r.output and "Traceback" not in r.output
    assert (tmp_path / "png" / "samples.csv").read_bytes() == before and not (tmp_path / "x").exists()


def test_fields_export_their_instance_images(tmp_path):
    store = tmp_path / "f.zarr"
    generate(parse_recipe({**FIELD_TINY, "fields": 2}), store, workers=0)
    result = export_images(store, tmp_path / "out")
    ds = open_samples(store)
    assert result.n_images == 2
    rows = list(csv.DictReader((tmp_path / "out" / "samples.csv").open()))
    for row in rows:
        i = int(row["sample"])
        assert row["class"] == "mixed"
        np.testing.assert_array_equal(tifffile.imread(tmp_path / "out" / row["mask"]), ds.instances.values[i])
        assert int(row["n_particles"]) == int(ds.n_particles.values[i])
