"""User-facing errors: the one exception type the CLIs turn into a one-line message."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path


class DatagenError(Exception):
    """An error caused by the user's input (recipe, path, parameter, missing program).

    The message is one line and names the culprit; the CLI prints it and exits non-zero.
    """


class RecipeError(DatagenError, ValueError):
    """A catalog recipe is malformed or has an out-of-range value."""


class StoreError(DatagenError):
    """A dataset store is missing, corrupt, incomplete, or would be overwritten."""


def refuse_existing(paths: Iterable[str | Path], error: type[DatagenError] = DatagenError) -> None:
    """Refuse to replace files already written (the caller passes ``--force`` to skip this check)."""
    for p in paths:
        if Path(p).exists():
            raise error(f"{p} exists; pass --force to replace it")
