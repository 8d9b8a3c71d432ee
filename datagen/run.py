"""Orchestration: generate a dataset from a recipe by running chunk tasks on dask (or in process).

One task = one sample chunk: it builds its samples from (catalog seed, sample index) alone, writes
them by region, then stores the chunk's checksum. Tasks run on a dask.distributed LocalCluster (one
single-threaded worker process each) by default, on any scheduler given by address, or in this
process with ``workers=0``. A rerun after Ctrl-C, a crash or a killed worker writes only the missing
chunks; a complete store is never written again.
"""

from __future__ import annotations

import contextlib
import inspect
import logging
import os
import platform
import shutil
import signal
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from dask.distributed import Client, LocalCluster, as_completed

from datagen.errors import DatagenError
from datagen.generators import get_generator
from datagen.plan import make_plan
from datagen.progress import TOPIC, reporting
from datagen.recipe import parse_recipe
from datagen.simulate.backends import BACKENDS, backend_class
from datagen.store import Store, create_or_open, dataset_attributes
from datagen.store.reference import software_environment


class ChunkError(DatagenError):
    """A chunk task failed; the message names the chunk."""


@dataclass(frozen=True)
class GenerationResult:
    path: Path
    n_samples: int
    n_chunks: int
    chunks_written: int
    chunks_repaired: int
    already_complete: bool
    content_sha256: str
    seconds: float


def _device_name(device: str) -> str:
    """"cpu", or the GPU's name for a CUDA device string ("cuda:0")."""
    return torch.cuda.get_device_name(torch.device(device)) if device.startswith("cuda") else "cpu"


def seconds_per_sample(recipe, n: int = 4) -> float:
    """Wall time of one sample of ``recipe`` made here as a worker makes it (drawing, the atomic model,
    simulation, detector, mask; not the store), averaged over ``n`` samples of the plan after a
    warm-up sample (JIT compilation, caches) [s]."""
    if not 1 <= n < recipe.n_samples:
        raise DatagenError(f"--time: between 1 and {recipe.n_samples - 1} samples, got {n}")
    plan = make_plan(recipe)
    generator = get_generator(recipe.generator)
    generator.generate_chunk(recipe, np.arange(1), plan.select(slice(0, 1)))
    t0 = time.perf_counter()
    generator.generate_chunk(recipe, np.arange(1, n + 1), plan.select(slice(1, n + 1)))
    return (time.perf_counter() - t0) / n


def run_chunk(path: str, recipe_dict: dict, chunk: int, backend_options: Mapping | None = None
              ) -> tuple[int, int, str]:
    """Task body: generate and write sample chunk ``chunk`` of the store at ``path``; ``backend_options``
    go to the simulation backend (``datagen.simulate.backends.get_backend``).

    Returns (chunk, n_samples, sha256 hex). Errors are re-raised as ChunkError naming the chunk.
    """
    try:
        recipe = parse_recipe(recipe_dict)
        store = Store.open(path)
        sl = store.layout.chunk_slice(chunk)
        plan = make_plan(recipe).select(sl)
        data, atoms = get_generator(recipe.generator).generate_chunk(recipe, np.arange(sl.start, sl.stop), plan,
                                                                    dict(backend_options or {}))
        digest = store.write_chunk(chunk, data, atoms)
        return chunk, sl.stop - sl.start, digest
    except Exception as err:
        msg = str(err).splitlines()[0] if str(err) else ""
        raise ChunkError(f"chunk {chunk}: {type(err).__name__}: {msg}") from err


def _scratch(stack: contextlib.ExitStack, backend: str, backend_options: dict) -> dict:
    """``backend_options`` with a ``work_dir`` of this run for a backend that writes working files (one
    taking that option, as Dr Probe's does), removed when ``stack`` closes: after an error, Ctrl-C or a
    killed worker too, whose own clean-up never ran. A ``work_dir`` the caller gives is left alone."""
    if backend not in BACKENDS or "work_dir" in backend_options:
        return backend_options
    if "work_dir" not in inspect.signature(backend_class(backend)).parameters:
        return backend_options
    work = Path(tempfile.mkdtemp(prefix=f"datagen-{backend}-run-"))
    stack.callback(shutil.rmtree, work, ignore_errors=True)
    return {**backend_options, "work_dir": str(work)}


def _run_local(path, recipe_dict, todo, on_chunk, backend_options):
    for chunk in todo:
        on_chunk(*run_chunk(str(path), recipe_dict, chunk, backend_options))


