"""End to end with the built-in engine: a tiny simulated catalog, checked against its stored atomic models."""

from __future__ import annotations

import numpy as np
import pytest
from ase.data import atomic_numbers

from datagen.errors import RecipeError
from datagen.run import generate
from datagen.store.reference import check_against
from datagen.generators.mask import particle_atoms_mask
from datagen.recipe import parse_recipe, with_backend
from datagen.store import CLASS_NAMES, Store, open_samples, read_atoms
from datagen.structures import PARTICLE_KINDS
from tests.conftest import DRPROBE_STANDINS

SIM = {
    "format": 1, "name": "simtiny", "version": "1.0.0", "description": "tiny simulated catalog",
    "generator": "simulation", "seed": 11, "chunk_size": 3,
    "classes": {"amorphous": 2, "monocrystalline": 2, "polycrystalline": 2},
    "simulation": {
        "particle": {"diameter_nm": [1.0, 1.4],
                     "kinds": {"amorphous": {"amorphous": 1}, "monocrystalline": {"sphere": 1, "cuboctahedron": 1},
                               "polycrystalline": {"stitched": 1, "icosahedron": 1}}},
        "support": {"thickness_nm": [0.5, 0.8]},
        "box_nm": [3.0, 3.0, 3.0],
        "optics": {"defocus_nm": [-4, 5]},
        "detector": {"pixel_size_nm": 0.05},
        "numerics": {"sampling_A": 0.2},
    },
}


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    out = tmp_path_factory.mktemp("sim") / "s.zarr"
    result = generate(parse_recipe(SIM), out, workers=0)
    return out, result


def test_labels_masks_and_provenance_match_the_atomic_models(built):
    out, _ = built
    ds = open_samples(out)
    assert ds.image.shape == (6, 60, 60)  # 3 nm box at 0.05 nm pixels
    for i in range(ds.sizes["sample"]):
        s = ds.isel(sample=i)
        kind = str(s.kind.values)
        assert CLASS_NAMES[int(s.label)] == PARTICLE_KINDS[kind]
        atoms = read_atoms(out, i)
        particle = atoms.arrays["part"] == 1
        assert particle.sum() == int(s.n_atoms_particle) and (~particle).sum() == int(s.n_atoms_support)
        assert set(atoms.numbers[particle]) == {atomic_numbers["Au"]}
        assert set(atoms.numbers[~particle]) == {atomic_numbers["C"]}
        np.testing.assert_allclose(atoms.cell.lengths(), [30, 30, 30])
        # the mask is the particle's projected footprint at the output pixel size
        mask = s["mask"].values
        np.testing.assert_array_equal(mask, particle_atoms_mask(atoms, mask.shape, (0.5, 0.5)))
        ys, xs = np.nonzero(mask)
        assert abs(xs.mean() * 0.05 - float(s.particle_x_nm)) < 0.1
        assert abs(ys.mean() * 0.05 - float(s.particle_y_nm)) < 0.1
        # the particle's atoms fill the equivalent sphere of the stored diameter (bulk Au density)
        if kind in ("sphere", "stitched"):
            n_bulk = 4 / 4.08**3
            d_eq = (6 * particle.sum() / (np.pi * n_bulk)) ** (1 / 3) / 10
            assert d_eq == pytest.approx(float(s.diameter_nm), rel=0.03)
        # recorded optics lie in the recipe's ranges
        assert -4 <= float(s.defocus_nm) <= 5 and 4.5 <= float(s.focal_spread_nm) <= 5.5
        # the particle scatters more than the thin film: more contrast inside its footprint
        image = s.image.values
        assert image[mask == 1].std() > image[mask == 0].std()
        assert 0.5 < image.mean() < 1.5  # vacuum-normalised intensities
    assert set(np.unique(ds.kind.values.tolist())) <= {"amorphous", "sphere", "cuboctahedron", "stitched", "icosahedron"}


def test_same_content_with_one_and_two_dask_workers(built, tmp_path):
    _, serial = built
    one = generate(parse_recipe(SIM), tmp_path / "w1.zarr", workers=1)
    two = generate(parse_recipe(SIM), tmp_path / "w2.zarr", workers=2)
    assert one.content_sha256 == two.content_sha256 == serial.content_sha256


