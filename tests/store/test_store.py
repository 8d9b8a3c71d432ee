"""The zarr store: schema round trip, checksums, immutability, CSR atoms."""

from __future__ import annotations

import json

import numpy as np
import pytest
import xarray as xr
import zarr
from ase import Atoms

from datagen.errors import StoreError
from datagen.run import generate
from datagen.recipe import parse_recipe
from datagen.store import (CLASS_NAMES, Layout, Store, Variable, create_or_open, dataset_attributes,
                           open_atoms, open_samples, read_atoms)


def test_schema_round_trip(tmp_path, tiny_recipe):
    out = tmp_path / "d.zarr"
    generate(tiny_recipe, out, workers=0)
    ds = xr.open_zarr(out, group="samples", consolidated=False)
    assert ds.sizes["sample"] == tiny_recipe.n_samples
    for name, var in ds.variables.items():
        if name == "sample":
            continue
        assert var.attrs.get("units"), name
        assert var.attrs.get("long_name"), name
    assert ds.label.attrs["flag_values"] == [0, 1, 2]
    assert ds.label.attrs["flag_meanings"].split() == list(CLASS_NAMES)
    assert ds.image.dtype == np.float32 and ds["mask"].dtype == np.uint8 and ds.label.dtype == np.int8
    # the images are chunked along sample only
    assert ds.image.encoding["chunks"] == (4, 48, 48)

    root = zarr.open(str(out), mode="r")
    attrs = dict(root.attrs)
    for key in ("title", "summary", "source", "date_created", "license", "references", "history",
                "catalog_name", "catalog_version", "recipe", "backend", "backend_version"):
        assert attrs[key], key
    assert parse_recipe(json.loads(attrs["recipe"])) == tiny_recipe
    assert attrs["complete"] is True
    assert root["samples/image"].shape == (tiny_recipe.n_samples, 48, 48)
    assert root["checksums"].shape == (5, 32) and root["checksums"].chunks == (1, 32)

    # labels as planned: class counts are exactly the recipe's
    counts = np.bincount(ds.label.values, minlength=3)
    assert counts.tolist() == [6, 5, 7]
    # the library reader gives the same data, with the root attributes
    lib = open_samples(out)
    np.testing.assert_array_equal(lib.image.values, ds.image.values)
    assert lib.attrs["catalog_name"] == "tiny"


def test_flipped_byte_is_caught(tmp_path, tiny_recipe):
    out = tmp_path / "d.zarr"
    generate(tiny_recipe, out, workers=0)
    store = Store.open(out)
    assert store.verify().ok
    chunk_file = out / "samples" / "image" / "c" / "2" / "0" / "0"
    raw = bytearray(chunk_file.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    chunk_file.write_bytes(bytes(raw))
    report = Store.open(out).verify()
    assert not report.ok
    assert [c for c, _ in report.bad] == [2]
    assert report.summary().startswith("chunk 2 is corrupt")


def test_complete_store_is_immutable(tmp_path, tiny_recipe, tiny_dict):
    out = tmp_path / "d.zarr"
    first = generate(tiny_recipe, out, workers=0)
    mtimes = {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()}
    again = generate(tiny_recipe, out, workers=0)
    assert again.already_complete and again.content_sha256 == first.content_sha256
    other = parse_recipe({**tiny_dict, "version": "1.0.1"})
    with pytest.raises(StoreError, match=r"complete store of catalog tiny 1\.0\.0.*not tiny 1\.0\.1"):
        generate(other, out, workers=0)
    with pytest.raises(StoreError, match="immutable"):
        Store.open(out).write_chunk(0, {})
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()} == mtimes


def test_refuses_foreign_paths(tmp_path, tiny_recipe):
    plain = tmp_path / "plain"
    plain.mkdir()
    (plain / "notes.txt").write_text("mine")
    with pytest.raises(StoreError, match="not a readable zarr v3 store|not a datagen dataset store"):
        generate(tiny_recipe, plain, workers=0)
    assert (plain / "notes.txt").read_text() == "mine"
    zarr.open_group(tmp_path / "other.zarr", mode="w")
    with pytest.raises(StoreError, match="not a datagen dataset store"):
        generate(tiny_recipe, tmp_path / "other.zarr", workers=0)
    with pytest.raises(StoreError, match="does not exist"):
        generate(tiny_recipe, tmp_path / "missing" / "d.zarr", workers=0)


