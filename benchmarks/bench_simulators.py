"""Three simulators side by side on the same atomic models: the built-in engine, abTEM and Dr Probe.

The work: Au particles (``--diameter-nm``, default 2 nm, a sphere cut from the fcc lattice) on amorphous
carbon (``--support-nm``, default 2 nm) in a box ``--box-nm`` wide (default 4 nm, 1 nm taller than particle
and film), 300 kV, the paper's optics
as the catalogs draw them (defocus −4…5 nm, 5 nm focal spread, astigmatism up to 3 nm, 30 mrad
aperture, explicit focal averaging), 0.1 Å sampling, 2 Å slices, no thermal motion. For each pair:
exit-wave overlap |⟨ψa, ψb⟩| / (‖ψa‖ ‖ψb‖), and image correlation and relative RMS ‖Ia − Ib‖ / ‖Ib‖ on the
built-in engine's (aperture-limited) image grid; seconds per image for each simulator and, for Dr Probe,
per program. abTEM runs when installed (``pip install .[abtem]``), Dr Probe when its programs are found
(``make drprobe``).

What the residual is: the three share the grid and slicing but not the atomic potentials. abTEM and the
built-in engine use Lobato & Van Dyck (2014) form factors (abTEM deposits atoms on pixels, we sum exact
structure factors); Dr Probe uses Weickenmeier & Kohl (1991) and its own band-width limit (a smooth
aperture at 0.9 of 2/3 Nyquist). The row "ours lobato / ours kirkland" shows how much a change of form
factor parametrisation alone moves the built-in engine's results, for scale. The focal averages differ
too: ours and abTEM's sum 15 Gauss-Hermite planes; wavimg integrates its own focal kernel.

Usage::

    python benchmarks/bench_simulators.py                # 2 samples, a few minutes on 2 cores
    python benchmarks/bench_simulators.py --n 4 --box-nm 6   # the catalogs' box (Dr Probe: minutes per image)

Prints a table and writes ``benchmarks/results/bench_simulators.json``. Never asserted by tests.
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from _output import write_json
from datagen.errors import DatagenError
from datagen.simulate.backends import get_backend
from datagen.simulate.imaging import resample
from datagen.simulate.multislice import exit_waves
from datagen.simulate.params import Optics, SimulationSettings
from datagen.structures.assemble import SampleSpec, build_sample

VOLTAGE_KV = 300.0


def build_models(n: int, args) -> list:
    spec = SampleSpec(kind="sphere", element="Au", diameter=10 * args.diameter_nm, support="C",
                      thickness=10 * args.support_nm,
                      box=(10 * args.box_nm, 10 * args.box_nm, 10 * (args.diameter_nm + args.support_nm + 1.0)))
    return [build_sample(spec, np.random.default_rng([11, i])) for i in range(n)]


def draw_optics(n: int) -> list[Optics]:
    rng = np.random.default_rng(5)
    return [Optics(voltage_kv=VOLTAGE_KV, defocus_nm=float(rng.uniform(-4, 5)), focal_spread_nm=5.0,
                   astig_x_nm=float(rng.uniform(-3, 3)), astig_y_nm=float(rng.uniform(-3, 3)), aperture_mrad=30.0,
                   temporal_model="focal_average", n_focal=15) for _ in range(n)]


def overlap(a: np.ndarray, b: np.ndarray) -> float:
    return float(abs(np.vdot(a, b)) / (np.linalg.norm(a) * np.linalg.norm(b)))


def image_agreement(a: np.ndarray, b: np.ndarray, shape) -> tuple[float, float]:
    a = resample(torch.as_tensor(a), shape).numpy()
    b = resample(torch.as_tensor(b), shape).numpy()
    return float(np.corrcoef(a.ravel(), b.ravel())[0, 1]), float(np.linalg.norm(a - b) / np.linalg.norm(b))


def ours(models, optics, settings):
    backend = get_backend("multislice", device="cpu")
    t = time.perf_counter()
    images, _ = backend.simulate(models, optics, settings)
    seconds = (time.perf_counter() - t) / len(models)
    waves = [exit_waves([m], settings, VOLTAGE_KV)[0][0, 0].numpy() for m in models]
    return {"images": images, "waves": waves, "seconds": seconds}


def abtem_run(models, optics, settings):
    import abtem

    backend = get_backend("abtem")
    t = time.perf_counter()
    images, _ = backend.simulate(models, optics, settings)
    seconds = (time.perf_counter() - t) / len(models)
    waves = []
    for m in models:
        potential = abtem.Potential(m, sampling=settings.sampling_A, slice_thickness=settings.slice_thickness_A,
                                    parametrization=settings.parametrization, projection="infinite")
        wave = abtem.PlaneWave(energy=VOLTAGE_KV * 1e3).multislice(potential).compute(scheduler="synchronous")
        waves.append(np.asarray(wave.array).T)  # abTEM is (x, y)
    return {"images": images, "waves": waves, "seconds": seconds}


def drprobe_run(models, optics, settings, bin_dir):
    work = Path(tempfile.mkdtemp(prefix="bench-drprobe-"))
    backend = get_backend("drprobe", bin_dir=bin_dir, keep_files=True, work_dir=work)
    t = time.perf_counter()
    images, _ = backend.simulate(models, optics, settings)
    seconds = (time.perf_counter() - t) / len(models)
    waves = []
    for i in range(len(models)):
        (folder,) = work.glob(f"drprobe-s{i:04d}-*")
        (wave,) = [p for p in folder.glob("wave_sl*.wav") if not p.name.endswith("000.wav")]
        ny, nx = images.shape[1:]
        waves.append(np.fromfile(wave, dtype="<c8").reshape(ny, nx))
    per_program = {p: s / len(models) for p, s in backend.seconds.items()}
    return {"images": images, "waves": waves, "seconds": seconds, "per_program": per_program,
            "version": backend.version()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=2, help="samples (models and optics)")
    ap.add_argument("--box-nm", type=float, default=4.0)
    ap.add_argument("--diameter-nm", type=float, default=2.0)
    ap.add_argument("--support-nm", type=float, default=2.0)
    ap.add_argument("--sampling-A", type=float, default=0.1)
    ap.add_argument("--drprobe-bin", default=None, help="folder of celslc, msa, wavimg (default: make drprobe's)")
    args = ap.parse_args()
    torch.set_num_threads(1)
    models, optics = build_models(args.n, args), draw_optics(args.n)
    settings = SimulationSettings(sampling_A=args.sampling_A, slice_thickness_A=2.0, device="cpu")
    runs = {"ours": ours(models, optics, settings)}
    runs["ours kirkland"] = ours(models, optics, dataclasses.replace(settings, parametrization="kirkland"))
    try:
        runs["abTEM"] = abtem_run(models, optics, settings)
    except ImportError:
        print("abTEM not installed: skipped")
    try:
        runs["Dr Probe"] = drprobe_run(models, optics, settings, args.drprobe_bin)
    except DatagenError as err:
        print(f"Dr Probe skipped: {err}")
    shape = runs["ours"]["images"].shape[1:]
    rows = []
    for a, b in itertools.combinations(runs, 2):
        ov = [overlap(x, y) for x, y in zip(runs[a]["waves"], runs[b]["waves"])]
        agree = [image_agreement(x, y, shape) for x, y in zip(runs[a]["images"], runs[b]["images"])]
        rows.append({"pair": f"{a} / {b}", "exit_wave_overlap_min": min(ov),
                     "image_correlation_min": min(c for c, _ in agree),
                     "image_relative_rms_max": max(e for _, e in agree)})
    n_atoms = [len(m) for m in models]
    print(f"\n{args.n} samples: Au {args.diameter_nm} nm on {args.support_nm} nm C in a {args.box_nm} nm box, "
          f"{np.mean(n_atoms):.0f} atoms each, {args.sampling_A} Å sampling ({runs['ours']['waves'][0].shape[1]} px a side)")
    print(f"| pair | exit-wave overlap (min) | image correlation (min) | image relative RMS (max) |")
    print("| --- | --- | --- | --- |")
    for r in rows:
        print(f"| {r['pair']} | {r['exit_wave_overlap_min']:.5f} | {r['image_correlation_min']:.5f} | "
              f"{100 * r['image_relative_rms_max']:.2f} % |")
    print("\n| simulator | seconds per image |\n| --- | --- |")
    for name, run in runs.items():
        extra = ""
        if "per_program" in run:
            extra = " (" + ", ".join(f"{p} {s:.1f} s" for p, s in run["per_program"].items()) + ")"
        print(f"| {name} | {run['seconds']:.2f}{extra} |")
    write_json("bench_simulators", {
        "samples": args.n, "box_nm": args.box_nm, "diameter_nm": args.diameter_nm, "support_nm": args.support_nm,
        "sampling_A": args.sampling_A, "atoms": n_atoms, "pairs": rows,
        "seconds_per_image": {k: v["seconds"] for k, v in runs.items()},
        "drprobe_seconds_per_program": runs.get("Dr Probe", {}).get("per_program"),
        "drprobe_version": runs.get("Dr Probe", {}).get("version"),
        "machine": {"platform": platform.platform(), "torch_threads": 1}})


if __name__ == "__main__":
    main()
