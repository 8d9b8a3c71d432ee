"""Pattern generator throughput: images/s with 1 and 2 dask workers, and the store's share of the time.

Run: python benchmarks/bench_pattern.py [--entry pattern-v1] [--samples N]
Prints a table and writes benchmarks/results/bench_pattern.json. All rows are measured in one run.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
from _output import write_json

from datagen.generators import get_generator
from datagen.run import generate
from datagen.plan import make_plan
from datagen.recipe import load_recipe, parse_recipe


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--entry", default="pattern-v1")
    ap.add_argument("--samples", type=int, default=1200, help="samples to generate (subset of the entry)")
    args = ap.parse_args()
    base = load_recipe(args.entry)
    counts = {k: max(1, round(v * args.samples / base.n_samples)) for k, v in base.classes.items()}
    recipe = parse_recipe({**base.to_json_dict(), "classes": counts})
    n = recipe.n_samples
    rows = []

    # the generator alone, in this process, no store
    gen, plan = get_generator(recipe.generator), make_plan(recipe)
    t = time.perf_counter()
    for c0 in range(0, n, recipe.chunk_size):
        sl = slice(c0, min(c0 + recipe.chunk_size, n))
        gen.generate_chunk(recipe, np.arange(sl.start, sl.stop), plan.select(sl))
    t_gen = time.perf_counter() - t
    rows.append(("generator only, in process", 0, t_gen, n / t_gen))

    tmp = Path(tempfile.mkdtemp())
    try:
        for workers, label in [(0, "generate + store, in process"), (1, "dask, 1 worker"), (2, "dask, 2 workers")]:
            t = time.perf_counter()
            generate(recipe, tmp / f"w{workers}.zarr", workers=workers)
            dt = time.perf_counter() - t
            rows.append((label, workers, dt, n / dt))
        from dask.distributed import Client, LocalCluster

        t = time.perf_counter()
        with LocalCluster(n_workers=2, threads_per_worker=1, dashboard_address=None) as cl, Client(cl):
            pass
        t_cluster = time.perf_counter() - t
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    t_store = rows[1][2] - t_gen
    print(f"pattern generator, {n} images of {recipe.pattern.image_size}² px, chunk {recipe.chunk_size}, "
          f"{os.cpu_count()} cores")
    print(f"{'run':<32}{'workers':>8}{'seconds':>10}{'images/s':>10}")
    for label, w, dt, rate in rows:
        print(f"{label:<32}{w:>8}{dt:>10.2f}{rate:>10.1f}")
    print(f"store share of in-process time: {t_store / rows[1][2]:.1%} (writing, checksums, read-back)")
    print(f"local cluster start + stop (2 workers): {t_cluster:.2f} s, included in the dask rows")
    print(f"speed-up 2 vs 1 workers: {rows[3][3] / rows[2][3]:.2f}x")
    result = {"n_images": n, "image_size": recipe.pattern.image_size, "chunk_size": recipe.chunk_size,
              "cpus": os.cpu_count(), "platform": platform.platform(),
              "rows": [dict(run=r[0], workers=r[1], seconds=r[2], images_per_s=r[3]) for r in rows],
              "store_share_in_process": t_store / rows[1][2], "cluster_start_stop_s": t_cluster}
    write_json("bench_pattern", result)


if __name__ == "__main__":
    main()
