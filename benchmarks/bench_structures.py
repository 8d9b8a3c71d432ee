"""Timing of the atomic-model builders (datagen.structures), one core, medians after JIT warm-up.

Targets from issue 3: one full sample model (particle + 6×6×2 nm carbon film) under 20 ms median;
the random sequential packing of 3000 carbon atoms alone under 5 ms.

    python benchmarks/bench_structures.py [--repeats 50] [--pin]

Single-threaded (BLAS and numba threads set to 1 before import). The JSON records the load
average: on a shared machine the medians include waiting for the CPU, the minima less so.

Prints a table and writes benchmarks/results/bench_structures.json. Never run by the tests.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numba  # noqa: E402
import numpy as np  # noqa: E402

from datagen.structures import PARTICLE_KINDS, build_particle, build_sample, build_support  # noqa: E402
from datagen.structures.lattice import number_density  # noqa: E402
from datagen.structures.packing import random_sequential_packing  # noqa: E402

RESULTS = Path(__file__).parent / "results" / "bench_structures.json"
TARGETS_MS = {"pack 3000 C atoms": 5.0, "full sample": 20.0}


def _pin_one_core() -> None:
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})


def median_ms(fn, repeats: int, warmup: int = 3) -> tuple[float, float]:
    """Median and minimum wall time [ms] of ``fn(rng)`` with a fresh generator per call."""
    for i in range(warmup):
        fn(np.random.default_rng([999, i]))
    times = []
    for i in range(repeats):
        rng = np.random.default_rng([0, i])
        t0 = time.perf_counter()
        fn(rng)
        times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times), min(times)


def cases():
    n_c = number_density(2.0, "C")
    edge = (3000 / n_c) ** (1 / 3)
    yield "pack 3000 C atoms", "pack 3000 C atoms (periodic cube, 2.0 g/cm³, 1.60 Å)", \
        lambda rng: random_sequential_packing(3000, (0, 0, 0), (edge,) * 3, 1.60, rng, periodic=(True,) * 3)
    yield "film", "C film 6×6×2 nm (≈7220 atoms)", lambda rng: build_support("C", 60.0, 60.0, 20.0, rng)
    for kind in PARTICLE_KINDS:
        yield "particle", f"particle {kind}, Au 3 nm", lambda rng, k=kind: build_particle(k, "Au", 30.0, rng)
    for diameter, box_z in ((20.0, 60.0), (30.0, 80.0)):  # 3 nm octahedra/decahedra reach 4–4.5 nm tip to tip
        for kind in PARTICLE_KINDS:
            spec = {"kind": kind, "element": "Au", "diameter": diameter, "support": "C", "thickness": 20.0,
                    "box": (60.0, 60.0, box_z)}
            yield "full sample", f"full sample {kind} {diameter / 10:g} nm + C 6×6×2 nm", \
                lambda rng, s=spec: build_sample(s, rng)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=50)
    parser.add_argument("--pin", action="store_true", help="pin the process to one CPU core")
    args = parser.parse_args()
    if args.pin:
        _pin_one_core()
    rows = []
    for group, name, fn in cases():
        med, best = median_ms(fn, args.repeats)
        target = TARGETS_MS.get(group)
        rows.append({"case": name, "group": group, "median_ms": med, "min_ms": best, "target_ms": target,
                     "ok": None if target is None else med < target})
    env = {"python": platform.python_version(), "numpy": np.__version__, "numba": numba.__version__,
           "machine": platform.machine(), "processor": platform.processor(), "cores_used": 1,
           "repeats": args.repeats, "pinned": args.pin, "load_average": list(os.getloadavg())}
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps({"environment": env, "results": rows}, indent=2))
    try:
        from rich.console import Console
        from rich.table import Table

        table = Table(title="datagen.structures (one core, ms)")
        for col in ("case", "median", "min", "target"):
            table.add_column(col, justify="left" if col == "case" else "right")
        for r in rows:
            mark = "" if r["ok"] is None else (" ✓" if r["ok"] else " ✗")
            table.add_row(r["case"], f"{r['median_ms']:.2f}", f"{r['min_ms']:.2f}",
                          "" if r["target_ms"] is None else f"{r['target_ms']:g}{mark}")
        Console().print(table)
    except ImportError:
        for r in rows:
            print(f"{r['case']:<48} {r['median_ms']:8.2f} {r['min_ms']:8.2f} {r['target_ms'] or ''}")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
