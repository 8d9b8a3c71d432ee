"""User-facing errors: the one exception type the CLIs turn into a one-line message."""

from __future__ import annotations


class DatagenError(Exception):
    """An error caused by the user's input (recipe, path, parameter, missing program).

    The message is one line and names the culprit; the CLI prints it and exits non-zero.
    """


class RecipeError(DatagenError, ValueError):
    """A catalog recipe is malformed or has an out-of-range value."""


class StoreError(DatagenError):
    """A dataset store is missing, corrupt, incomplete, or would be overwritten."""
