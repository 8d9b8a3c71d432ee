"""Progress of single samples, for backends slow enough that a chunk takes minutes (Dr Probe).

A backend calls :func:`sample_done` after each sample. In a dask worker that becomes a worker event on
the topic ``TOPIC``, which ``datagen.run.generate`` subscribes to on its client; in the generating process
itself it calls the function :func:`reporting` installed. Elsewhere it does nothing. The count is for
display only: what is written is counted per chunk, when the chunk's checksum is stored.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

TOPIC = "datagen-samples"
_callback: Callable[[int], None] | None = None


def sample_done(n: int = 1) -> None:
    """Report ``n`` samples simulated (see the module)."""
    if _callback is not None:
        _callback(n)
        return
    try:
        from distributed import get_worker

        worker = get_worker()
    except (ImportError, ValueError):  # not in a dask worker
        return
    worker.log_event(TOPIC, n)


@contextlib.contextmanager
def reporting(callback: Callable[[int], None] | None) -> Iterator[None]:
    """Samples reported in this process go to ``callback`` inside the block."""
    global _callback
    previous, _callback = _callback, callback
    try:
        yield
    finally:
        _callback = previous
