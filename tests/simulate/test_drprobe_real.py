"""The Dr Probe backend on Dr Probe's real programs (`make drprobe` builds them from ../shared/vendor;
elsewhere these tests skip): its images agree with the built-in engine on the same models and optics,
sign controls break the agreement, and a generation on two dask workers ends, verifies, resumes after
an interruption to the same content and leaves no working folder behind."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from datagen.recipe import parse_recipe, with_backend
from datagen.run import generate
from datagen.simulate.backends import get_backend
from datagen.simulate.imaging import resample
from datagen.simulate.params import Optics, SimulationSettings
from datagen.store import Store
from tests.generators.test_simulation_generate import SIM
from tests.simulate.test_backend import au_on_carbon

pytest.importorskip("drprobe", reason="drprobe-interface is not installed (pip install .[drprobe])")

SETTINGS = SimulationSettings(sampling_A=0.1, slice_thickness_A=2.0, device="cpu")  # 200 x 200, 13 slices
CASES = [  # the catalogs' 30 mrad aperture; both temporal models, astigmatism, Cs
    Optics(defocus_nm=-3.0, focal_spread_nm=5.0, aperture_mrad=30.0),
    Optics(defocus_nm=-4.0, focal_spread_nm=5.0, astig_x_nm=-1.0, astig_y_nm=2.5, aperture_mrad=30.0),
    Optics(defocus_nm=2.0, focal_spread_nm=5.0, astig_x_nm=2.0, astig_y_nm=1.0, temporal_model="envelope",
           aperture_mrad=30.0),
    Optics(defocus_nm=-6.0, cs_um=1200.0, focal_spread_nm=4.0, aperture_mrad=30.0),
]


def _compare(image, reference):
    """(correlation, relative RMS) of ``image`` and ``reference`` resampled to its grid."""
    reference = resample(torch.as_tensor(reference), image.shape).numpy()
    correlation = np.corrcoef(image.ravel(), reference.ravel())[0, 1]
    return float(correlation), float(np.linalg.norm(image - reference) / np.linalg.norm(reference))


@pytest.fixture(scope="module")
def models():
    return [au_on_carbon(seed) for seed in range(len(CASES))]


@pytest.fixture(scope="module")
def ours(models):
    return get_backend("multislice").simulate(models, CASES, SETTINGS)[0]


def test_the_programs_are_the_real_ones_with_their_versions(drprobe_bin):
    version = get_backend("drprobe", bin_dir=drprobe_bin).version()
    assert "celslc 1.2.1" in version and "wavimg 1.0.4" in version and "msa " in version
    assert "standin" not in version.lower()


def test_images_and_exit_waves_agree_with_the_built_in_engine(drprobe_bin, models, ours, tmp_path):
    """Au octahedron on 8 Å of carbon, 300 kV, 0.1 Å: image correlation >= 0.998 and relative RMS <= 1 %
    for every case, exit-wave overlap |<a, b>| / (|a| |b|) >= 0.995. Measured: correlation 0.9986-0.9998,
    relative RMS 0.25-0.72 %; the rest is Dr Probe's Weickenmeier-Kohl form factors against our Lobato
    ones, its band-width limit and its own focal kernel."""
    from datagen.simulate.multislice import exit_waves

    backend = get_backend("drprobe", bin_dir=drprobe_bin, keep_files=True, work_dir=tmp_path)
    theirs, sampling = backend.simulate(models, CASES, SETTINGS)
    assert theirs.shape == (len(CASES), 200, 200) and sampling == (0.1, 0.1)
    for optics, image, reference in zip(CASES, ours, theirs):
        correlation, error = _compare(image, reference)
        assert correlation >= 0.998 and error <= 0.01, (optics, correlation, error)
    for k, model in enumerate(models):
        (folder,) = tmp_path.glob(f"drprobe-s{k:04d}-*")
        wave = np.fromfile(folder / "wave_sl013.wav", dtype="<c8").reshape(200, 200)  # the exit plane, x fastest
        mine = exit_waves([model], SETTINGS, 300.0)[0][0, 0].numpy()
        overlap = abs(np.vdot(mine, wave)) / (np.linalg.norm(mine) * np.linalg.norm(wave))
        assert overlap >= 0.995, overlap
        assert abs(np.vdot(mine, np.conj(wave))) / (np.linalg.norm(mine) * np.linalg.norm(wave)) < overlap  # sign of the phase


def test_sign_controls_break_the_agreement(drprobe_bin, models, ours):
    """Defocus of the other sign, or astigmatism mirrored (A1 → conj(A1), or −A1), and the images no
    longer agree (measured correlations −0.66 to 0.27 and 0.12 to 0.14): the conventions are the same."""
    backend = get_backend("drprobe", bin_dir=drprobe_bin)
    flipped = [dataclasses.replace(o, defocus_nm=-o.defocus_nm) for o in CASES[:2]]
    theirs, _ = backend.simulate(models[:2], flipped, SETTINGS)
    for optics, image, reference in zip(flipped, ours, theirs):
        assert _compare(image, reference)[0] < 0.6, optics
    astig = dataclasses.replace(CASES[1], defocus_nm=-2.0, astig_x_nm=2.0, astig_y_nm=4.0)
    reference_ours = get_backend("multislice").simulate(models[1:2], [astig], SETTINGS)[0][0]
    for mirrored in (dataclasses.replace(astig, astig_y_nm=-4.0), dataclasses.replace(astig, astig_x_nm=-2.0,
                                                                                      astig_y_nm=-4.0)):
        same, _ = backend.simulate(models[1:2], [astig], SETTINGS)
        other, _ = backend.simulate(models[1:2], [mirrored], SETTINGS)
        assert _compare(reference_ours, same[0])[0] >= 0.998
        assert _compare(reference_ours, other[0])[0] < 0.6, mirrored


def test_frozen_lattice_agrees_with_the_built_in_engine_configuration_by_configuration(drprobe_bin, models):
    """Three frozen-lattice configurations, drawn from the same seed by both backends (the same displaced
    atoms go into Dr Probe's CEL files): the averaged images agree as the static ones do (measured
    correlation 0.99975, relative RMS 0.17 %), while another seed or the static lattice moves the image
    by 1.3-1.5 %, so the agreement is the configurations', not the mean lattice's."""
    settings = dataclasses.replace(SETTINGS, frozen_phonons=3)
    model, optics = models[:1], CASES[:1]
    ours, _ = get_backend("multislice").simulate(model, optics, settings, rng=np.random.default_rng(11))
    theirs, _ = get_backend("drprobe", bin_dir=drprobe_bin).simulate(model, optics, settings,
                                                                      rng=np.random.default_rng(11))
    other, _ = get_backend("multislice").simulate(model, optics, settings, rng=np.random.default_rng(12))
    static, _ = get_backend("multislice").simulate(model, optics, SETTINGS)
    correlation, error = _compare(ours[0], theirs[0])
    assert correlation >= 0.998 and error <= 0.005, (correlation, error)
    for control in (other[0], static[0]):
        assert _compare(control, theirs[0])[1] > 4 * error


def _echo(log: str, label: str) -> list[float]:
    """The numbers after ``label`` on the first line of a program's log that holds it."""
    import re

    for line in log.splitlines():
        if label in line:
            return [float(v) for v in re.findall(r"[-+]?\d*\.?\d+(?:[eE][-+]?\d+)?", line.split(label, 1)[1])]
    raise AssertionError(f"{label!r} not in the log")


