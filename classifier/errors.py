"""The classifier's user-facing error: one line naming the culprit, shown by the shared CLI handler."""

from __future__ import annotations

from datagen.errors import DatagenError


class ClassifierError(DatagenError):
    """A model file, dataset selection or training parameter the user has to fix."""
