"""Which simulation sampling does a catalog entry need? Its images at other samplings against its own.

For a few samples drawn from the entry exactly as the generator draws them, the noise-free detector
images (resampled to the output pixel, MTF applied, no Poisson noise) are simulated at the recipe's
sampling and at each other one asked for (coarser: what would be lost by saving time; finer: how far
the recipe's own is from converged). Reported per sampling: the RMS difference to the
recipe's images relative to the RMS contrast of those images (median and worst over the samples),
beside the Poisson noise at the entry's lowest dose in the same units, and the simulation time.
A sampling whose error is far below the noise (and below a percent of the contrast) changes nothing
a classifier can see. Prints a table and writes benchmarks/results/sampling_convergence.json.

    python benchmarks/sampling_convergence.py ENTRY [--samplings 0.075,0.1] [--samples 6]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path

import numpy as np
import torch

from datagen.generators import simulated as simulation
from datagen.simulate.backends import get_backend
from datagen.plan import sample_rng
from datagen.recipe import load_recipe
from datagen.classes import CLASS_NAMES
from datagen.simulate.detector import apply_detector
from datagen.structures import build_sample

RESULTS = Path(__file__).resolve().parent / "results"


def noise_free_images(models, draws, settings) -> tuple[np.ndarray, float]:
    backend = get_backend("multislice")
    t0 = time.perf_counter()
    images, sampling = backend.simulate(models, [d.optics for d in draws], settings)
    seconds = time.perf_counter() - t0
    recorded = [apply_detector(images[i:i + 1], sampling, dataclasses.replace(d.detector, dose_e_per_A2=None), None)[0]
                for i, d in enumerate(draws)]
    return np.stack(recorded), seconds


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("entry")
    parser.add_argument("--samplings", default="0.075,0.1", help="samplings to compare with [Å], comma-separated")
    parser.add_argument("--samples", type=int, default=6)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)

    recipe = load_recipe(args.entry)
    if recipe.generator == "field":
        return field_convergence(recipe, args)
    sim = recipe.simulation
    draws, models = [], []
    for i in range(args.samples):
        rng = sample_rng(recipe.seed, i)
        draw = simulation.draw_sample(sim, CLASS_NAMES[i % 3], rng)
        models.append(build_sample(draw.spec, rng))
        draws.append(draw)
    settings = simulation.settings_for(sim)
    reference, t_ref = noise_free_images(models, draws, settings)
    contrast = reference.std(axis=(1, 2))
    rows = [{"sampling_A": settings.sampling_A, "error_median": 0.0, "error_max": 0.0, "seconds_per_image":
             t_ref / len(models), "speedup": 1.0}]
    for s in [float(v) for v in args.samplings.split(",") if v]:
        images, t = noise_free_images(models, draws, dataclasses.replace(settings, sampling_A=s))
        if images.shape != reference.shape:
            raise SystemExit(f"sampling {s} Å gives {images.shape[1:]} output pixels, not {reference.shape[1:]}")
        error = np.sqrt(((images - reference) ** 2).mean(axis=(1, 2))) / contrast
        rows.append({"sampling_A": s, "error_median": float(np.median(error)), "error_max": float(error.max()),
                     "seconds_per_image": t / len(models), "speedup": t_ref / t})

    dose = sim.detector.dose_e_per_A2
    noise = None
    if dose is not None:
        low = min(dose) if isinstance(dose, (list, tuple)) else dose
        pixel = sim.box_nm[0] * 10 / reference.shape[2]  # output pixel along x [Å]
        noise = float(np.median(np.sqrt(reference.mean(axis=(1, 2)) / (low * pixel * pixel)) / contrast))

    print(f"{recipe.name} {recipe.version}: {len(models)} samples, noise-free detector images "
          f"{reference.shape[1]}x{reference.shape[2]} px")
    print(f"{'sampling [Å]':>13} {'error median':>13} {'error max':>10} {'s/image':>8} {'speed-up':>9}")
    for r in rows:
        print(f"{r['sampling_A']:>13.3f} {100 * r['error_median']:>12.2f}% {100 * r['error_max']:>9.2f}% "
              f"{r['seconds_per_image']:>8.2f} {r['speedup']:>8.1f}x")
    if noise is not None:
        print(f"Poisson noise at the lowest dose ({low:g} e-/Å²): {100 * noise:.0f}% of the contrast")
    print("errors: RMS difference to the recipe's sampling, relative to the RMS contrast of its images")
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / "sampling_convergence.json"
    data = json.loads(out.read_text()) if out.exists() else {}
    data[recipe.name] = {"version": recipe.version, "samples": len(models), "rows": rows, "noise_at_lowest_dose": noise}
    out.write_text(json.dumps(data, indent=2))


def field_convergence(recipe, args) -> None:
    """The same comparison for a field entry: whole fields, noise-free, at the recipe's sampling and others."""
    from datagen.generators import field

    backend = get_backend("multislice")
    settings = simulation.settings_for(recipe.field)
    rows, reference, t_ref = [], [], 0.0
    for i in range(args.samples):
        t0 = time.perf_counter()
        reference.append(field.simulate_field(recipe, i, backend, settings, noise_free=True).image)
        t_ref += time.perf_counter() - t0
    contrast = np.array([r.std() for r in reference])
    rows.append({"sampling_A": settings.sampling_A, "error_median": 0.0, "error_max": 0.0,
                 "seconds_per_image": t_ref / args.samples, "speedup": 1.0})
    for s in [float(v) for v in args.samplings.split(",") if v]:
        t0 = time.perf_counter()
        other = [field.simulate_field(recipe, i, backend, dataclasses.replace(settings, sampling_A=s), noise_free=True).image
                 for i in range(args.samples)]
        t = time.perf_counter() - t0
        error = np.array([np.sqrt(((a - b) ** 2).mean()) for a, b in zip(other, reference)]) / contrast
        rows.append({"sampling_A": s, "error_median": float(np.median(error)), "error_max": float(error.max()),
                     "seconds_per_image": t / args.samples, "speedup": t_ref / t})
    print(f"{recipe.name} {recipe.version}: {args.samples} fields, noise-free, {reference[0].shape[0]} px a side")
    print(f"{'sampling [Å]':>13} {'error median':>13} {'error max':>10} {'s/image':>8} {'speed-up':>9}")
    for r in rows:
        print(f"{r['sampling_A']:>13.3f} {100 * r['error_median']:>12.2f}% {100 * r['error_max']:>9.2f}% "
              f"{r['seconds_per_image']:>8.2f} {r['speedup']:>8.1f}x")
    print("errors: RMS difference to the recipe's sampling, relative to the RMS contrast of its fields")
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / "sampling_convergence.json"
    data = json.loads(out.read_text()) if out.exists() else {}
    data[recipe.name] = {"version": recipe.version, "samples": args.samples, "rows": rows}
    out.write_text(json.dumps(data, indent=2))


if __name__ == "__main__":
    main()