def default_workers(device: str) -> int:
    """Local workers when none are asked for: one per core, or one for a backend computing on CUDA
    (it batches whole chunks on the device; more processes would only share it). For several GPUs,
    run dask-cuda's LocalCUDACluster and pass its address with ``scheduler``."""
    return 1 if device.startswith("cuda") else (os.cpu_count() or 1)


@contextlib.contextmanager
def dask_client(workers: int | None, scheduler: str | None, device: str = "cpu"):
    """A dask client: on the scheduler at ``scheduler``, else on a new local cluster of ``workers``
    single-threaded worker processes (default: ``default_workers(device)``). Closed (and the cluster
    shut down) on exit."""
    if scheduler:
        try:
            client = Client(scheduler, timeout="15s")
        except (OSError, TimeoutError) as err:
            raise DatagenError(f"--scheduler {scheduler}: cannot connect ({err})") from None
        cluster = None
    else:
        # The worker processes start with SIGINT ignored (they inherit it): a terminal's Ctrl-C reaches the
        # whole process group, and only this process should act on it, shutting the cluster down and
        # printing one line, not every worker its own traceback. Workers log only what is critical: a task's
        # error reaches this process through its future (ChunkError), and a worker that loses the scheduler
        # while the cluster shuts down would log a heartbeat traceback. The dashboard takes any free port.
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
        try:
            cluster = LocalCluster(n_workers=workers or default_workers(device), threads_per_worker=1,
                                   processes=True, dashboard_address=":0", silence_logs=logging.CRITICAL)
        finally:
            signal.signal(signal.SIGINT, previous)
        client = Client(cluster)
    try:
        yield client
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


def _run_dask(client, path, recipe_dict, todo, on_chunk, backend_options):
    futures = [client.submit(run_chunk, str(path), recipe_dict, c, backend_options, pure=False, key=f"chunk-{c}")
               for c in todo]
    # Results are gathered on the client's own event loop (with_results): a future rescheduled after a
    # lost worker is never awaited from this thread.
    for _future, result in as_completed(futures, with_results=True):
        on_chunk(*result)


class _CostRecorder:
    """Keeps the store's ``generation`` attribute (time and hardware) current while chunks land.

    It is rewritten after a written chunk at most every ``every_s`` seconds, and after the last one
    (before a cluster shuts down), so that the time of an interrupted or killed run still counts in
    ``seconds_total`` when a rerun completes the store.
    ``seconds_total`` sums the time of every run that wrote anything (``runs`` of them); of a killed
    run, up to its last record, at most ``every_s`` before it died. An interrupted run (Ctrl-C, an
    error) records its time as it stops.
    """

    def __init__(self, store, t0, todo_samples, device, scheduler, n_workers, every_s: float = 10.0):
        self.store, self.t0, self.todo_samples, self.every_s = store, t0, todo_samples, every_s
        previous = store.attrs.get("generation") or {}
        # A run that was cut off left its running figures in "seconds_total"; they stay counted.
        self.previous_total = float(previous.get("seconds_total", 0.0))
        self.previous_runs = int(previous.get("runs", 1 if previous else 0))
        self.samples = 0
        self.last_write = t0
        self.static = {
            "workers": f"{n_workers} on scheduler {scheduler}" if scheduler else n_workers or "in process",
            "device": _device_name(device), "host": platform.node(), "cpus": os.cpu_count(),
            "platform": platform.platform(), **software_environment()}

    def chunk_written(self, n_samples: int) -> None:
        self.samples += n_samples
        now = time.perf_counter()
        if now - self.last_write >= self.every_s or self.samples >= self.todo_samples:
            self.record()
            self.last_write = now

    def record(self, final: bool = False) -> None:
        seconds = time.perf_counter() - self.t0
        self.store.update_attrs(generation={
            "seconds_total": round(self.previous_total + seconds, 3),
            "seconds_last_run": round(seconds, 3), "samples_last_run": self.samples,
            "runs": self.previous_runs + (1 if self.samples or final else 0),
            **self.static})


