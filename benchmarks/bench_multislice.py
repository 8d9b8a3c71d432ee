"""Throughput of the batched torch multislice (``datagen.simulate.multislice``) against abTEM.

The work: exit waves of Au particles (20 Å sphere, ~240 atoms) on 20 Å amorphous carbon (~7200 atoms)
in a 60 Å cube, 300 kV, 30 slices of 2 Å, Lobato potentials with the infinite projection, at 0.1 Å
(600×600) and 0.05 Å (1200×1200) sampling; the models come from ``datagen.structures.build_sample``.

Fairness: both codes run on the same models, in the same process, timed alternately (ours, abTEM,
ours, abTEM, …), best of ``--repeats`` each, after a warm-up (FFT plans, caches), on T = ``--threads``
cores (default: all). abTEM 1.0: one FFTW thread per task, the batch's tasks run by dask's threaded
scheduler with T workers. ours, two ways: "workers", the same strategy (the batch split over T Python
threads, one ``exit_waves`` call each, ``torch.set_num_threads(1)``), which gives the speedup; and
"one call", the whole batch in one call with ``torch.set_num_threads(T)``, whose intra-op threading
scales worse on a small CPU. OpenMP threads wait
passively (``OMP_WAIT_POLICY=PASSIVE`` unless set), so that a busy shared machine cannot stall them.
``--images`` adds full images (exit waves + CTF with 5 nm focal spread, 15 focal planes, a 30 mrad
aperture, as the catalogs) through the two ``datagen.simulate.backends`` backends. On CUDA, ours is timed on batches cycled from a pool of
models, with the peak of ``torch.cuda.max_memory_allocated``; abTEM runs on the GPU when cupy is there.

Usage::

    python benchmarks/bench_multislice.py            # full run, a few minutes on 2 cores
    python benchmarks/bench_multislice.py --quick    # about a minute

Prints a table and writes ``benchmarks/results/bench_multislice.json``. Never asserted by tests.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np  # noqa: E402
import torch  # noqa: E402

from datagen.simulate.multislice import exit_waves  # noqa: E402
from datagen.simulate.params import Optics, SimulationSettings  # noqa: E402
from datagen.structures.assemble import SampleSpec, build_sample  # noqa: E402

VOLTAGE_KV = 300.0
SLICE_A = 2.0
RESULTS = Path(__file__).parent / "results" / "bench_multislice.json"


def build_models(n: int, seed: int = 7) -> list:
    """``n`` Au-on-carbon models in a 60 Å cube, one random stream each."""
    spec = SampleSpec(kind="sphere", element="Au", diameter=20.0, support="C", thickness=20.0,
                      box=(60.0, 60.0, 60.0))
    return [build_sample(spec, np.random.default_rng([seed, i])) for i in range(n)]


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_ours(models, sampling: float, device: str, repeats: int) -> float:
    """Best wall time [s] of one batched ``exit_waves`` call over ``models``."""
    settings = SimulationSettings(sampling_A=sampling, slice_thickness_A=SLICE_A, device=device,
                                  max_batch_bytes=_budget(device))
    dev = torch.device(device)
    best = float("inf")
    for _ in range(repeats):
        _sync(dev)
        start = time.perf_counter()
        waves, _ = exit_waves(models, settings, VOLTAGE_KV)
        _sync(dev)
        best = min(best, time.perf_counter() - start)
        del waves
    return best


def time_ours_workers(models, sampling: float, workers: int, repeats: int) -> float:
    """Best wall time [s] of ``models`` split over ``workers`` threads, one single-threaded call each."""
    from concurrent.futures import ThreadPoolExecutor

    settings = SimulationSettings(sampling_A=sampling, slice_thickness_A=SLICE_A, device="cpu")
    parts = [models[i::workers] for i in range(workers) if models[i::workers]]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    best = float("inf")
    try:
        with ThreadPoolExecutor(len(parts)) as pool:
            for _ in range(repeats):
                start = time.perf_counter()
                list(pool.map(lambda part: exit_waves(part, settings, VOLTAGE_KV), parts))
                best = min(best, time.perf_counter() - start)
    finally:
        torch.set_num_threads(threads)
    return best


def _budget(device: str) -> int:
    if device.startswith("cuda"):
        free, _ = torch.cuda.mem_get_info(torch.device(device))
        return int(free * 0.6)
    return 4 * 2**30


def abtem_available() -> bool:
    try:
        import abtem  # noqa: F401
    except ImportError:
        return False
    return True


def time_abtem(models, sampling: float, threads: int, repeats: int, device: str = "cpu") -> float:
    """Best wall time [s] of abTEM exit waves of ``models`` (dask threads, one FFTW thread each)."""
    import abtem
    import dask

    abtem.config.set({"fftw.threads": 1, "device": device, "precision": "float32"})
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        lazy = [abtem.PlaneWave(energy=VOLTAGE_KV * 1e3, device=device).multislice(
            abtem.Potential(m, sampling=sampling, slice_thickness=SLICE_A, projection="infinite",
                            parametrization="lobato", device=device)) for m in models]
        if device == "gpu":
            for w in lazy:
                w.compute(progress_bar=False)
        else:
            dask.compute(*[w.array for w in lazy], scheduler="threads", num_workers=threads)
        best = min(best, time.perf_counter() - start)
    return best


def cpu_comparison(samplings, batch: int, threads: int, repeats: int) -> list[dict]:
    """Exit waves per second, ours (workers; one call) and abTEM's, timed alternately on the same batch."""
    models = build_models(batch)
    has_abtem = abtem_available()
    rows = []
    for sampling in samplings:
        time_ours(models[:1], sampling, "cpu", 1)
        if has_abtem:
            time_abtem(models[:1], sampling, threads, 1)
        best = {"workers": float("inf"), "one call": float("inf"), "abtem": float("inf")}
        for _ in range(repeats):
            best["workers"] = min(best["workers"], time_ours_workers(models, sampling, threads, 1))
            best["one call"] = min(best["one call"], time_ours(models, sampling, "cpu", 1))
            if has_abtem:
                best["abtem"] = min(best["abtem"], time_abtem(models, sampling, threads, 1))
        row = {"what": "exit waves, CPU", "sampling_A": sampling, "batch": batch, "threads": threads,
               "ours_images_per_s": batch / best["workers"], "ours_one_call_images_per_s": batch / best["one call"]}
        if has_abtem:
            row.update(abtem_images_per_s=batch / best["abtem"], speedup=best["abtem"] / best["workers"])
        rows.append(row)
        _print_row(row)
    return rows