def test_incomplete_store_refused_by_reader_and_resumed(tmp_path, tiny_recipe):
    out = tmp_path / "d.zarr"
    reference = generate(tiny_recipe, tmp_path / "ref.zarr", workers=0).content_sha256
    generate(tiny_recipe, out, workers=0)
    store = Store.open(out)
    # Make it look like a crash: chunk 1 never got its checksum, chunk 3 is corrupt, not complete.
    store.root.attrs["complete"] = False
    store = Store.open(out)
    store.clear_chunk(1)
    (out / "samples" / "mask" / "c" / "3" / "0" / "0").write_bytes(b"garbage")
    with pytest.raises(StoreError, match="incomplete"):
        open_samples(out)
    result = generate(tiny_recipe, out, workers=0)
    assert result.chunks_written == 2 and result.chunks_repaired == 1
    assert result.content_sha256 == reference
    assert Store.open(out).verify().ok


def _atoms_layout():
    prov = (Variable("note", ("sample",), "str", "1", "free text"),)
    return Layout(n_samples=5, chunk_size=2, image_shape=(8, 8), provenance=prov, atoms_per_sample=10)


def _attrs():
    return dataset_attributes(title="t", summary="s", catalog_name="c", catalog_version="1.0.0",
                              recipe={"a": 1}, license="CC0-1.0", references="-", backend="test",
                              backend_version="0")


def test_atoms_csr_round_trip(tmp_path):
    layout = _atoms_layout()
    store = create_or_open(tmp_path / "a.zarr", layout, _attrs())
    rng = np.random.default_rng(0)
    models = []
    for i in range(5):
        n = int(rng.integers(0, 11))
        a = Atoms(numbers=rng.integers(1, 80, n), positions=rng.uniform(0, 30, (n, 3)),
                  cell=[30, 31, 32], pbc=(True, True, False))
        a.arrays["part"] = (rng.random(n) < 0.3).astype("int8")
        models.append(a)
    for c in range(layout.n_chunks):
        sl = layout.chunk_slice(c)
        n = sl.stop - sl.start
        data = {"image": np.zeros((n, 8, 8), "f4"), "mask": np.zeros((n, 8, 8), "u1"),
                "label": np.zeros(n, "i1"), "split": np.array(["train"] * n, object),
                "structure_id": np.arange(sl.start, sl.stop), "seed": np.zeros(n, "i8"),
                "note": np.array([f"sample {i}" for i in range(sl.start, sl.stop)], object)}
        store.write_chunk(c, data, models[sl])
    store.mark_complete()
    for i, a in enumerate(models):
        b = read_atoms(tmp_path / "a.zarr", i)
        assert len(b) == len(a)
        np.testing.assert_array_equal(b.numbers, a.numbers)
        np.testing.assert_allclose(b.positions, a.positions, atol=1e-5)
        np.testing.assert_array_equal(b.arrays["part"], a.arrays["part"])
        np.testing.assert_allclose(b.cell.lengths(), [30, 31, 32])
    ds = open_atoms(tmp_path / "a.zarr")
    assert ds.xyz.attrs["units"] == "angstrom"
    assert open_samples(tmp_path / "a.zarr").note.values.tolist()[3] == "sample 3"


def test_write_chunk_names_the_culprit(tmp_path):
    layout = _atoms_layout()
    store = create_or_open(tmp_path / "a.zarr", layout, _attrs())
    data = {"image": np.zeros((2, 8, 8), "f4"), "mask": np.zeros((2, 8, 8), "u1"), "label": np.zeros(2, "i1"),
            "split": np.array(["train"] * 2, object), "structure_id": np.arange(2), "seed": np.zeros(2, "i8")}
    with pytest.raises(StoreError, match="chunk 0: variable 'note' missing"):
        store.write_chunk(0, data)
    data["note"] = np.array(["a", "b"], object)
    data["image"] = np.zeros((2, 9, 8), "f4")
    with pytest.raises(StoreError, match=r"chunk 0: variable 'image' has shape \(2, 9, 8\), expected \(2, 8, 8\)"):
        store.write_chunk(0, data)
    data["image"] = np.zeros((2, 8, 8), "f4")
    too_big = [Atoms("C11", positions=np.zeros((11, 3)), cell=[1, 1, 1])] * 2
    with pytest.raises(StoreError, match="sample 0 has 11 atoms, more than the store's capacity of 10"):
        store.write_chunk(0, data, too_big)
    assert store.missing_chunks() == [0, 1, 2]
