"""Dr Probe (celslc, msa, wavimg) as a simulation backend, with parameter files from drprobe-interface.

Dr Probe's command-line tools (J. Barthel, Ultramicroscopy 193 (2018) 1-11; GPL-3.0) come from
https://er-c.org/barthel/drprobe/ only, not from a package registry: put ``celslc``, ``msa`` and
``wavimg`` on PATH, pass ``bin_dir`` or set $DATAGEN_DRPROBE_BIN; ``make drprobe`` builds them from
source into the project's ``.drprobe/bin``, which is then found by default. drprobe-interface (GPL-3.0, the optional extra
``pip install .[drprobe]``) writes the msa and wavimg parameter files and is imported only inside
functions. Its runners are not used (they go through a shell and ignore exit codes): each program runs
here as an argument list in the sample's own temporary folder, and a run fails when its exit code is
not 0, when it prints Dr Probe's error lines ("Critical error", "ERROR", "Errors: n" with n > 0), or
when its output file is missing. Dr Probe ends a critical error with a plain Fortran ``stop``, exit
code 0 (``MSP_HALT`` in msaparams.f90), and wavimg only warns when its wave file is missing.

Per sample, and per frozen-phonon configuration, in one folder (each program's output goes to
``PROGRAM.log`` there; msa and wavimg run with their debug switches, so the logs echo every parameter
as the programs read it):

1. ``structure.cel``, written here (drprobe-interface 0.1.25 has no cel writer): cell lengths [nm],
   90° angles, one line per atom: symbol, fractional x y z in [0, 1), occupancy 1, B_iso [nm²], 0 0 0
   (celslc howto, section 6).
2. ``celslc -cel structure.cel -slc slice -nx NX -ny NY -nz NZ -ht KV [-dwf]``: NX, NY from
   ``grid.grid_for_cell`` (abTEM's rule, the grid of the other backends), NZ = ceil(Lz / slice_thickness_A)
   equidistant slices; phase gratings slice_001.sli ... (EMS format).
3. ``msa -prm msa.prm -out wave.wav /ctem /debug``: plane-wave exit wave; with the detector readout period
   NZ msa writes wave_sl000.wav and the exit plane wave_slNZ.wav (64-bit complex, x fastest,
   normalised to a vacuum wave of 1: msa howto, version 0.90 notes).
4. ``wavimg -prm wavimg.prm /dbg``: image.dat, 32-bit float, NX × NY with x fastest (wavimg howto,
   section 5; wavimg.f90 ``savedata``), read as (ny, nx). It is in units of the vacuum intensity as
   it stands, so no rescaling is done.

Our optics (``params``) in wavimg.prm (wavimg howto section 5.1 and 6.1; aberration indices from
https://er-c.org/barthel/drprobe/doc-control-aberrations.html; χ in common/AberrationFunctions.f90):

- line 04 high tension [kV] = voltage_kv (also ``celslc -ht`` and msa's line 6, an energy [keV] when > 1);
- aberration 1, defocus C1 = (defocus_nm, 0) [nm]: no sign change. Dr Probe's χ is
  (2π/λ)·Σ (1/m)·Re{w_mn ω̄ⁿ (ωω̄)^((m−n)/2)}, i.e. πλC1k² + πλ(a1x(kx²−ky²) + 2a1y·kx·ky) + ...
  applied as exp(−iχ), as ours: positive = overfocus in both (read from Dr Probe's source; a run of the
  real programs against the multislice backend is still to be done);
- aberration 2, two-fold astigmatism A1 = (astig_x_nm, astig_y_nm) [nm], the same components;
- aberration 5, C3 = (1000·cs_um, 0) [nm];
- line 14 = (1, focal_spread_nm): "focus spread (1/e) half width [nm]", our Δ (flag 0 when Δ = 0);
- line 15 = (1, convergence_mrad): "beam convergence (1/e) half width [mrad]", our θ₀ (flag 0 when 0);
- line 13 coherence model: "focal_average" → 1 (explicit focal averaging, quasi-coherent spatial
  envelope; wavimg's own focal sampling, ``n_focal`` is not used), "envelope" → 6 (the wave damped
  by the linear envelopes, then |ψ|²);
- line 21 objective aperture radius [mrad] = aperture_mrad (edge smoothed over 3 % of the radius), or
  1e4 mrad for none;
- off: MTF, vibration, integer and noise output (``detector.apply_detector`` records the image), the
  special frame. drprobe-interface 0.1.25 writes line 11, the frame offset, twice ("3, 53, 5" for
  (3, 5)): the written line is replaced by the offset itself. It writes aberrations to 1e-4 nm.

Thermal motion, from ``phonons`` as in the multislice backend: ``debye_waller`` writes
B_iso = 8π²σ² per element and passes ``-dwf``; ``frozen_phonons`` = F runs F configurations displaced
with one generator per model spawned from ``rng``, as the multislice backend draws them (the same
``rng`` seed gives both backends the same displaced atoms), and averages their images; both together raise ValueError. celslc's form factors are Weickenmeier & Kohl
(1991): ``settings.parametrization`` does not apply, and ``version()`` says so. ``device`` and
``max_batch_bytes`` do not apply either.

``version()`` runs each program without arguments: Dr Probe then prints its banner, whose line
"Version: X" is read, and a usage text. Samples run one after another; parallelism belongs to the
caller (dask tasks, one chunk each, like the other backends): the backend pickles, and every sample
works in a folder of its own.
"""

