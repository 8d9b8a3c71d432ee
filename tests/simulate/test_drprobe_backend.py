"""The Dr Probe backend's orchestration of celslc, msa and wavimg, run against stand-in executables.

This checks orchestration, not physics. tests/drprobe_standins/ holds Python stand-ins for Dr Probe's
programs (Dr Probe itself is on no package registry): they read the command lines and parameter files
as Dr Probe documents them and write slice, wave and image files in its formats, with made-up,
deterministic content. Their image is I = |ψ|²·(1 + C1/1000 nm) − arg(ψ)/10 with ψ = exp(i·Σφ) and φ
a phase of 0.5·Z/79 on each atom's pixel, so a vacuum image carries the defocus wavimg read from its
parameter file, and an atom shows as a dark pixel where the backend put it. No image here is an HRTEM
image: whether Dr Probe's physics agrees with the other backends needs the real programs.
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
import pickle
import re
import struct
import sys
from pathlib import Path

import numpy as np
import pytest
from ase import Atoms

from datagen.errors import DatagenError
from datagen.simulate.backends.drprobe import DrProbeBackend, find_executables, read_image, write_wavimg_prm
from datagen.simulate.grid import grid_for_cell
from datagen.simulate.params import Optics, SimulationSettings
from datagen.simulate.phonons import displaced_positions, displacement_table, rms_displacement
from tests.conftest import DRPROBE_STANDINS

STANDINS = DRPROBE_STANDINS
CELL = (20.0, 24.0, 10.0)  # [Å]
SETTINGS = SimulationSettings(sampling_A=0.5, slice_thickness_A=2.0)  # 40 x 48 pixels, 5 slices
needs_library = pytest.mark.skipif(importlib.util.find_spec("drprobe") is None,
                                   reason="drprobe-interface is not installed (pip install .[drprobe])")


@pytest.fixture
def standins(monkeypatch):
    """The stand-ins first on PATH, then the running Python (for their ``#!/usr/bin/env python3``)."""
    for name in ("DRPROBE_STANDIN_FAIL", "DRPROBE_STANDIN_SLEEP"):
        monkeypatch.delenv(name, raising=False)
    path = [str(STANDINS), str(Path(sys.executable).parent), os.environ.get("PATH", "")]
    monkeypatch.setenv("PATH", os.pathsep.join(path))


def one_atom(frac=(0.25, 0.625, 0.3), symbol="Au") -> Atoms:
    return Atoms(symbol, scaled_positions=[frac], cell=CELL, pbc=True)


def vacuum() -> Atoms:
    return Atoms(cell=CELL, pbc=True)


def fortran(line: str, n: int) -> list:
    """The first ``n`` values of a line as Fortran's list-directed read takes them (numbers or quoted strings)."""
    tokens = re.findall(r"'[^']*'|[^\s,']+", line)[:n]
    return [t.strip("'") if t.startswith("'") else float(t) for t in tokens]


def kept(work: Path, sample: int) -> Path:
    (folder,) = work.glob(f"drprobe-s{sample:04d}-*")
    return folder


def calls(folder: Path) -> dict[str, list[str]]:
    return {c["program"]: c["argv"] for c in map(json.loads, (folder / "drprobe_calls.jsonl").read_text().splitlines())}


def cel_atoms(path: Path) -> tuple[list[float], np.ndarray]:
    lines = path.read_text().splitlines()
    atoms = np.array([[float(v) for v in line.split()[1:6]] for line in lines[2:-1]])
    return [float(v) for v in lines[1].split()], atoms


def test_missing_programs_fail_at_once_saying_what_to_install(monkeypatch, tmp_path):
    (tmp_path / "empty").mkdir()
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    with pytest.raises(DatagenError) as err:
        DrProbeBackend()
    message = str(err.value)
    assert "celslc, msa, wavimg not found on PATH" in message and "https://er-c.org/barthel/drprobe/" in message
    assert "\n" not in message

    partial = tmp_path / "partial"
    partial.mkdir()
    (partial / "celslc").write_text("#!/bin/sh\n")
    (partial / "celslc").chmod(0o755)
    with pytest.raises(DatagenError, match=rf"msa, wavimg not found in {re.escape(str(partial))}: install"):
        find_executables(partial)

    monkeypatch.setitem(sys.modules, "drprobe", None)  # makes `import drprobe` raise ImportError
    with pytest.raises(DatagenError, match=r"drprobe/ and drprobe-interface \(pip install \.\[drprobe\]\)"):
        DrProbeBackend()
    with pytest.raises(DatagenError, match=r"drprobe-interface \(pip install \.\[drprobe\]\) is not installed"):
        DrProbeBackend(bin_dir=STANDINS)


@needs_library
def test_images_have_the_grid_shape_sampling_and_orientation(standins, tmp_path):
    backend = DrProbeBackend(keep_files=True, work_dir=tmp_path)
    images, sampling = backend.simulate([one_atom(), vacuum()], [Optics(defocus_nm=-4.0), Optics(defocus_nm=3.0)],
                                        SETTINGS)
    grid = grid_for_cell(CELL[:2], SETTINGS.sampling_A)
    assert images.dtype == np.float32 and images.shape == (2, *grid.gpts) == (2, 48, 40)
    assert sampling == pytest.approx(grid.sampling)
    np.testing.assert_allclose(images[1], 1.003, atol=1e-6)  # overfocus +3 nm reached wavimg with its sign
    np.testing.assert_allclose(images[0][:20], 0.996, atol=1e-6)  # underfocus -4 nm
    # the atom at fractional (x, y) = (0.25, 0.625): row 0.625·48, column 0.25·40 of the (ny, nx) image
    assert np.unravel_index(images[0].argmin(), images[0].shape) == (30, 10)
    np.testing.assert_array_equal(images[0], read_image(kept(tmp_path, 0) / "image.dat", (40, 48)))


@needs_library
def test_parameters_reach_the_files(standins, tmp_path):
    optics = [Optics(voltage_kv=200.0, defocus_nm=-5.5, focal_spread_nm=4.5, astig_x_nm=1.25, astig_y_nm=-2.5,
                     cs_um=-15.0, aperture_mrad=21.0, convergence_mrad=0.35),
              Optics(voltage_kv=200.0, defocus_nm=2.0, temporal_model="envelope")]
    settings = SimulationSettings(sampling_A=0.4, slice_thickness_A=2.5)  # 50 x 60 pixels, 4 slices
    images, _ = DrProbeBackend(keep_files=True, work_dir=tmp_path).simulate([one_atom(), vacuum()], optics, settings)
    np.testing.assert_allclose(images[0][:20], 1 - 5.5 / 1000, atol=1e-6)

    folder = kept(tmp_path, 0)
    assert calls(folder)["celslc"] == ["-cel", "structure.cel", "-slc", "slice", "-nx", "50", "-ny", "60",
                                       "-nz", "4", "-ht", "200"]
    assert calls(folder)["msa"] == ["-prm", "msa.prm", "-out", "wave.wav", "/ctem", "/debug"]
    cell, atoms = cel_atoms(folder / "structure.cel")
    assert cell == [0, 2.0, 2.4, 1.0, 90, 90, 90]  # [nm]
    np.testing.assert_allclose(atoms, [[0.25, 0.625, 0.3, 1.0, 0.0]])
    head = (folder / "slice_001.sli").read_bytes()[:0x2000]
    assert struct.unpack_from("<2i", head, 0) == (50, 60)
    assert struct.unpack_from("<f", head, 0x1034)[0] == pytest.approx(0.25)  # slice thickness [nm]
    assert struct.unpack_from("<f", head, 0x1040)[0] == pytest.approx(200.0)  # [keV]

    msa = (folder / "msa.prm").read_text().splitlines()
    assert fortran(msa[5], 1) == [200.0]  # energy [keV] where msa reads a wavelength or (> 1) an energy
    assert [fortran(line, 1)[0] for line in msa[26:36]] == ["slice", 4, 1, 1, 4, 4, 0, 1, 2, 3]

    wav = (folder / "wavimg.prm").read_text().splitlines()
    assert fortran(wav[0], 1) == ["wave_sl004.wav"] and fortran(wav[5], 1) == ["image.dat"]
    assert fortran(wav[1], 2) == [50, 60] and fortran(wav[6], 2) == [50, 60]
    assert fortran(wav[2], 2) == pytest.approx([0.04, 0.04])  # [nm]
    assert fortran(wav[3], 1) == [200.0] and fortran(wav[4], 1) == [0]
    assert fortran(wav[10], 2) == [0, 0]  # frame offset, once
    assert fortran(wav[12], 1) == [1] and fortran(wav[13], 2) == [1, 4.5] and fortran(wav[14], 2) == [1, 0.35]
    assert fortran(wav[15], 1) == [0] and fortran(wav[16], 1) == [0]  # no MTF, no vibration
    n = int(fortran(wav[17], 1)[0])
    assert {line[0]: line[1:] for line in (fortran(w, 3) for w in wav[18:18 + n])} == {
        1: [-5.5, 0.0], 2: [1.25, -2.5], 5: [-15000.0, 0.0]}  # C1, A1, C3 [nm]
    assert fortran(wav[18 + n], 1) == [21.0] and fortran(wav[20 + n], 1) == [0]

    envelope = (kept(tmp_path, 1) / "wavimg.prm").read_text().splitlines()
    assert fortran(envelope[12], 1) == [6]  # "envelope": the quasi-coherent model
    assert fortran(envelope[13], 2) == [0, 0.0] and fortran(envelope[14], 2) == [0, 0.0]
    assert fortran(envelope[21], 1) == [1e4]  # no aperture


@needs_library
def test_frame_offset_is_written_once_and_reads_back(tmp_path):
    import drprobe

    path = write_wavimg_prm(tmp_path / "w.prm", "w.wav", "i.dat", (8, 6), (0.1, 0.1), Optics(), frame_offset=(3, 5))
    line = path.read_text().splitlines()[10]
    assert "frame offset" in line and fortran(line, 2) == [3, 5] and fortran(line.split("!")[0], 9) == [3, 5]
    if drprobe.__version__ == "0.1.25":  # why the line is replaced: the library alone writes "3, 53, 5"
        drprobe.WavimgPrm({"img_frame_offset": (3, 5)}).save_wavimg_prm(str(tmp_path / "raw.prm"))
        assert fortran((tmp_path / "raw.prm").read_text().splitlines()[10], 2) == [3, 53]


@needs_library
@pytest.mark.parametrize("spec, problem, said", [
    ("msa@2", "exit code 3", "msa stand-in: induced failure"),
    ("wavimg@2:stop", "it reported an error", "Critical error: wavimg stand-in: induced failure."),
    ("msa@2:silent", "exit code 0 but no wave_sl005.wav", "(no output)"),
])
def test_a_failing_program_is_named_with_the_sample(standins, monkeypatch, tmp_path, spec, problem, said):
    monkeypatch.setenv("DRPROBE_STANDIN_FAIL", spec)
    monkeypatch.setenv("DRPROBE_STANDIN_STATE", str(tmp_path))
    program = spec.split("@")[0]
    backend = DrProbeBackend(work_dir=tmp_path / "work")
    with pytest.raises(DatagenError) as err:
        backend.simulate([vacuum()] * 3, [Optics()], SETTINGS)
    assert str(err.value) == f"backend drprobe: {program} failed for sample 1 ({problem}): {said}"
    assert list((tmp_path / "work").iterdir()) == []  # folders removed without keep_files


@needs_library
def test_a_hanging_program_times_out(standins, monkeypatch):
    monkeypatch.setenv("DRPROBE_STANDIN_SLEEP", "celslc:20")
    with pytest.raises(DatagenError, match=r"celslc timed out after 0\.5 s for sample 0"):
        DrProbeBackend(timeout_s=0.5).simulate([vacuum()], [Optics()], SETTINGS)


@needs_library
def test_programs_from_bin_dir_and_their_versions(monkeypatch):
    import drprobe

    monkeypatch.setenv("PATH", os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]))
    backend = DrProbeBackend(bin_dir=STANDINS)
    assert {name: path.parent for name, path in backend.executables.items()} == dict.fromkeys(
        ("celslc", "msa", "wavimg"), STANDINS)
    assert backend.version() == ("Dr Probe celslc 1.2.0-standin / msa 1.1.3-standin / wavimg 1.0.1-standin "
                                 f"(Weickenmeier-Kohl form factors); drprobe-interface {drprobe.__version__}")
    images, _ = backend.simulate([vacuum()], [Optics(defocus_nm=-1.0)], SETTINGS)
    np.testing.assert_allclose(images, 0.999, atol=1e-6)