def test_verify_against_a_recorded_reference(built, tmp_path):
    out, result = built
    with pytest.raises(Exception, match="records no reference build"):
        check_against(out, parse_recipe(SIM))
    reference = parse_recipe({**SIM, "reference_content_sha256": result.content_sha256})
    assert reference.sha256() == parse_recipe(SIM).sha256()  # recording the reference keeps the recipe
    assert check_against(out, reference).status == "identical"
    assert check_against(out, reference).content == result.content_sha256
    wrong = parse_recipe({**SIM, "reference_content_sha256": "0" * 64})
    import torch

    with pytest.raises(Exception, match="differs from the cpu reference build") as info:
        check_against(out, wrong)
    # the message names this build's environment, which the last bits of a CPU build depend on
    assert f"torch {torch.__version__}" in str(info.value)
    assert f"cpu_capability {torch.backends.cpu.get_cpu_capability()}" in str(info.value)
    other = parse_recipe({**SIM, "seed": 12, "reference_content_sha256": result.content_sha256})
    with pytest.raises(Exception, match=r"different content .*the recipe differs: seed \(11 here, 12 in the entry\)"):
        check_against(out, other)


def test_backend_override_makes_another_recipe():
    r = parse_recipe(SIM)
    assert with_backend(r, "abtem").simulation.backend == "abtem"
    assert with_backend(r, "abtem").sha256() != r.sha256()
    with pytest.raises(RecipeError, match="simulation.backend"):
        with_backend(r, "holography")


@pytest.mark.parametrize("change, message", [
    ({"box_nm": [3.0, 3.0, 2.0]}, r"box_nm: z must hold the tallest particle"),
    ({"particle": {"element": "Xx"}}, r"element: unknown element 'Xx'"),
    ({"particle": {"kinds": {"amorphous": {"sphere": 1}}}}, r"kinds.amorphous: 'sphere' is not a amorphous kind"),
    ({"particle": {"diameter_nm": [1.0, 1.4], "kinds": {"amorphous": {"amorphous": 1}}}},
     r"2 monocrystalline samples requested but no monocrystalline model kinds given"),
    ({"optics": {"defocus_nm": [5, -4]}}, r"defocus_nm: range \[5.0, -4.0\] has low > high"),
    ({"optics": {"voltage_kv": 5}}, r"simulation.optics.voltage_kv: Input should be greater than or equal to 10"),
    ({"numerics": {"sampling_A": 0}}, r"simulation.numerics.sampling_A"),
    ({"detector": {"mtf_q0": 0.5, "mtf_table": [1.0, 0.5]}}, r"either mtf_q0"),
])
def test_bad_simulation_recipes_name_the_field(change, message):
    with pytest.raises(RecipeError, match=message):
        parse_recipe({**SIM, "simulation": {**SIM["simulation"], **change}})


def test_mtf_file_is_inlined_into_the_recipe(tmp_path, write_recipe):
    (tmp_path / "cam.mtf").write_text("3\n1.0\n0.5\n0.25\n")
    data = {**SIM, "simulation": {**SIM["simulation"], "detector": {"pixel_size_nm": 0.05, "mtf_file": "cam.mtf"}}}
    from datagen.recipe import load_recipe_file

    recipe = load_recipe_file(write_recipe(data))
    assert recipe.simulation.detector.mtf_table == (1.0, 0.5, 0.25)
    assert recipe.simulation.detector.mtf_source == "cam.mtf"
    (tmp_path / "cam.mtf").write_text("5\n1.0\n")
    with pytest.raises(RecipeError, match=r"mtf_file: .*announces 5 points but holds 1"):
        load_recipe_file(write_recipe(data))


