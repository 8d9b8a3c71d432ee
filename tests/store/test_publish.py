"""`datagen publish`: one zip file that plain zarr, xarray and every datagen reader open, from a path or over
HTTP, lazily and with the same checks as a folder; a Croissant 1.1 description mlcroissant validates and
loads; the licence, a citation and a sha256 list; the same store always gives the same zip."""

from __future__ import annotations

import csv
import hashlib
import itertools
import json
import shutil
import zipfile

import numpy as np
import pytest
import xarray as xr
import yaml
import zarr
from typer.testing import CliRunner

from datagen.cli import app
from datagen.errors import StoreError
from datagen.publish import publish
from datagen.recipe import load_recipe, parse_recipe
from datagen.run import generate
from datagen.store import Store, open_samples
from tests.conftest import TINY

runner = CliRunner()
AUTHORS = ["Jane Q. Doe", "Max Mustermann"]


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """The catalog entry pattern-demo built here (it has a reference build), and its published folder."""
    root = tmp_path_factory.mktemp("pub")
    store = root / "pattern-demo.zarr"
    generate(load_recipe("pattern-demo"), store, workers=0)
    r = runner.invoke(app, ["publish", str(store), "--out", str(root / "published"), "--author", AUTHORS[0],
                            "--author", AUTHORS[1], "--url", "https://example.org/pattern-demo"])
    assert r.exit_code == 0, r.output
    return store, root / "published"