from __future__ import annotations

import math
import os
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import ase
import numpy as np
from ase.data import chemical_symbols

from datagen.errors import DatagenError
from datagen.progress import sample_done
from datagen.simulate.backends.base import CPUBackend, check_batch, import_extra, check_settings, same_sampling, stack_images
from datagen.simulate.grid import common_cell, grid_for_cell, slice_count
from datagen.simulate.params import Optics, SimulationSettings
from datagen.simulate.phonons import displaced_positions, displacement_table
from datagen.simulate.units import NM

PROGRAMS = ("celslc", "msa", "wavimg")
DRPROBE_URL = "https://er-c.org/barthel/drprobe/"
#: Where ``make drprobe`` puts the programs it builds (a folder git ignores).
BUILT_BIN = Path(__file__).resolve().parents[3] / ".drprobe" / "bin"
#: Objective aperture radius written when there is none [mrad] ("set to very large values").
NO_APERTURE_MRAD = 1e4
#: Time one program may run for one sample [s].
DEFAULT_TIMEOUT_S = 3600.0
#: wavimg coherence model per ``Optics.temporal_model``.
COHERENCE_MODEL = {"focal_average": 1, "envelope": 6}

_CEL, _SLICE, _WAVE, _IMAGE = "structure.cel", "slice", "wave.wav", "image.dat"
_ERROR_LINE = re.compile(r"^\s*(Critical error|ERROR)\b|Errors:\s*[1-9]")
_VERSION = re.compile(r"Version:\s*([^\s|]+)")
_INSTALL_LIBRARY = "drprobe-interface (pip install .[drprobe])"


def _import_drprobe():
    return import_extra("drprobe", f"backend drprobe: {_INSTALL_LIBRARY} is not installed")


def default_bin_dir() -> Path | None:
    """Where the programs are looked for when no folder is given: $DATAGEN_DRPROBE_BIN, else the
    project's ``.drprobe/bin`` (what ``make drprobe`` builds) where it holds them, else None (PATH)."""
    if os.environ.get("DATAGEN_DRPROBE_BIN"):
        return Path(os.environ["DATAGEN_DRPROBE_BIN"])
    if all((BUILT_BIN / name).is_file() for name in PROGRAMS):
        return BUILT_BIN
    return None


def find_executables(bin_dir: str | Path | None = None) -> dict[str, Path]:
    """Paths of celslc, msa and wavimg, from ``bin_dir`` when given, else from ``default_bin_dir()``,
    else from PATH.

    Raises DatagenError naming the missing programs and where to get them.
    """
    bin_dir = bin_dir if bin_dir is not None else default_bin_dir()
    where = None if bin_dir is None else str(Path(bin_dir).expanduser())
    found = {name: shutil.which(name, path=where) for name in PROGRAMS}
    missing = [name for name, path in found.items() if path is None]
    if missing:
        place = f"in {where}" if where else "on PATH (or give --drprobe-bin DIR)"
        raise DatagenError(f"backend drprobe: {', '.join(missing)} not found {place}: install Dr Probe's "
                           f"command-line tools from {DRPROBE_URL}")
    return {name: Path(path).absolute() for name, path in found.items()}  # the programs run in a sample folder


