"""The classifier's user-facing error: one line naming the culprit, shown by the shared CLI handler."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from datagen.errors import DatagenError

if TYPE_CHECKING:
    from collections.abc import Iterable


class ClassifierError(DatagenError):
    """A model file, dataset selection or training parameter the user has to fix."""


def refuse_existing(paths: Iterable[str | Path]) -> None:
    """Refuse to replace files already written (the caller passes ``--force`` to skip this check)."""
    for p in paths:
        if Path(p).exists():
            raise ClassifierError(f"{p} exists; pass --force to replace it")
