"""Files written whole or not at all: every file the tools write goes to a temporary name beside its
target and is renamed onto it only once complete, so a failure halfway (a full disk, Ctrl-C, a crash)
leaves the previous file, or none, never a partial one."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Mapping
from pathlib import Path


def _temporary(path: Path) -> Path:
    # the suffix is kept: writers that pick the format from it (matplotlib, ase) still see it
    return path.with_name(f".{path.stem}.tmp-{os.getpid()}{path.suffix}")


@contextlib.contextmanager
def atomic_paths(paths: Mapping[str, str | Path]) -> Iterator[dict[str, Path]]:
    """Temporary paths to write ``paths`` (name → target) to; all are renamed onto their targets when
    the block succeeds, and all removed when it fails, so a set of outputs (a report and its tables)
    lands together or not at all."""
    targets = {k: Path(v) for k, v in paths.items()}
    tmps = {k: _temporary(p) for k, p in targets.items()}
    try:
        yield tmps
        for k, tmp in tmps.items():
            os.replace(tmp, targets[k])
    finally:
        for tmp in tmps.values():
            tmp.unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """A temporary path to write ``path`` to, renamed onto it when the block succeeds."""
    with atomic_paths({"file": path}) as tmps:
        yield tmps["file"]


def write_text(path: str | Path, text: str) -> Path:
    """Write ``text`` to ``path`` atomically; return the path."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)
    return Path(path)


@contextlib.contextmanager
def atomic_folder(path: str | Path) -> Iterator[Path]:
    """A temporary folder beside ``path`` to write a set of files into; it replaces ``path`` (an existing
    folder there is removed) when the block succeeds, and is removed when it fails."""
    import shutil
    import uuid

    path = Path(path)
    tmp = path.parent / f".{path.name}.tmp-{uuid.uuid4().hex[:8]}"
    tmp.mkdir(parents=True)
    try:
        yield tmp
        if path.exists():
            shutil.rmtree(path)
        tmp.rename(path)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