def _sha256(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_the_zip_reads_back_as_the_store_with_plain_zarr_and_passes_verify_against_the_entry(built):
    store, out = built
    archive = out / "pattern-demo.zarr.zip"
    with zipfile.ZipFile(archive) as zf:  # the ZipStore layout: the store's files at the root, stored
        names = zf.namelist()
        assert "zarr.json" in names and "samples/image/zarr.json" in names
        assert {i.compress_type for i in zf.infolist()} == {zipfile.ZIP_STORED}
    plain = xr.open_zarr(zarr.storage.ZipStore(archive, mode="r"), group="samples", consolidated=False)
    folder = open_samples(store)
    assert np.array_equal(plain["image"].values, folder["image"].values)
    assert np.array_equal(plain["label"].values, folder["label"].values)
    assert Store.open(archive, mode="r").content_sha256() == Store.open(store, mode="r").attrs["content_sha256"]
    r = runner.invoke(app, ["verify", str(archive), "--against", "pattern-demo"])
    assert r.exit_code == 0, r.output
    assert "bit-identical" in r.output
    r = runner.invoke(app, ["verify", str(archive)])
    assert r.exit_code == 0 and "all 9 chunks verified" in r.output


def test_the_folder_holds_card_licence_citation_table_and_a_complete_sha256_list(built):
    store, out = built
    sums = dict(line.split("  ")[::-1] for line in (out / "SHA256SUMS").read_text().splitlines())
    files = {p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()} - {"SHA256SUMS"}
    assert set(sums) == files
    assert {"pattern-demo.zarr.zip", "README.md", "samples.csv", "croissant.json", "LICENSE", "CITATION.cff",
            "README_files/preview.png"} <= files
    assert all(_sha256(out / name) == h for name, h in sums.items())
    assert "Creative Commons Attribution 4.0 International Public License" in (out / "LICENSE").read_text()
    cff = yaml.safe_load((out / "CITATION.cff").read_text())
    assert cff["cff-version"] == "1.2.0" and cff["type"] == "dataset" and cff["license"] == "CC-BY-4.0"
    assert cff["authors"][0] == {"given-names": "Jane Q.", "family-names": "Doe"}
    assert cff["identifiers"][0]["value"] == "sha256:" + Store.open(store, mode="r").attrs["content_sha256"]
    card = (out / "README.md").read_text()
    assert "## Download and load" in card and "https://example.org/pattern-demo/pattern-demo.zarr.zip" in card
    rows = list(csv.DictReader((out / "samples.csv").open()))
    ds = open_samples(store)
    assert [r["split"] for r in rows] == ds["split"].values.astype(str).tolist()
    assert np.array_equal(np.array([r["diameter_px"] for r in rows], np.float32), ds["diameter_px"].values)  # exact


def test_croissant_validates_and_loads_the_records_with_mlcroissant(built):
    mlc = pytest.importorskip("mlcroissant")
    store, out = built
    doc = json.loads((out / "croissant.json").read_text())
    assert doc["conformsTo"] == "http://mlcommons.org/croissant/1.1"
    files = {d["name"]: d for d in doc["distribution"] if d["@type"] == "cr:FileObject"}
    assert all(d["sha256"] == _sha256(out / name) for name, d in files.items())
    assert files["pattern-demo.zarr.zip"]["contentUrl"] == "https://example.org/pattern-demo/pattern-demo.zarr.zip"
    # the records are read from the local copy: point the file URLs at it
    local = {**doc, "distribution": [{**d, "contentUrl": d["name"]} if d["@type"] == "cr:FileObject" else d
                                     for d in doc["distribution"]]}
    (out.parent / "local").mkdir(exist_ok=True)
    for name in files:
        shutil.copy(out / name, out.parent / "local" / name)
    (out.parent / "local" / "croissant.json").write_text(json.dumps(local))
    dataset = mlc.Dataset(jsonld=out.parent / "local" / "croissant.json")  # raises on any validation error
    assert not dataset.metadata.issues.errors and not dataset.metadata.issues.warnings
    arrays = {f.name: f for rs in dataset.metadata.record_sets if rs.name == "arrays" for f in rs.fields}
    assert arrays["image"].is_array and arrays["image"].array_shape_tuple == (128, 128)
    ds = open_samples(store)
    names = dict(zip(range(3), ds["label"].attrs["flag_meanings"].split()))
    records = list(itertools.islice(dataset.records("samples"), 20))
    assert [r["samples/sample"] for r in records] == list(range(20))
    assert [r["samples/class"].decode() for r in records] == [names[int(v)] for v in ds["label"].values[:20]]


def test_the_same_store_publishes_to_the_same_zip_bytes(built, tmp_path):
    store, out = built
    again = publish(store, tmp_path / "again", authors=["Someone Else"])
    assert _sha256(again.archive) == _sha256(out / "pattern-demo.zarr.zip")


def test_over_http_the_zip_is_read_lazily_and_verified(built, http_folder):
    store, out = built
    base, served = http_folder(out)
    url = f"{base}/pattern-demo.zarr.zip"
    size = (out / "pattern-demo.zarr.zip").stat().st_size
    ds = open_samples(url)
    image = ds["image"][0].values  # the first chunk only
    assert np.array_equal(image, open_samples(store)["image"][0].values)
    assert 0 < served["bytes"] < size / 2, (served, size)
    r = runner.invoke(app, ["verify", url, "--against", "pattern-demo"])
    assert r.exit_code == 0 and "bit-identical" in r.output, r.output
    r = runner.invoke(app, ["info", url])
    assert r.exit_code == 0 and "pattern-demo 1.0.0, 144 samples" in r.output
    r = runner.invoke(app, ["verify", f"{base}/missing.zarr.zip"])
    assert r.exit_code == 1 and "missing.zarr.zip" in r.output and "Traceback" not in r.output


def _flip_member(archive, member: str, tmp_path):
    """A copy of ``archive`` with one byte in the middle of ``member`` changed."""
    bad = tmp_path / archive.name
    shutil.copy(archive, bad)
    with zipfile.ZipFile(bad) as zf:
        info = zf.getinfo(member)
    with open(bad, "r+b") as fh:
        fh.seek(info.header_offset + 26)
        name_len, extra_len = np.frombuffer(fh.read(4), "<u2")
        at = info.header_offset + 30 + int(name_len) + int(extra_len) + info.compress_size // 2
        fh.seek(at)
        byte = fh.read(1)
        fh.seek(at)
        fh.write(bytes([byte[0] ^ 0xFF]))
    return bad


def test_a_damaged_zip_is_named_chunk_by_chunk_and_never_served(built, tmp_path):
    store, out = built
    bad = _flip_member(out / "pattern-demo.zarr.zip", "samples/image/c/2/0/0", tmp_path)
    r = runner.invoke(app, ["verify", str(bad)])
    assert r.exit_code == 1 and "chunk 2" in r.output and "download it again" in r.output
    assert "Traceback" not in r.output
    ds = open_samples(bad)
    ds["image"][0].values  # chunk 0 is intact
    with pytest.raises(StoreError, match="chunk 2"):
        ds["image"][2 * 16].values


def test_refusals_are_one_line_and_write_nothing(built, tmp_path):
    store, out = built
    before = (out / "SHA256SUMS").read_text()
    r = runner.invoke(app, ["publish", str(store), "--out", str(out), "--author", "A B"])
    assert r.exit_code == 1 and "exists; pass --force" in r.output
    assert (out / "SHA256SUMS").read_text() == before
    r = runner.invoke(app, ["publish", str(store), "--out", str(tmp_path / "x")])
    assert r.exit_code == 1 and "--author" in r.output and not (tmp_path / "x").exists()
    r = runner.invoke(app, ["publish", str(out / "pattern-demo.zarr.zip"), "--out", str(tmp_path / "y"), "-a", "A B"])
    assert r.exit_code == 1 and "already a published" in r.output
    r = runner.invoke(app, ["generate", "pattern-demo", "--out", str(out / "pattern-demo.zarr.zip")])
    assert r.exit_code == 1 and "read-only" in r.output
    partial = tmp_path / "partial.zarr"
    generate(parse_recipe(TINY), partial, workers=0)
    Store.open(partial).update_attrs(complete=False)  # as a crash leaves it
    r = runner.invoke(app, ["publish", str(partial), "--out", str(tmp_path / "z"), "-a", "A B"])
    assert r.exit_code == 1 and "incomplete" in r.output and not (tmp_path / "z").exists()
    other = parse_recipe({**TINY, "license": "LicenseRef-mine"})
    mine = tmp_path / "mine.zarr"
    generate(other, mine, workers=0)
    r = runner.invoke(app, ["publish", str(mine), "--out", str(tmp_path / "w"), "-a", "A B"])
    assert r.exit_code == 1 and "--license-file" in r.output and not (tmp_path / "w").exists()
    (tmp_path / "LICENSE.txt").write_text("my terms")
    r = runner.invoke(app, ["publish", str(mine), "--out", str(tmp_path / "w"), "-a", "A B",
                            "--license-file", str(tmp_path / "LICENSE.txt")])
    assert r.exit_code == 0, r.output
    assert (tmp_path / "w" / "LICENSE").read_text() == "my terms"