def check_available(bin_dir: str | Path | None = None) -> dict[str, Path]:
    """``find_executables(bin_dir)``, after checking that drprobe-interface imports.

    Raises one DatagenError (one line) naming everything that is missing and how to install it.
    """
    try:
        _import_drprobe()
        library = None
    except DatagenError as err:
        library = err
    try:
        programs = find_executables(bin_dir)
    except DatagenError as err:
        raise DatagenError(f"{err} and {_INSTALL_LIBRARY}" if library else str(err)) from None
    if library:
        raise library
    return programs


def write_cel(path: str | Path, numbers: Sequence[int], positions: np.ndarray, cell: Sequence[float],
              b_iso_nm2: Mapping[int, float] | None = None, title: str = "datagen model") -> Path:
    """Write a Dr Probe CEL super-cell file.

    ``positions`` [Å] (N, 3) in the orthogonal cell of lengths ``cell`` = (Lx, Ly, Lz) [Å], wrapped into
    it; ``b_iso_nm2`` maps an atomic number to its B_iso [nm²] (absent: 0).
    """
    lengths = np.asarray(cell, dtype=np.float64)
    frac = np.mod(np.asarray(positions, dtype=np.float64).reshape(-1, 3) / lengths, 1.0)
    frac[frac >= 1.0] = 0.0
    b_iso_nm2 = dict(b_iso_nm2 or {})
    title = " ".join(str(title).split())
    lines = [f"# {title}", " 0 " + " ".join(f"{v / NM:.8f}" for v in lengths) + " 90.0 90.0 90.0"]
    for z, (fx, fy, fz) in zip(numbers, frac):
        lines.append(f" {chemical_symbols[int(z)]:<2s} {fx:.8f} {fy:.8f} {fz:.8f} 1.0 "
                     f"{b_iso_nm2.get(int(z), 0.0):.8f} 0.0 0.0 0.0")
    lines.append("*")
    path = Path(path)
    path.write_text("\n".join(lines) + "\n")
    return path


def indexed_name(stem: str, index: int, last: int, suffix: str) -> str:
    """Dr Probe's numbered file name: ``stem``, ``index`` (3 digits, or as many as ``last`` needs), ``suffix``."""
    return f"{stem}{index:0{max(3, len(str(last)))}d}{suffix}"


def write_msa_prm(path: str | Path, gpts_xy: tuple[int, int], n_slices: int, cell: Sequence[float],
                  voltage_kv: float) -> Path:
    """msa.prm for a CTEM plane-wave run over slice files ``slice_###.sli`` (drprobe-interface ``MsaPrm``).

    ``gpts_xy`` = (nx, ny); ``cell`` (Lx, Ly, Lz) [Å]; the energy [keV] goes where msa takes a
    wavelength or, above 1, an energy. The detector readout period is ``n_slices``, so msa writes the
    entrance and the exit plane.
    """
    drprobe = _import_drprobe()
    nx, ny = (int(n) for n in gpts_xy)
    prm = drprobe.MsaPrm({
        "wavelength": float(voltage_kv), "h_scan_frame_size": cell[0] / NM, "v_scan_frame_size": cell[1] / NM,
        "scan_columns": nx, "scan_rows": ny, "temp_coherence_flag": 0, "spat_coherence_flag": 0,
        "slice_files": _SLICE, "number_of_slices": int(n_slices), "number_frozen_lattice": 1,
        "min_num_frozen": 1, "det_readout_period": int(n_slices), "tot_number_of_slices": int(n_slices),
    })
    prm.save_msa_prm(str(path))
    return Path(path)


