"""The one place that chooses the compute device and the floating-point precision.

Every torch computation in datagen takes ``device`` and ``dtype`` from here and passes them on
explicitly; nothing else calls ``torch.cuda.is_available()``.
"""

from __future__ import annotations

import contextlib
import os

import torch

from datagen.errors import DatagenError

#: Real dtype used by default for potentials, waves and images (complex64 for waves).
DEFAULT_DTYPE = torch.float32

_COMPLEX = {torch.float32: torch.complex64, torch.float64: torch.complex128}


def resolve_device(device: str | torch.device | None = None) -> torch.device:
    """Return the torch device to compute on.

    ``None`` or ``"auto"`` picks CUDA when present, else the CPU; the environment variable
    ``DATAGEN_DEVICE`` overrides the automatic choice. An explicit name ("cpu", "cuda", "cuda:1")
    is honoured, and asking for CUDA where there is none raises a one-line error.
    """
    if device is None or device == "auto":
        device = os.environ.get("DATAGEN_DEVICE", "auto")
        if device == "auto":
            return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except RuntimeError as err:
        raise DatagenError(f"device: unknown device {device!r} (use 'auto', 'cpu' or 'cuda[:N]')") from err
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise DatagenError(f"device: {device!r} requested but no CUDA device is available")
    return dev


def resolve_dtype(dtype: str | torch.dtype | None = None) -> torch.dtype:
    """Return the real floating dtype: ``None`` gives float32; "float64" or torch.float64 for checks."""
    if dtype is None:
        return DEFAULT_DTYPE
    if isinstance(dtype, str):
        dtype = getattr(torch, dtype, None)
    if dtype not in _COMPLEX:
        raise DatagenError(f"dtype: {dtype!r} is not supported (use float32 or float64)")
    return dtype


def complex_dtype(dtype: torch.dtype) -> torch.dtype:
    """The complex dtype matching a real one (float32 -> complex64)."""
    return _COMPLEX[resolve_dtype(dtype)]


@contextlib.contextmanager
def reproducible_threads(device: torch.device):
    """Run torch CPU work on one intra-op thread, so results do not depend on the thread count.

    MKL's CPU FFTs give last-bit differences between thread counts even under
    MKL_CBWR=COMPATIBLE (set in ``datagen/__init__``), which would make a dataset's content depend
    on how it was run; generation gets its parallelism from one dask worker per core instead. On
    CUDA nothing changes.
    """
    if device.type != "cpu":
        yield
        return
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)
