"""Fixtures shared by the classifier tests."""

from __future__ import annotations

import pytest

from datagen.run import generate
from datagen.recipe import parse_recipe


@pytest.fixture(scope="session")
def pattern_store(tmp_path_factory):
    """A small pattern dataset (easy classes: dots against sinusoids), 40 per class, 64 px."""
    from tests.conftest import TINY

    data = {**TINY, "name": "clf", "seed": 11, "chunk_size": 8,
            "classes": {"amorphous": 40, "monocrystalline": 40, "polycrystalline": 40},
            "pattern": {"image_size": 64, "diameter_px": [30, 56]}}
    path = tmp_path_factory.mktemp("clf") / "clf.zarr"
    generate(parse_recipe(data), path, workers=0)
    return path



@pytest.fixture(scope="session")
def model(pattern_store, tmp_path_factory):
    """A ResNet-18 trained for one epoch on ``pattern_store`` at 32 px (fast; its accuracy does not matter)."""
    from typer.testing import CliRunner

    from classifier.cli import app

    out = tmp_path_factory.mktemp("fm") / "m.pt"
    r = CliRunner().invoke(app, ["train", str(pattern_store), "--out", str(out), "--size", "32", "--epochs", "1",
                                 "--batch-size", "8", "--device", "cpu"])
    assert r.exit_code == 0, r.output
    return out
