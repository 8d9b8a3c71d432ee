"""The classifier's user-facing error: one line naming the culprit, shown by the shared CLI handler."""

from __future__ import annotations

from typing import TYPE_CHECKING

from datagen.errors import DatagenError
from datagen.errors import refuse_existing as _refuse_existing

if TYPE_CHECKING:
    from collections.abc import Iterable
    from pathlib import Path


class ClassifierError(DatagenError):
    """A model file, dataset selection or training parameter the user has to fix."""


def refuse_existing(paths: Iterable[str | Path]) -> None:
    """``datagen.errors.refuse_existing`` with the classifier's error type."""
    _refuse_existing(paths, ClassifierError)
