"""The reference check tells three cases apart from a fingerprint shipped beside a catalog entry, without
the reference dataset: bit-identical, the same dataset within numerical noise, different content."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from datagen.errors import StoreError
from datagen.recipe import parse_recipe
from datagen.run import generate
from datagen.store import Store, open_samples, read_atoms
from datagen.store.fingerprint import NOISE, compute_fingerprint, write_fingerprint
from datagen.store.reference import check_against, check_reference
from tests.conftest import TINY


def _rewrite(path, change) -> None:
    """Rewrite chunk 0 of a complete store with ``change(data)`` applied, as a rebuild would have written it."""
    store = Store.open(path)
    store.update_attrs(complete=False)
    store = Store.open(path)
    sl = store.layout.chunk_slice(0)
    ds = open_samples(path, allow_incomplete=True).isel(sample=sl)
    data = {name: var.values.copy() for name, var in ds.data_vars.items()}
    change(data)
    atoms = None if not store.layout.atoms_per_sample else [read_atoms(path, i) for i in range(sl.start, sl.stop)]
    store.write_chunk(0, data, atoms)
    store.mark_complete()


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """A build of TINY, its fingerprint shipped in a catalog folder, and the entry naming its hash."""
    root = tmp_path_factory.mktemp("ref")
    out = generate(parse_recipe(TINY), root / "ref.zarr", workers=0)
    catalogs = root / "catalogs"
    write_fingerprint(root / "ref.zarr", catalogs / "fingerprints" / "tiny-1.0.0-cpu.npz",
                      {"content_sha256": out.content_sha256, "generation": {"torch": "reference-env"}})
    recipe = parse_recipe({**TINY, "reference_content_sha256": {"cpu": out.content_sha256}})
    return root / "ref.zarr", catalogs, recipe


@pytest.fixture
def with_catalog(reference, monkeypatch):
    monkeypatch.setenv("DATAGEN_CATALOGS", str(reference[1]))
    return reference


def test_an_identical_build_is_bit_identical(with_catalog):
    path, _, recipe = with_catalog
    check = check_against(path, recipe)
    assert check.status == "identical" and check.summary().startswith("bit-identical")


def test_rounding_in_the_images_is_numerical_noise_with_its_size(with_catalog, tmp_path):
    path, _, recipe = with_catalog
    copy = tmp_path / "noisy.zarr"
    shutil.copytree(path, copy)
    rng = np.random.default_rng(0)
    _rewrite(copy, lambda d: d.update(image=d["image"] * (1 + 1e-6 * rng.standard_normal(d["image"].shape)
                                                           ).astype(np.float32)))
    check = check_against(copy, recipe)  # does not raise: exit 0
    assert check.status == "noise" and check.content != recipe.reference_for("cpu")
    (image,) = [d for d in check.differences if d.name == "image"]
    assert 0 < image.max_relative < NOISE["image"] and not image.samples
    assert [d.name for d in check.differences] == ["image"]  # everything else is exact
    text = check.summary()
    assert "within numerical noise" in text and "image" in text and "reference: torch reference-env" in text


def test_a_changed_value_is_different_content_naming_the_samples_and_variables(with_catalog, tmp_path):
    path, _, recipe = with_catalog
    copy = tmp_path / "changed.zarr"
    shutil.copytree(path, copy)

    def change(d):
        d["contrast"][2] *= 1.5
        d["image"][2] += 0.2

    _rewrite(copy, change)
    check = check_reference(copy, recipe)
    assert check.status == "different" and not check.ok
    names = {d.name: d.samples for d in check.differences}
    assert names["contrast"] == [2] and names["image"] == [2]
    with pytest.raises(StoreError, match=r"different content .*sample 2 differs in contrast, image"):
        check_against(copy, recipe)


def test_a_changed_recipe_value_is_different_content_naming_the_field(with_catalog, tmp_path):
    _, _, recipe = with_catalog
    changed = {**TINY, "pattern": {**TINY["pattern"], "diameter_px": [22, 40]}}
    out = tmp_path / "other.zarr"
    generate(parse_recipe(changed), out, workers=0)
    check = check_reference(out, recipe)
    assert check.status == "different"
    assert any(r.startswith("pattern.diameter_px") for r in check.recipe)
    assert "diameter_px" in {d.name for d in check.differences}  # and the content shows it, sample by sample
    with pytest.raises(StoreError, match=r"the recipe differs: pattern.diameter_px \(\[22.0, 40.0\] here"):
        check_against(out, recipe)


def test_without_a_fingerprint_a_differing_hash_cannot_be_judged(reference, tmp_path, monkeypatch):
    path, _, _ = reference
    monkeypatch.setenv("DATAGEN_CATALOGS", str(tmp_path))  # no fingerprints here
    recipe = parse_recipe({**TINY, "name": "tiny2", "reference_content_sha256": "0" * 64})
    store = tmp_path / "t2.zarr"
    generate(recipe, store, workers=0)
    with pytest.raises(StoreError, match="ships no fingerprint to tell numerical noise from different content"):
        check_against(store, recipe)


def test_fingerprints_are_small_and_exact_where_they_must_be(reference):
    path, _, _ = reference
    fp = compute_fingerprint(path)
    n = Store.open(path, mode="r").layout.n_samples
    assert all(len(v) == n for v in fp.values())
    assert fp["float/image"].shape == (n, 18) and fp["exact/mask"].shape == (n, 2)
    assert fp["exact/label"].dtype == np.int64 and fp["exact/split"].dtype.kind == "U"


def test_recording_a_reference_writes_hash_and_fingerprint_and_verify_then_agrees(tmp_path, monkeypatch):
    import yaml
    from typer.testing import CliRunner

    from datagen.cli import app

    catalogs = tmp_path / "catalogs"
    catalogs.mkdir()
    recipe_file = catalogs / "tiny.yaml"
    recipe_file.write_text("# a comment that stays\n" + yaml.safe_dump(TINY, sort_keys=False))
    monkeypatch.setenv("DATAGEN_CATALOGS", str(catalogs))
    run = CliRunner().invoke
    out = tmp_path / "t.zarr"
    assert run(app, ["generate", "tiny", "--out", str(out), "--workers", "0"]).exit_code == 0
    r = run(app, ["reference", str(out)])
    assert r.exit_code == 0, r.output
    content = Store.open(out, mode="r").attrs["content_sha256"]
    text = recipe_file.read_text()
    assert text.startswith("# a comment that stays\n") and f"reference_content_sha256:\n  cpu: {content}\n" in text
    assert (catalogs / "fingerprints" / "tiny-1.0.0-cpu.npz").is_file()
    r = run(app, ["verify", str(out), "--against", "tiny"])
    assert r.exit_code == 0 and "bit-identical" in r.output
    # an existing reference is replaced only with --force, and the file is kept as it was
    r = run(app, ["reference", str(out)])
    assert r.exit_code == 1 and "already records a cpu reference build" in r.output and "--force" in r.output
    assert recipe_file.read_text() == text
    assert run(app, ["reference", str(out), "--force"]).exit_code == 0


def test_preview_and_card_refuse_to_overwrite_without_force(reference, tmp_path):
    from typer.testing import CliRunner

    from datagen.cli import app

    path = reference[0]
    run = CliRunner().invoke
    png = tmp_path / "p.png"
    png.write_bytes(b"keep")
    r = run(app, ["preview", str(path), "--out", str(png)])
    assert r.exit_code == 1 and "exists; pass --force to replace it" in r.output and png.read_bytes() == b"keep"
    assert run(app, ["preview", str(path), "--out", str(png), "--force"]).exit_code == 0
    card = tmp_path / "card.md"
    card.write_text("keep")
    r = run(app, ["card", str(path), "--out", str(card)])
    assert r.exit_code == 1 and card.read_text() == "keep"
    assert run(app, ["card", str(path), "--out", str(card), "--force"]).exit_code == 0 and card.read_text() != "keep"