def image_comparison(sampling: float, batch: int, threads: int, repeats: int) -> list[dict]:
    """Full noise-free images per second through the two backends (exit waves + CTF)."""
    try:
        from datagen.simulate.backends import get_backend
    except ImportError:
        return []
    models = build_models(batch)
    optics = [Optics(defocus_nm=-4.0, focal_spread_nm=5.0, n_focal=15, aperture_mrad=30.0)] * batch  # as the catalogs
    settings = SimulationSettings(sampling_A=sampling, slice_thickness_A=SLICE_A, device="cpu")
    backends = {"ours": get_backend("multislice")}
    if abtem_available():
        import abtem
        abtem.config.set({"fftw.threads": 1})
        backends["abtem"] = get_backend("abtem")
    best = {}
    for name, backend in backends.items():
        backend.simulate(models[:1], optics[:1], settings)
    for _ in range(repeats):
        for name, backend in backends.items():
            start = time.perf_counter()
            backend.simulate(models, optics, settings)
            best[name] = min(best.get(name, float("inf")), time.perf_counter() - start)
    row = {"what": "images (backends), CPU", "sampling_A": sampling, "batch": batch, "threads": threads,
           "ours_images_per_s": batch / best["ours"]}
    if "abtem" in best:
        row.update(abtem_images_per_s=batch / best["abtem"], speedup=best["abtem"] / best["ours"])
    _print_row(row)
    return [row]


def scaling(samplings, batches, repeats: int, device: str, pool: int = 8) -> list[dict]:
    """Time per image of ours against grid size (batch 1) and against batch size (0.1 Å); batches are
    cycled from a pool of models."""
    models = build_models(min(pool, max(batches)))
    rows = []
    time_ours(models[:1], samplings[0], device, 1)
    for sampling in samplings:
        seconds = time_ours(models[:1], sampling, device, repeats)
        gpts = int(np.ceil(60.0 / sampling))
        rows.append({"what": f"grid scaling, {device}", "sampling_A": sampling, "gpts": gpts, "batch": 1,
                     "ours_images_per_s": 1 / seconds, "ms_per_image": 1e3 * seconds})
        _print_row(rows[-1])
    for batch in batches:
        work = [models[i % len(models)] for i in range(batch)]
        seconds = time_ours(work, 0.1, device, repeats)
        rows.append({"what": f"batch scaling, {device}", "sampling_A": 0.1, "gpts": 600, "batch": batch,
                     "ours_images_per_s": batch / seconds, "ms_per_image": 1e3 * seconds / batch})
        _print_row(rows[-1])
    return rows