def test_every_parameter_written_is_read_back_so_by_the_programs(drprobe_bin, tmp_path):
    """The programs' own echo of what they read (celslc's report, msa /debug, wavimg /dbg) holds every
    value the backend means to pass: energy, grid, sampling, slices, Debye-Waller B, defocus, A1, C3,
    focal spread, convergence, aperture, coherence model (Dr Probe's units: nm, mrad, keV)."""
    from ase import Atoms

    from datagen.simulate.grid import grid_for_cell
    from datagen.simulate.phonons import displacement_table

    atoms = Atoms("AuC", scaled_positions=[(0.25, 0.6, 0.3), (0.7, 0.2, 0.6)], cell=(20.0, 24.0, 10.0), pbc=True)
    settings = SimulationSettings(sampling_A=0.2, slice_thickness_A=2.5, debye_waller=True)
    optics = [Optics(voltage_kv=200.0, defocus_nm=-5.5, focal_spread_nm=4.5, astig_x_nm=1.25, astig_y_nm=-2.5,
                     cs_um=-15.0, aperture_mrad=21.0, convergence_mrad=0.35),
              Optics(voltage_kv=200.0, defocus_nm=2.0, temporal_model="envelope")]
    backend = get_backend("drprobe", bin_dir=drprobe_bin, keep_files=True, work_dir=tmp_path)
    backend.simulate([atoms, atoms], optics, settings)
    (ny, nx), (sy, sx) = grid_for_cell((20.0, 24.0), 0.2).gpts, grid_for_cell((20.0, 24.0), 0.2).sampling
    b_iso = {z: 8 * np.pi**2 * u**2 / 100 for z, u in displacement_table([6, 79]).items()}  # [nm²]
    for k, o in enumerate(optics):
        (folder,) = tmp_path.glob(f"drprobe-s{k:04d}-*")
        celslc, msa, wavimg = ((folder / f"{p}.log").read_text() for p in ("celslc", "msa", "wavimg"))
        assert "Creating 4 equidistant slices" in celslc and "Using isotropic Debye-Waller factors." in celslc
        assert _echo(celslc, "Input electron energy:")[0] == pytest.approx(200.0)
        assert _echo(celslc, "Super-cell size (x,y,z) in nm:") == pytest.approx([2.0, 2.4, 1.0])
        assert _echo(celslc, "Super-cell sampling (dx,dy) in nm:") == pytest.approx([sx / 10, sy / 10], rel=1e-5)
        for z in (79, 6):
            assert _echo(celslc, f"Preparing form factor for Z = {z:3d} and DW-prm =")[0] == pytest.approx(
                b_iso[z], abs=1e-6)
        assert _echo(msa, "electron energy (keV):")[0] == pytest.approx(200.0)
        assert _echo(msa, "number of scan columns:") == [nx] and _echo(msa, "number of scan rows:") == [ny]
        assert _echo(msa, "horzontal scan frame size [nm]:") == pytest.approx([2.0])
        assert _echo(msa, "vertical scan frame size [nm]:") == pytest.approx([2.4])
        assert _echo(msa, "number of slices in object:") == [4] and _echo(msa, "detector readout every") == [4]
        assert _echo(wavimg, "prm load: HT:") == pytest.approx([200.0])
        assert _echo(wavimg, "prm load: wave dim.:") == [nx, ny]
        assert _echo(wavimg, "prm load: wave samp.:") == pytest.approx([sx / 10, sy / 10], rel=1e-5)
        assert _echo(wavimg, "prm load: image frame offset:") == [0, 0]
        assert _echo(wavimg, "prm load: image MTF opt.:")[0] == 0
        assert _echo(wavimg, "prm load: w20") == pytest.approx([o.defocus_nm, 0.0])
        assert _echo(wavimg, "prm load: w22") == pytest.approx([o.astig_x_nm, o.astig_y_nm])
        assert _echo(wavimg, "prm load: w40") == pytest.approx([1000 * o.cs_um, 0.0])
        assert _echo(wavimg, "image calculation model:") == [{"focal_average": 1, "envelope": 6}[o.temporal_model]]
        assert _echo(wavimg, "image PTC opt.:") == pytest.approx([int(o.focal_spread_nm > 0), o.focal_spread_nm])
        assert _echo(wavimg, "image PSC opt.:") == pytest.approx([int(o.convergence_mrad > 0), o.convergence_mrad])
        aperture = 1e4 if o.aperture_mrad is None else o.aperture_mrad
        assert _echo(wavimg, "objective aperture semi opening angle:") == pytest.approx([aperture])