def write_wavimg_prm(path: str | Path, wave_file: str, image_file: str, gpts_xy: tuple[int, int],
                     sampling_nm_xy: tuple[float, float], optics: Optics,
                     frame_offset: tuple[float, float] = (0, 0)) -> Path:
    """wavimg.prm for a TEM image of ``wave_file`` through ``optics`` (mapping: module docstring).

    ``gpts_xy`` = (nx, ny) of wave and image, ``sampling_nm_xy`` = (sx, sy) [nm]. Written by
    drprobe-interface's ``WavimgPrm``, then line 11 is replaced by ``frame_offset`` [pixels] (the
    library writes it twice).
    """
    drprobe = _import_drprobe()
    if optics.temporal_model not in COHERENCE_MODEL:
        raise ValueError(f"optics.temporal_model must be one of {sorted(COHERENCE_MODEL)}, "
                         f"got {optics.temporal_model!r}")
    nx, ny = (int(n) for n in gpts_xy)
    sx, sy = (float(s) for s in sampling_nm_xy)
    spread, conv = float(optics.focal_spread_nm), float(optics.convergence_mrad)
    prm = drprobe.WavimgPrm({
        "wave_files": wave_file, "wave_dim": (nx, ny), "wave_sampling": (sx, sy),
        "high_tension": float(optics.voltage_kv), "output_format": 0, "output_files": image_file,
        "output_dim": (nx, ny), "noise": (0, 1, 1, 0), "flag_spec_frame": 0, "output_sampling": sx,
        "img_frame_offset": (0, 0), "img_rot": 0, "coherence_model": COHERENCE_MODEL[optics.temporal_model],
        "temp_coherence": (int(spread > 0), spread), "spat_coherence": (int(conv > 0), conv),
        "mtf": (0, 1.0, ""), "vibration": (0, 0.0, 0.0, 0.0),
        "oa_radius": NO_APERTURE_MRAD if optics.aperture_mrad is None else float(optics.aperture_mrad),
        "oa_position": (0, 0), "number_of_loops": 0,
    }, {1: (float(optics.defocus_nm), 0.0), 2: (float(optics.astig_x_nm), float(optics.astig_y_nm)),
        5: (1000.0 * float(optics.cs_um), 0.0)})
    prm.save_wavimg_prm(str(path))
    _replace_frame_offset(Path(path), frame_offset)
    return Path(path)


def _replace_frame_offset(path: Path, offset: tuple[float, float]) -> None:
    lines = path.read_text().splitlines(keepends=True)
    value, bang, comment = lines[10].partition("!") if len(lines) > 10 else ("", "", "")
    if not bang or "frame offset" not in comment.lower():
        raise DatagenError(f"backend drprobe: {path.name} line 11 is not the image frame offset: "
                           "unexpected drprobe-interface output")
    lines[10] = f"{offset[0]:g}, {offset[1]:g}".ljust(len(value)) + bang + comment
    path.write_text("".join(lines))


def read_image(path: str | Path, gpts_xy: tuple[int, int]) -> np.ndarray:
    """wavimg's float image (little-endian 32-bit, x fastest) as (ny, nx) float64."""
    path, (nx, ny) = Path(path), (int(n) for n in gpts_xy)
    size, expected = path.stat().st_size, 4 * nx * ny
    if size != expected:
        raise DatagenError(f"backend drprobe: {path.name} holds {size} bytes, expected {nx} x {ny} "
                           f"32-bit floats ({expected} bytes)")
    image = np.fromfile(path, dtype="<f4").reshape(ny, nx).astype(np.float64)
    if not np.all(np.isfinite(image)):
        raise DatagenError(f"backend drprobe: {path.name} holds non-finite values")
    return image


def _program_version(executable: Path, timeout_s: float) -> str:
    with tempfile.TemporaryDirectory(prefix="datagen-drprobe-version-") as folder:
        try:
            done = subprocess.run([str(executable)], cwd=folder, capture_output=True, timeout=timeout_s)
        except (OSError, subprocess.TimeoutExpired) as err:
            raise DatagenError(f"backend drprobe: cannot run {executable.name} to read its version: {err}") from err
    match = _VERSION.search(done.stdout.decode(errors="replace") + done.stderr.decode(errors="replace"))
    return match.group(1) if match else "unknown"


