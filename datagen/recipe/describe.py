"""For recipe authors: a dry check of what a recipe will make, without generating it."""

from __future__ import annotations

from datagen.generators import get_generator


def describe_recipe(recipe) -> dict:
    """What a recipe will make, worked out without generating: counts, its hash and reference builds,
    and what its generator adds (``describe``: image shape, grids, the largest model, warnings)."""
    out = {"name": recipe.name, "version": recipe.version, "generator": recipe.generator,
           "samples": recipe.n_samples, "classes": dict(recipe.classes), "chunk_size": recipe.chunk_size,
           "chunks": -(-recipe.n_samples // recipe.chunk_size), "recipe_sha256": recipe.sha256(),
           "reference_content_sha256": recipe.reference_content_sha256}
    out.update(get_generator(recipe.generator).describe(recipe))
    return out