def test_shipped_simulation_catalogs_fit_their_boxes():
    from datagen.recipe import load_recipe
    from datagen.generators.simulated import atoms_capacity, image_shape

    for name, n in [("simulation-c-v1", (1252, 1806, 507)), ("simulation-c-si-v1", (1998, 2630, 507)),
                    ("poly-v1", (1998, 2630, 3255))]:
        r = load_recipe(name)
        assert tuple(r.classes.values()) == n
        assert r.simulation.optics.voltage_kv == 300 and r.simulation.optics.defocus_nm == (-4.0, 5.0)
    for name in ("demo", "pt-200kv-v1", "ag-80kv-v1"):
        r = load_recipe(name)
        assert image_shape(r.simulation)[0] > 64 and atoms_capacity(r.simulation) > 1000


def test_generation_through_the_drprobe_backend_orchestration(tmp_path, monkeypatch):
    """Orchestration only: Dr Probe's programs are stand-ins (tests/drprobe_standins) that write files
    in Dr Probe's formats with made-up content; this checks that the generator drives the backend
    end to end (files, exit codes, version in the provenance), not physics."""
    pytest.importorskip("drprobe", reason="drprobe-interface is not installed (pip install .[drprobe])")
    from pathlib import Path

    recipe = with_backend(parse_recipe({**SIM, "classes": {"amorphous": 1, "monocrystalline": 1,
                                                            "polycrystalline": 1}}), "drprobe")
    generate(recipe, tmp_path / "dp.zarr", workers=0,
             backend_options={"bin_dir": str(DRPROBE_STANDINS)})
    store = Store.open(tmp_path / "dp.zarr")
    assert store.complete and store.attrs["backend"] == "drprobe"
    assert "celslc" in store.attrs["backend_version"] and "wavimg" in store.attrs["backend_version"]
    ds = open_samples(tmp_path / "dp.zarr")
    assert ds.image.shape == (3, 60, 60) and np.isfinite(ds.image.values).all()
    assert all("Dr Probe" in b for b in ds.backend.values.tolist())


def test_drprobe_backend_without_programs_fails_at_once(tmp_path, monkeypatch):
    from datagen.errors import DatagenError
    from datagen.generators import simulated as simulation

    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.delenv("DATAGEN_DRPROBE_BIN", raising=False)
    simulation._backend.cache_clear()
    try:
        with pytest.raises(DatagenError, match="celslc, msa, wavimg not found"):
            generate(with_backend(parse_recipe(SIM), "drprobe"), tmp_path / "dp.zarr", workers=0)
    finally:
        simulation._backend.cache_clear()
    assert not (tmp_path / "dp.zarr").exists()


def test_interrupted_then_resumed_equals_uninterrupted(built, tmp_path):
    _, serial = built
    out = tmp_path / "i.zarr"

    def stop(chunk, n, digest):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        generate(parse_recipe(SIM), out, workers=0, on_chunk=stop)
    assert len(Store.open(out).written_chunks()) == 1
    resumed = generate(parse_recipe(SIM), out, workers=0)
    assert resumed.chunks_written == 1 and resumed.content_sha256 == serial.content_sha256


def test_references_per_device_class(built):
    out, result = built
    cpu_only = parse_recipe({**SIM, "reference_content_sha256": {"cpu": result.content_sha256}})
    assert check_against(out, cpu_only).content == result.content_sha256
    cuda_only = parse_recipe({**SIM, "reference_content_sha256": {"cuda": result.content_sha256}})
    with pytest.raises(Exception, match="no reference build for cpu builds"):
        check_against(out, cuda_only)
    with pytest.raises(RecipeError, match="reference_content_sha256"):
        parse_recipe({**SIM, "reference_content_sha256": {"tpu": result.content_sha256}})