@needs_library
def test_debye_waller_factors_and_frozen_phonons(standins, tmp_path):
    model, optics = one_atom(), [Optics()]
    static, _ = DrProbeBackend().simulate([model], optics, SETTINGS)

    dw = SimulationSettings(sampling_A=0.5, slice_thickness_A=2.0, debye_waller=True)
    damped, _ = DrProbeBackend(keep_files=True, work_dir=tmp_path / "dw").simulate([model], optics, dw)
    folder = kept(tmp_path / "dw", 0)
    assert "-dwf" in calls(folder)["celslc"]
    b_iso = cel_atoms(folder / "structure.cel")[1][0, 4]
    assert b_iso == pytest.approx(8 * math.pi**2 * rms_displacement("Au") ** 2 / 100, rel=1e-6)  # [nm²]
    assert damped.min() > static.min()  # the stand-in's -dwf damping reached the image

    fp = SimulationSettings(sampling_A=0.5, slice_thickness_A=2.0, frozen_phonons=2)
    backend = DrProbeBackend(keep_files=True, work_dir=tmp_path / "fp")
    images, _ = backend.simulate([vacuum(), model], optics, fp, rng=np.random.default_rng(5))
    folder = kept(tmp_path / "fp", 1)
    configs = [folder / f"phonon{k:03d}" for k in range(2)]
    average = np.mean([read_image(c / "image.dat", (40, 48)) for c in configs], axis=0)
    np.testing.assert_allclose(images[1], average, atol=1e-6)
    rng, table = np.random.default_rng(5).spawn(2)[1], displacement_table([79])  # the multislice backend's draws
    expected = [displaced_positions(model.positions, model.numbers, table, rng) for _ in range(2)]
    for config, positions in zip(configs, expected):
        assert "-dwf" not in calls(config)["celslc"]
        np.testing.assert_allclose(cel_atoms(config / "structure.cel")[1][0, :3] * CELL, positions[0], atol=1e-6)
    again, _ = backend.simulate([vacuum(), model], optics, fp, rng=np.random.default_rng(5))
    np.testing.assert_array_equal(again, images)

    with pytest.raises(ValueError, match="choose one"):
        both = SimulationSettings(frozen_phonons=1, debye_waller=True)
        backend.simulate([model], optics, both, np.random.default_rng(0))
    with pytest.raises(ValueError, match="rng"):
        backend.simulate([model], optics, fp)