def _message(stdout: str, stderr: str) -> str:
    """The most telling line of a program's output: an error, else a warning, else the last line of stderr or stdout."""
    lines = [line.strip() for line in (stdout + "\n" + stderr).splitlines() if line.strip()]
    errors = [line for line in lines if _ERROR_LINE.search(line) and not line.startswith("Errors:")]
    warnings = [line for line in lines if line.lower().startswith("warning")]
    tail = [line.strip() for line in stderr.splitlines() if line.strip()] or lines
    text = (errors or warnings or tail or ["(no output)"])[0 if errors or warnings else -1]
    return text[:300]


class DrProbeBackend(CPUBackend):
    """Dr Probe's celslc, msa and wavimg, sample by sample (module docstring).

    Parameters
    ----------
    bin_dir : Folder holding celslc, msa and wavimg; ``None``: ``default_bin_dir()``, else PATH.
    keep_files : Keep each sample's folder (structure, slices, parameter files, waves, image).
    timeout_s : Time one program may run for one sample [s].
    work_dir : Parent of the per-sample folders (default: the system's temporary folder).
    """

    name = "drprobe"

    def __init__(self, bin_dir: str | Path | None = None, keep_files: bool = False,
                 timeout_s: float = DEFAULT_TIMEOUT_S, work_dir: str | Path | None = None):
        if not (isinstance(timeout_s, (int, float)) and math.isfinite(timeout_s) and timeout_s > 0):
            raise ValueError(f"timeout_s must be a positive number of seconds, got {timeout_s!r}")
        self.executables = check_available(bin_dir or None)
        self.keep_files = bool(keep_files)
        self.timeout_s = float(timeout_s)
        self.work_dir = None if work_dir is None else Path(work_dir)
        self._version: str | None = None
        #: Seconds spent in each program by this backend object (all its samples), for benchmarks.
        self.seconds = dict.fromkeys(PROGRAMS, 0.0)

    def version(self) -> str:
        if self._version is None:
            drprobe = _import_drprobe()
            programs = " / ".join(f"{name} {_program_version(self.executables[name], min(60.0, self.timeout_s))}"
                                  for name in PROGRAMS)
            library = getattr(drprobe, "__version__", "unknown")
            self._version = f"Dr Probe {programs} (Weickenmeier-Kohl form factors); drprobe-interface {library}"
        return self._version

    def simulate(self, models: Sequence[ase.Atoms], optics: Sequence[Optics], settings: SimulationSettings,
                 rng: np.random.Generator | None = None) -> tuple[np.ndarray, tuple[float, float]]:
        models, optics = check_batch(models, optics)
        settings = check_settings(settings)
        settings.check_thermal(rng)
        configurations, b_iso = _thermal(models, settings, rng)
        images, sampling = [], None
        for i, (atoms, o) in enumerate(zip(models, optics)):
            image, used = self._sample(i, atoms, configurations[i], b_iso, o, settings)
            sample_done()  # a sample takes seconds to minutes: progress is shown per sample
            images.append(image)
            sampling = same_sampling(sampling, used)
        return stack_images(images), sampling

    def _sample(self, index, atoms, configurations, b_iso, optics, settings):
        """One sample's image (ny, nx) float32, averaged over its configurations, and its sampling (sy, sx) [Å]."""
        cell = common_cell([atoms])
        grid = grid_for_cell(cell[:2], settings.sampling_A)
        if self.work_dir is not None:
            self.work_dir.mkdir(parents=True, exist_ok=True)
        folder = Path(tempfile.mkdtemp(prefix=f"drprobe-s{index:04d}-", dir=self.work_dir))
        try:
            total = np.zeros(grid.gpts)
            for k, positions in enumerate(configurations):
                here = folder if len(configurations) == 1 else folder / f"phonon{k:03d}"
                here.mkdir(exist_ok=True)
                write_cel(here / _CEL, atoms.numbers, positions, cell, b_iso, title=f"datagen sample {index}")
                total += self._configuration(index, here, cell, grid, optics, settings)
        finally:
            if not self.keep_files:
                shutil.rmtree(folder, ignore_errors=True)
        return (total / len(configurations)).astype(np.float32), grid.sampling

    def _configuration(self, index, folder, cell, grid, optics, settings) -> np.ndarray:
        """celslc, msa and wavimg on ``folder``/structure.cel; the image (ny, nx) float64."""
        (ny, nx), (sy, sx) = grid.gpts, grid.sampling
        n_slices, _ = slice_count(cell[2], settings.slice_thickness_A)
        slices = [indexed_name(f"{_SLICE}_", j, n_slices, ".sli") for j in range(1, n_slices + 1)]
        kev = f"{optics.voltage_kv:.10g}"
        celslc = ["-cel", _CEL, "-slc", _SLICE, "-nx", nx, "-ny", ny, "-nz", n_slices, "-ht", kev,
                  *(["-dwf"] if settings.debye_waller else [])]
        self._run("celslc", celslc, index, folder, slices)
        write_msa_prm(folder / "msa.prm", (nx, ny), n_slices, cell, optics.voltage_kv)
        wave = indexed_name(_WAVE[:-4] + "_sl", n_slices, n_slices, ".wav")
        self._run("msa", ["-prm", "msa.prm", "-out", _WAVE, "/ctem", "/debug"], index, folder, [wave])
        write_wavimg_prm(folder / "wavimg.prm", wave, _IMAGE, (nx, ny), (sx / NM, sy / NM), optics)
        self._run("wavimg", ["-prm", "wavimg.prm", "/dbg"], index, folder, [_IMAGE])
        return read_image(folder / _IMAGE, (nx, ny))

    def _run(self, program: str, args: list, index: int, folder: Path, outputs: list[str]) -> None:
        """Run ``program`` with ``args`` in ``folder``; DatagenError unless it succeeds and writes ``outputs``."""
        kept = f" (files kept in {folder})" if self.keep_files else ""
        start = time.perf_counter()
        try:
            done = subprocess.run([str(self.executables[program]), *(str(a) for a in args)], cwd=folder,
                                  capture_output=True, timeout=self.timeout_s)
        except subprocess.TimeoutExpired:
            raise DatagenError(f"backend drprobe: {program} timed out after {self.timeout_s:g} s "
                               f"for sample {index}{kept}") from None
        except OSError as err:
            raise DatagenError(f"backend drprobe: {program} could not run for sample {index}: {err}") from err
        finally:
            self.seconds[program] += time.perf_counter() - start
        stdout, stderr = done.stdout.decode(errors="replace"), done.stderr.decode(errors="replace")
        (folder / f"{program}.log").write_text(stdout.replace("\0", "") + stderr.replace("\0", ""))
        missing = [name for name in outputs if not (folder / name).is_file()]
        if done.returncode != 0:
            problem = f"exit code {done.returncode}"
        elif any(_ERROR_LINE.search(line) for line in (stdout + "\n" + stderr).splitlines()):
            problem = "it reported an error"
        elif missing:
            others = sorted(p.name for p in folder.glob(f"*{Path(missing[0]).suffix}"))
            problem = f"exit code 0 but no {missing[0]}" + (f"; found {', '.join(others[:5])}" if others else "")
        else:
            return
        raise DatagenError(f"backend drprobe: {program} failed for sample {index} ({problem}): "
                           f"{_message(stdout, stderr)}{kept}")


def _thermal(models: Sequence[ase.Atoms], settings: SimulationSettings, rng):
    """Per model, the positions [Å] of each configuration; and B_iso [nm²] per atomic number (Debye-Waller only)."""
    numbers = sorted({int(z) for atoms in models for z in atoms.numbers})
    thermal = settings.frozen_phonons or settings.debye_waller
    table = displacement_table(numbers) if thermal and numbers else {}
    b_iso = {z: 8 * math.pi**2 * sigma**2 / NM**2 for z, sigma in table.items()} if settings.debye_waller else {}
    if not settings.frozen_phonons:
        return [[np.asarray(atoms.positions, dtype=np.float64)] for atoms in models], b_iso
    rngs = rng.spawn(len(models))  # as MultisliceBackend.simulate: a model's atoms do not depend on its batch
    configurations = [[displaced_positions(np.asarray(atoms.positions, dtype=np.float64), np.asarray(atoms.numbers),
                                           table, r) for _ in range(settings.frozen_phonons)]
                      for atoms, r in zip(models, rngs)]
    return configurations, b_iso
