"""`datagen structure build`: options reach the library, files round-trip, errors name the option."""

from __future__ import annotations

import ase.io
import numpy as np
import pytest
from typer.testing import CliRunner

from datagen.structures import SampleSpec
from datagen.cli.structure import app, spec_from_options

runner = CliRunner()


def test_options_become_the_spec_in_angstrom():
    spec = spec_from_options("decahedron", "Pt", 2.5, "Si", 1.5, 5.0, None)
    assert spec == SampleSpec(kind="decahedron", element="Pt", diameter=25.0, support="C", support_substitute="Si",
                              thickness=15.0, box=(50.0, 50.0, 50.0))
    assert spec_from_options("sphere", "Au", 2.0, "none", 2.0, 6.0, 4.0).support is None


@pytest.mark.parametrize("suffix", [".xyz", ".cif", ".traj"])
def test_build_writes_a_readable_model(tmp_path, suffix):
    out = tmp_path / f"model{suffix}"
    support = "none" if suffix == ".cif" else "C"  # ase's CIF reader needs minutes for a 5000-atom P1 cell
    result = runner.invoke(app, ["build", "stitched", "--diameter-nm", "1.8", "--box-nm", "5", "--seed", "3",
                                 "--support", support, "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "stitched (polycrystalline) Au" in result.output and str(out) in result.output
    atoms = ase.io.read(out)
    assert set(atoms.get_chemical_symbols()) == ({"Au"} if suffix == ".cif" else {"Au", "C"})
    assert np.allclose(atoms.cell.lengths(), 50.0)
    if suffix != ".cif":  # CIF keeps no per-atom tags
        tags = atoms.get_tags()
        assert set(tags) == {0, 1} and set(np.array(atoms.get_chemical_symbols())[tags == 1]) == {"Au"}


def test_same_seed_same_file(tmp_path):
    outs = [tmp_path / "a.xyz", tmp_path / "b.xyz"]
    for out in outs:
        assert runner.invoke(app, ["build", "amorphous", "--seed", "5", "--out", str(out)]).exit_code == 0
    assert outs[0].read_text() == outs[1].read_text()
    atoms = ase.io.read(outs[0])
    assert atoms.info["kind"] == "amorphous" and "part" in atoms.arrays


@pytest.mark.parametrize("args,name", [
    (["build", "pyramid"], "KIND"), (["build", "sphere", "--support", "Cu"], "--support"),
    (["build", "sphere", "--element", "Xx"], "element"), (["build", "sphere", "--diameter-nm", "-1"], "diameter"),
    (["build", "sphere", "--thickness-nm", "0"], "thickness"),
])
def test_bad_options_exit_with_one_line_naming_them(tmp_path, args, name):
    result = runner.invoke(app, args + ["--out", str(tmp_path / "x.xyz")])
    assert result.exit_code == 1
    assert result.output.startswith("error: ") and result.output.count("\n") == 1 and name in result.output
    assert not (tmp_path / "x.xyz").exists()


def test_bad_output_suffix(tmp_path):
    result = runner.invoke(app, ["build", "sphere", "--out", str(tmp_path / "x.pdf")])
    assert result.exit_code == 1 and "--out" in result.output and "Traceback" not in result.output