def generate(recipe, out: str | Path, *, workers: int | None = None, scheduler: str | None = None,
             on_start: Callable[[int, int], None] | None = None,
             on_chunk: Callable[[int, int, str], None] | None = None,
             on_sample: Callable[[int], None] | None = None,
             command: str = "", backend_options: Mapping | None = None) -> GenerationResult:
    """Generate (or resume) the dataset of ``recipe`` into the store ``out``.

    Parameters
    ----------
    workers : dask worker processes on a LocalCluster (default: one per core, at most one per
        chunk); 0 runs the tasks one after another in this process.
    scheduler : address of an existing dask scheduler ("tcp://host:8786"); its workers must see
        ``out`` at the same path.
    on_start : called once with (samples to write, samples in all).
    on_chunk : called with (chunk, n_samples, sha256 hex) as each chunk is written.
    on_sample : called with a number of samples as a slow backend (Dr Probe) finishes them, before their
        chunk is written (``datagen.progress``; for display: a chunk retried after a lost worker counts again).
    backend_options : options of the simulation backend, e.g. {"device": "cuda"} for the built-in
        engine or {"bin_dir": "/opt/drprobe/bin"} for Dr Probe; each worker builds its backend with them.
    """
    if workers is not None and workers < 0:
        raise DatagenError(f"--workers must be >= 0, got {workers}")
    t0 = time.perf_counter()
    gen = get_generator(recipe.generator)
    layout = gen.layout(recipe)
    backend_options = dict(backend_options or {})
    backend, backend_version, device = gen.backend_info(recipe, backend_options)
    attrs = dataset_attributes(
        title=f"{recipe.name} {recipe.version}", summary=recipe.description, catalog_name=recipe.name,
        catalog_version=recipe.version, recipe=recipe.to_json_dict(), license=recipe.license,
        references=recipe.references, backend=backend, backend_version=backend_version, command=command)
    if Path(out).exists():
        store = create_or_open(out, layout, attrs)  # refuses a store of another recipe before anything runs
        if store.complete:
            bad = store.verify().bad
            if not bad:
                return GenerationResult(Path(out), layout.n_samples, layout.n_chunks, 0, 0, True,
                                        store.attrs["content_sha256"], time.perf_counter() - t0)
            # A complete store whose chunks went bad (a deleted or damaged file): reopened for repair; the
            # bad chunks are rewritten from the recipe below and the store is verified and completed again.
            store.reopen_for_repair(f"{len(bad)} corrupt chunks found ({bad[0][1]} in chunk {bad[0][0]})")
    recipe_dict = recipe.to_json_dict()
    local = workers == 0 and not scheduler
    with contextlib.ExitStack() as stack:
        if not scheduler:  # a backend's working files go to one folder of this run, removed however it ends
            backend_options = _scratch(stack, backend, backend_options)
        client = None if local else stack.enter_context(dask_client(workers, scheduler, device))
        if on_sample is not None:
            stack.enter_context(reporting(on_sample))
            if client is not None:
                client.subscribe_topic(TOPIC, lambda event: on_sample(int(event[1])))
                stack.callback(client.unsubscribe_topic, TOPIC)
        # The cluster is reached before a new store is created: a bad --scheduler writes nothing.
        store = create_or_open(out, layout, attrs)
        repaired = 0
        written = store.written_chunks().tolist()
        if written:
            for chunk, _reason in store.verify(written).bad:
                store.clear_chunk(chunk)
                repaired += 1
            store.append_history(f"resumed{f': {command}' if command else ''}")
        todo = store.missing_chunks()
        todo_samples = sum(layout.chunk_slice(c).stop - layout.chunk_slice(c).start for c in todo)
        if on_start:
            on_start(todo_samples, layout.n_samples)
        n_workers = 0 if local else len(client.scheduler_info().get("workers", {}))
        cost = _CostRecorder(store, t0, todo_samples, device, scheduler, n_workers)
        callback = on_chunk or (lambda *a: None)

        def chunk_done(chunk, n, digest):
            cost.chunk_written(n)
            callback(chunk, n, digest)

        try:
            if todo and local:
                _run_local(out, recipe_dict, todo, chunk_done, backend_options)
            elif todo:
                _run_dask(client, out, recipe_dict, todo, chunk_done, backend_options)
        except BaseException:  # Ctrl-C or a failure: the time spent on the chunks written still counts
            if cost.samples:
                with contextlib.suppress(Exception):
                    cost.record()
            raise
    seconds = time.perf_counter() - t0
    cost.record(final=True)
    content = Store.open(out).mark_complete(command)
    return GenerationResult(Path(out), layout.n_samples, layout.n_chunks, len(todo), repaired, False,
                            content, seconds)
