"""Generators: what makes a dataset's samples from a recipe, and the registry they are picked from by
the recipe's ``generator`` field.

A generator is a module with five functions (the :class:`Generator` protocol):

- ``layout(recipe)``: the store's shape and its provenance variables (``datagen.store.schema.Layout``);
- ``generate_chunk(recipe, indices, plan, backend_options=None)``: the samples ``indices`` as arrays
  by variable name, and their atomic models (or None);
- ``backend_info(recipe, backend_options=None)``: (name, version, device) of what makes the images;
- ``describe(recipe)``: what ``datagen recipe check`` shows beyond counts (at least ``image_shape``
  and ``warnings``).

To add one: a module here, its recipe model in ``datagen.recipe.models`` (a ``RecipeBase`` subclass
with ``generator: Literal["<name>"]``, in the ``Recipe`` union), and one line in ``GENERATORS``.
"""

from __future__ import annotations

from types import ModuleType
from typing import Protocol, runtime_checkable

from datagen.errors import DatagenError
from datagen.generators import field, pattern, simulated


@runtime_checkable
class Generator(Protocol):
    def layout(self, recipe): ...

    def generate_chunk(self, recipe, indices, plan, backend_options=None): ...

    def backend_info(self, recipe, backend_options=None) -> tuple[str, str, str]: ...

    def describe(self, recipe) -> dict: ...


#: Recipe ``generator`` name → generator module.
GENERATORS: dict[str, ModuleType] = {
    "pattern": pattern,
    "simulation": simulated,
    "field": field,
}


def get_generator(name: str) -> Generator:
    """The generator registered under ``name``."""
    if name not in GENERATORS:
        raise DatagenError(f"generator: {name!r} is not available (known: {', '.join(sorted(GENERATORS))})")
    return GENERATORS[name]