@needs_library
def test_pickles_and_runs_in_dask_threads(standins):
    import dask

    backend = DrProbeBackend()
    models = [one_atom((0.1 * k, 0.5, 0.5)) for k in range(1, 5)]
    optics = [Optics(defocus_nm=float(k)) for k in range(4)]
    serial = [backend.simulate([m], [o], SETTINGS)[0] for m, o in zip(models, optics)]
    clone = pickle.loads(pickle.dumps(backend))
    tasks = [dask.delayed(clone.simulate)([m], [o], SETTINGS) for m, o in zip(models, optics)]
    parallel = dask.compute(*tasks, scheduler="threads", num_workers=4)
    for one, (images, _) in zip(serial, parallel):
        np.testing.assert_array_equal(images, one)


@needs_library
def test_rejects_a_non_orthogonal_cell(standins):
    skewed = Atoms("Au", positions=[(5, 5, 5)], cell=[[20, 0, 0], [5, 24, 0], [0, 0, 10]], pbc=True)
    with pytest.raises(ValueError, match="orthogonal"):
        DrProbeBackend().simulate([skewed], [Optics()], SETTINGS)


def test_the_programs_make_drprobe_builds_are_found_by_default(monkeypatch, tmp_path):
    from datagen.simulate.backends import drprobe

    built = tmp_path / ".drprobe" / "bin"
    built.mkdir(parents=True)
    for name in ("celslc", "msa", "wavimg"):
        (built / name).write_text("#!/bin/sh\n")
        (built / name).chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path / "nothing"))
    monkeypatch.delenv("DATAGEN_DRPROBE_BIN", raising=False)
    monkeypatch.setattr(drprobe, "BUILT_BIN", built)
    assert find_executables() == {name: built / name for name in ("celslc", "msa", "wavimg")}
    monkeypatch.setenv("DATAGEN_DRPROBE_BIN", str(STANDINS))  # the variable comes first
    assert find_executables()["msa"] == STANDINS / "msa"
    monkeypatch.chdir(tmp_path)  # a relative folder (--drprobe-bin .drprobe/bin) still names the programs
    assert find_executables(Path(".drprobe/bin")) == {name: built / name for name in ("celslc", "msa", "wavimg")}
    (built / "msa").unlink()  # an incomplete build is not used: PATH is searched, and says so
    monkeypatch.delenv("DATAGEN_DRPROBE_BIN")
    with pytest.raises(DatagenError, match="celslc, msa, wavimg not found on PATH"):
        find_executables()
