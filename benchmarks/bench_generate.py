"""Dataset generation throughput: images/s against worker count, the share of each stage, peak memory.

Run: python benchmarks/bench_generate.py [--entry demo] [--samples 48] [--workers 1,2] [--gpu]

1. One process, one thread: every stage of every chunk timed on its own (planning, drawing and
   building the atomic models, simulation, detector and masks, writing the store) -> shares of the total.
2. The whole generation on a local dask cluster with each worker count (and, with --gpu on a CUDA
   machine, one worker driving the GPU), with the peak resident memory of every worker.
Prints a table and writes benchmarks/results/bench_generate.json. All rows are measured in one run.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
from _output import write_json

from datagen.recipe import load_recipe, parse_recipe


def _subset(recipe, n: int):
    counts = {k: max(1, round(v * n / recipe.n_samples)) for k, v in recipe.classes.items()}
    return parse_recipe({**recipe.to_json_dict(), "classes": counts})


def stage_times(recipe, tmp: Path) -> dict[str, float]:
    """Seconds spent in each stage, all chunks in this process (one torch thread, as in a worker)."""
    import torch

    from datagen.classes import CLASS_NAMES
    from datagen.device import reproducible_threads, resolve_device
    from datagen.generators import simulated as simulation
    from datagen.generators.mask import particle_atoms_mask
    from datagen.plan import make_plan, sample_rng
    from datagen.run import generate
    from datagen.simulate.backends import get_backend
    from datagen.simulate.detector import apply_detector, output_grid
    from datagen.store import Store
    from datagen.structures import build_sample

    t = {"plan": 0.0, "models": 0.0, "simulate": 0.0, "detector+mask": 0.0, "store": 0.0}
    sim = recipe.simulation
    backend = get_backend(sim.backend)
    settings = simulation.settings_for(sim)
    # Warm up (numba JIT, form-factor caches) on one sample, outside the timings.
    warm = build_sample(simulation.draw_sample(sim, "amorphous", sample_rng(0, 0)).spec, sample_rng(0, 0))
    backend.simulate([warm], [simulation.draw_sample(sim, "amorphous", sample_rng(0, 0)).optics], settings)
    torch.set_num_threads(1)
    out = tmp / "stages.zarr"
    generate(recipe, out, workers=0)  # the store's bytes come from here; its writes are timed below
    store = Store.open(out)
    store.root.attrs["complete"] = False
    store = Store.open(out)
    layout = store.layout
    for chunk in range(layout.n_chunks):
        sl = layout.chunk_slice(chunk)
        t0 = time.perf_counter()
        plan = make_plan(recipe).select(sl)
        t["plan"] += time.perf_counter() - t0
        t0 = time.perf_counter()
        draws, models, rngs = [], [], []
        for index, label in zip(range(sl.start, sl.stop), plan.labels):
            rng = sample_rng(recipe.seed, index)
            d = simulation.draw_sample(sim, CLASS_NAMES[label], rng)
            models.append(build_sample(d.spec, rng))
            draws.append(d)
            rngs.append(rng)
        t["models"] += time.perf_counter() - t0
        t0 = time.perf_counter()
        with reproducible_threads(resolve_device()):
            images, sampling = backend.simulate(models, [d.optics for d in draws], settings)
        t["simulate"] += time.perf_counter() - t0
        t0 = time.perf_counter()
        shape, pixel = output_grid(images.shape[-2:], sampling, sim.detector.pixel_size_nm)
        [apply_detector(images[i:i + 1], sampling, d.detector, rngs[i]) for i, d in enumerate(draws)]
        [particle_atoms_mask(m, shape, pixel) for m in models]
        t["detector+mask"] += time.perf_counter() - t0
        data, atoms = simulation.generate_chunk(recipe, np.arange(sl.start, sl.stop), plan)
        t0 = time.perf_counter()
        store.clear_chunk(chunk)
        store.write_chunk(chunk, data, atoms)
        t["store"] += time.perf_counter() - t0
    return t


def cluster_run(recipe, out: Path, workers: int, device: str | None) -> tuple[float, list[int]]:
    """Wall time of a whole generation on a fresh local cluster, and each worker's peak RSS [bytes]."""
    import logging

    from dask.distributed import Client, LocalCluster

    from datagen.run import generate

    options = {"device": device} if device else {}
    with LocalCluster(n_workers=workers, threads_per_worker=1, dashboard_address=None,
                      silence_logs=logging.ERROR) as cluster, Client(cluster) as client:
        t0 = time.perf_counter()
        generate(recipe, out, scheduler=cluster.scheduler_address, backend_options=options)
        dt = time.perf_counter() - t0
        peaks = client.run(lambda: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)
    return dt, sorted(peaks.values())


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--entry", default="demo")
    ap.add_argument("--samples", type=int, default=48)
    ap.add_argument("--workers", default="1,2", help="comma-separated CPU worker counts")
    ap.add_argument("--gpu", action="store_true", help="also one worker on the CUDA device")
    args = ap.parse_args()
    recipe = _subset(load_recipe(args.entry), args.samples)
    n = recipe.n_samples
    tmp = Path(tempfile.mkdtemp())
    rows = []
    try:
        stages = stage_times(recipe, tmp)
        for w in [int(x) for x in args.workers.split(",")]:
            dt, peaks = cluster_run(recipe, tmp / f"w{w}.zarr", w, "cpu")
            rows.append({"run": f"{w} CPU worker(s)", "workers": w, "seconds": dt, "images_per_s": n / dt,
                         "peak_rss_MiB": [p / 2**20 for p in peaks]})
        if args.gpu:
            dt, peaks = cluster_run(recipe, tmp / "gpu.zarr", 1, "cuda")
            rows.append({"run": "1 GPU worker", "workers": 1, "seconds": dt, "images_per_s": n / dt,
                         "peak_rss_MiB": [p / 2**20 for p in peaks]})
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    total = sum(stages.values())
    overhead = stages["plan"] + stages["models"] + stages["store"]
    print(f"generation of {args.entry} ({n} images, chunk {recipe.chunk_size}, "
          f"{recipe.simulation.numerics.sampling_A} Å sampling), {os.cpu_count()} cores")
    print(f"{'stage (1 process, 1 thread)':<32}{'seconds':>10}{'share':>8}")
    for k, v in stages.items():
        print(f"{k:<32}{v:>10.2f}{v / total:>8.1%}")
    print(f"planning + models + store share: {overhead / total:.1%} (target < 10 %)")
    print(f"{'run':<24}{'seconds':>10}{'images/s':>10}  peak RSS per worker [MiB]")
    for r in rows:
        print(f"{r['run']:<24}{r['seconds']:>10.1f}{r['images_per_s']:>10.2f}  "
              + ", ".join(f"{p:.0f}" for p in r["peak_rss_MiB"]))
    result = {"entry": args.entry, "n_images": n, "cpus": os.cpu_count(), "platform": platform.platform(),
              "stages_s": stages, "overhead_share": overhead / total, "runs": rows}
    write_json("bench_generate", result)


if __name__ == "__main__":
    main()