def cuda_throughput(batches, repeats: int, pool: int = 16) -> list[dict]:
    """Images/s and peak memory on CUDA, 0.05 Å, batches cycled from a pool of models."""
    device = "cuda"
    models = build_models(pool)
    rows = []
    time_ours(models[:2], 0.05, device, 1)
    for batch in batches:
        work = [models[i % pool] for i in range(batch)]
        torch.cuda.reset_peak_memory_stats()
        seconds = time_ours(work, 0.05, device, repeats)
        row = {"what": "exit waves, CUDA", "sampling_A": 0.05, "gpts": 1200, "batch": batch,
               "ours_images_per_s": batch / seconds,
               "peak_memory_GiB": torch.cuda.max_memory_allocated() / 2**30}
        rows.append(row)
        _print_row(row)
    if abtem_available() and _cupy_available():
        time_abtem(models[:1], 0.05, 1, 1, device="gpu")
        seconds = time_abtem(models[:8], 0.05, 1, repeats, device="gpu")
        rows.append({"what": "abTEM exit waves, CUDA", "sampling_A": 0.05, "gpts": 1200, "batch": 8,
                     "abtem_images_per_s": 8 / seconds})
        _print_row(rows[-1])
    return rows


def _cupy_available() -> bool:
    try:
        import cupy  # noqa: F401
    except ImportError:
        return False
    return True


def _print_row(row: dict) -> None:
    cells = [f"{row['what']:<26}", f"{row['sampling_A']:>5.3f} Å", f"batch {row.get('batch', 1):>4}"]
    if "ms_per_image" in row:
        cells.append(f"{row['ms_per_image']:8.1f} ms/image")
    if "ours_images_per_s" in row:
        cells.append(f"ours {row['ours_images_per_s']:8.2f} img/s")
    if "ours_one_call_images_per_s" in row:
        cells.append(f"(one call {row['ours_one_call_images_per_s']:.2f})")
    if "abtem_images_per_s" in row:
        cells.append(f"abTEM {row['abtem_images_per_s']:8.2f} img/s")
    if "speedup" in row:
        cells.append(f"x{row['speedup']:.2f}")
    if "peak_memory_GiB" in row:
        cells.append(f"peak {row['peak_memory_GiB']:.2f} GiB")
    print("  ".join(cells), flush=True)


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats, smaller batches")
    parser.add_argument("--threads", type=int, default=os.cpu_count(), help="CPU threads for both codes")
    parser.add_argument("--repeats", type=int, default=None, help="timed repeats (best is kept)")
    parser.add_argument("--out", type=Path, default=RESULTS, help="JSON results file")
    parser.add_argument("--images", action="store_true", help="also time full images through the backends")
    args = parser.parse_args(argv)
    repeats = args.repeats or (2 if args.quick else 3)
    torch.set_num_threads(args.threads)

    rows = cpu_comparison((0.1, 0.05), 2 if args.quick else 4, args.threads, repeats)
    if args.images:
        rows += image_comparison(0.1, 2, args.threads, repeats)
    rows += scaling((0.2, 0.1, 0.07, 0.05), (1, 2, 4) if args.quick else (1, 2, 4, 8), repeats, "cpu")
    if torch.cuda.is_available():
        rows += cuda_throughput((1, 16, 64) if args.quick else (1, 16, 64, 128, 256), repeats)
        rows += scaling((0.2, 0.1, 0.07, 0.05, 0.035), (1, 16, 64, 256), repeats, "cuda")

    result = {
        "benchmark": "bench_multislice",
        "work": ("exit waves, Au sphere 20 Å on 20 Å a-C, 60 Å cube, 300 kV, 30 slices of 2 Å, Lobato, "
                 "infinite projection"),
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
        "date": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "machine": {"platform": platform.platform(), "processor": platform.processor(), "cpu_count": os.cpu_count(),
                    "threads": args.threads, "torch": torch.__version__,
                    "cuda": torch.cuda.get_device_name() if torch.cuda.is_available() else None},
        "quick": args.quick, "repeats": repeats, "rows": rows,
    }
    if abtem_available():
        import abtem
        result["machine"]["abtem"] = abtem.__version__
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    print(f"wrote {args.out}")
    return result


if __name__ == "__main__":
    main()