def test_compare_tells_rounding_from_real_differences(built, tmp_path):
    """`datagen compare`: a store against itself is identical; a copy with one image nudged differs in
    that sample's image only, by the nudge; another seed differs in what it draws."""
    import shutil

    import zarr

    from datagen.report.summary import compare

    out, _ = built
    assert compare(out, out)["identical"]
    copy = tmp_path / "copy.zarr"
    shutil.copytree(out, copy)
    image = zarr.open_group(copy, mode="r+")["samples/image"]
    image[2, 5, 7] = image[2, 5, 7] + np.float32(1e-3)
    rebuilt = Store.open(copy)  # as a rebuild writes it: the chunk's checksum is that of its new bytes
    rebuilt.root["checksums"][0] = np.frombuffer(rebuilt.chunk_digest(0), np.uint8)
    c = compare(out, copy)
    assert not c["identical"] and c["same_recipe"]
    rows = {r["variable"]: r for r in c["variables"]}
    assert rows["image"]["differing"] == 1 and rows["image"]["max_abs_difference"] == pytest.approx(1e-3, rel=1e-3)
    assert all(r["differing"] == 0 for name, r in rows.items() if name != "image")
    assert {"xyz", "Z", "label", "dose_e_per_A2"} <= set(rows)  # coordinates-as-arrays and NaN fields compared
    other = generate(parse_recipe({**SIM, "seed": 99}), tmp_path / "other.zarr", workers=0)
    c = compare(out, other.path)
    rows = {r["variable"]: r for r in c["variables"]}
    assert not c["same_recipe"] and rows["defocus_nm"]["differing"] > 0 and rows["xyz"]["differing"] > 0


def test_dataset_card_describes_the_store(built, tmp_path):
    """The card's balance table, recipe and cost are those of the store; its pictures are PNGs beside it."""
    import re

    import torch
    import yaml

    from datagen.report.card import write_card
    from datagen.errors import DatagenError
    from datagen.store import open_samples

    out, result = built
    card = write_card(out, tmp_path / "card.md")
    text = card.read_text()
    ds = open_samples(out)
    for split in ("train", "val", "test"):
        counts = [int(((ds.split.values == split) & (ds.label.values == c)).sum()) for c in range(3)]
        assert f"| {split} | {counts[0]} | {counts[1]} | {counts[2]} | {sum(counts)} |" in text
    assert f"| all | 2 | 2 | 2 | 6 |" in text and result.content_sha256 in text
    recipe = yaml.safe_load(re.search(r"```yaml\n(.*?)```", text, re.S).group(1))
    assert parse_recipe(recipe).sha256() == parse_recipe(SIM).sha256()
    assert "| workers | in process |" in text and f"| torch | {torch.__version__} |" in text
    assert "doi:10.1039/D4NA00266K" in text and "CC-BY-4.0" in text
    for name in ("preview.png", "histograms.png"):
        assert (tmp_path / "card_files" / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert f"card_files/{name}" in text
    with pytest.raises(DatagenError, match="Markdown"):
        write_card(out, tmp_path / "card.txt")


def test_recipe_check_warns_when_the_optics_hide_the_lattice_fringes(write_recipe):
    """Pt at 200 kV: a 10 mrad aperture passes d >= 2.51 Å and blocks {111} (2.26 Å): warned, in `recipe
    check` and when generating; at 20 mrad the fringes pass; an amorphous-only set is not warned."""
    from typer.testing import CliRunner

    from datagen.cli import app
    from datagen.recipe import load_recipe
    from datagen.recipe.describe import describe_recipe

    data = load_recipe("pt-200kv-v1").to_json_dict()
    assert describe_recipe(parse_recipe(data))["warnings"] == []
    data["simulation"]["optics"]["aperture_mrad"] = 10.0
    d = describe_recipe(parse_recipe(data))
    assert d["lattice_fringes"]["resolution_A"] == pytest.approx(2.508, abs=1e-3)
    assert [r["passed"] for r in d["lattice_fringes"]["reflections"]] == [False, False, False]
    assert len(d["warnings"]) == 1 and "Pt {111} planes are 2.26 Å apart" in d["warnings"][0]
    r = CliRunner().invoke(app, ["recipe", "check", str(write_recipe(data))])
    assert r.exit_code == 0 and "warning: no lattice fringes" in r.output
    amorphous = {**data, "classes": {"amorphous": 10}}
    assert describe_recipe(parse_recipe(amorphous))["warnings"] == []
    # a focal spread that damps the {111} beam below 0.1 is warned too
    data["simulation"]["optics"].update(aperture_mrad=30.0, focal_spread_nm=40.0)
    assert "temporal envelope" in describe_recipe(parse_recipe(data))["warnings"][0]
