"""A deleted or truncated chunk of a complete store is never served as data: every reader stops with one
line naming the chunk and the command that repairs it, and that command (generate) rewrites it."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from typer.testing import CliRunner

from classifier.data import Preprocessing, load_cutouts
from datagen.cli import app
from datagen.errors import StoreError
from datagen.recipe import parse_recipe
from datagen.report.summary import compare
from datagen.run import generate
from datagen.store import Store, open_atoms, open_samples
from tests.conftest import TINY


@pytest.fixture(scope="module")
def intact(tmp_path_factory):
    out = tmp_path_factory.mktemp("intact") / "t.zarr"
    return out, generate(parse_recipe(TINY), out, workers=0).content_sha256


def _chunk_file(path, var="image", chunk=1):
    return path / "samples" / var / "c" / str(chunk) / "0" / "0"


@pytest.fixture(params=["deleted", "truncated"])
def broken(request, intact, tmp_path):
    path = tmp_path / "b.zarr"
    shutil.copytree(intact[0], path)
    f = _chunk_file(path)
    if request.param == "deleted":
        f.unlink()
    else:
        f.write_bytes(f.read_bytes()[: len(f.read_bytes()) // 2])
    return path, intact[1]


def test_readers_refuse_a_broken_chunk_naming_it_and_the_repair(broken, tmp_path):
    path, _ = broken
    ds = open_samples(path)
    assert ds.label.dims == ("sample",)  # opening is lazy; the first read of chunk 1 stops
    with pytest.raises(StoreError, match=r"chunk 1 is (unreadable|corrupt).*`datagen generate tiny --out .*b.zarr` rewrites it"):
        ds.image.values
    np.testing.assert_array_equal(ds.image[:4].values.shape, (4, 48, 48))  # chunk 0 is intact and served
    with pytest.raises(StoreError, match="chunk 1 is"):
        ds.label.values  # any variable of the chunk: the fill values of the lost image never pass
    with pytest.raises(StoreError, match="chunk 1 is"):
        load_cutouts(path, "train", "three", Preprocessing(32, 0.15))
    with pytest.raises(StoreError, match="chunk 1 is"):
        compare(path, path)
    with pytest.raises(StoreError, match="chunk 1 is"):
        open_atoms(path).n_atoms.values  # the chunk's atoms share its checksum
    assert open_atoms(path).n_atoms[:4].values.sum() == 0  # chunk 0's are served (pattern: no atoms)


def test_commands_say_one_line_and_generate_repairs(broken, tmp_path):
    path, content = broken
    run = CliRunner().invoke
    for args in (["preview", str(path), "--out", str(tmp_path / "p.png")],
                 ["card", str(path), "--out", str(tmp_path / "c.md")],
                 ["compare", str(path), str(path)],
                 ["info", str(path)],
                 ["info", str(path), "--check"]):
        r = run(app, args)
        assert r.exit_code == 1 and "Traceback" not in r.output, (args, r.output)
        assert r.output.startswith("error:") or "error:" in r.output, (args, r.output)
        assert "chunk 1" in r.output.replace("\n", " "), (args, r.output)
    repaired = generate(parse_recipe(TINY), path, workers=0)
    assert not repaired.already_complete and repaired.chunks_repaired == 1 and repaired.chunks_written == 1
    assert repaired.content_sha256 == content and Store.open(path).verify().ok
    assert "reopened for repair" in Store.open(path).attrs["history"]
    assert np.isfinite(open_samples(path).image.values).all()