def test_on_two_workers_a_killed_worker_or_ctrl_c_changes_nothing_and_leaves_nothing(drprobe_bin, tmp_path,
                                                                                      monkeypatch):
    """Against an undisturbed run in process: (1) on two dask workers, the first time a sample is
    reported the worker running Dr Probe is killed (SIGKILL: its own clean-up never runs); its chunk is
    simulated again elsewhere, the store completes with the same content, and every sample was
    reported; (2) a run stopped by Ctrl-C after its first chunk resumes on two workers to the same
    content. No working folder of a run or a sample is left behind."""
    import signal
    import tempfile
    import threading
    import time

    import psutil

    recipe = with_backend(parse_recipe({**SIM, "chunk_size": 2,
                                        "classes": {"amorphous": 2, "monocrystalline": 1, "polycrystalline": 1}}),
                          "drprobe")
    options = {"bin_dir": str(drprobe_bin)}
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    calm = generate(recipe, tmp_path / "calm.zarr", workers=0, backend_options=options)

    reported, killed = [], []

    def kill_a_busy_worker():
        for _ in range(200):
            for child in psutil.Process().children(recursive=True):
                try:
                    if child.name() in ("celslc", "msa", "wavimg"):
                        worker = child.parent()
                        worker.send_signal(signal.SIGKILL)
                        killed.append(worker.pid)
                        return
                except psutil.Error:
                    continue
            time.sleep(0.02)

    def on_sample(n):
        reported.append(n)
        if len(reported) == 1:
            threading.Thread(target=kill_a_busy_worker, daemon=True).start()

    result = generate(recipe, tmp_path / "killed.zarr", workers=2, backend_options=options, on_sample=on_sample)
    assert killed, "no worker was running Dr Probe to kill"
    assert result.content_sha256 == calm.content_sha256 and Store.open(tmp_path / "killed.zarr").verify().ok
    assert sum(reported) >= 4  # every sample, and again those of the chunk the killed worker had

    def stop(chunk, n, digest):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        generate(recipe, tmp_path / "cut.zarr", workers=0, backend_options=options, on_chunk=stop)
    assert len(Store.open(tmp_path / "cut.zarr").written_chunks()) == 1
    resumed = generate(recipe, tmp_path / "cut.zarr", workers=2, backend_options=options)
    assert resumed.chunks_written == 1 and resumed.content_sha256 == calm.content_sha256
    # every run's folder is gone, with the sample folders in it (dask keeps its own scratch space)
    assert [p.name for p in scratch.rglob("*") if p.name.startswith(("datagen-", "drprobe-"))] == []


def test_debye_waller_damping_agrees_with_the_built_in_engine(drprobe_bin, models):
    """Thermal damping of the potentials (celslc -dwf with B_iso = 8π²⟨u²⟩ per element, ours the same
    factor on the form factors) keeps the agreement, and is what Dr Probe does too: its damped images
    are 3x closer to ours damped than to ours static (measured: RMS 0.13-0.17 % against 1.5-1.6 %)."""
    thermal = dataclasses.replace(SETTINGS, debye_waller=True)
    optics = CASES[:2]
    ours_thermal, _ = get_backend("multislice").simulate(models[:2], optics, thermal)
    theirs, _ = get_backend("drprobe", bin_dir=drprobe_bin).simulate(models[:2], optics, thermal)
    static, _ = get_backend("multislice").simulate(models[:2], optics, SETTINGS)
    for image, reference, cold in zip(ours_thermal, theirs, static):
        correlation, error = _compare(image, reference)
        assert correlation >= 0.998 and error <= 0.01, (correlation, error)
        assert 3 * error < _compare(cold, reference)[1]
