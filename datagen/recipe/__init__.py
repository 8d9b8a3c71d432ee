"""Recipes: the validated models (``models``), where they are found and how they load (``catalog``),
and the tools for their authors (``describe``)."""

from datagen.recipe.catalog import (catalog_dirs, catalog_entries, load_recipe, load_recipe_file, parse_recipe,
                                    recipe_json_schema, recipe_yaml, with_backend)
from datagen.recipe.models import (PAPER_OPTICS, DetectorParams, FieldParams, FieldRecipe, NumericsParams, OpticsParams, ParticleParams,
                                   PatternParams, PatternRecipe, Recipe, RecipeBase, SimulationParams,
                                   SimulationRecipe, SupportParams)

__all__ = ["PAPER_OPTICS", "DetectorParams", "FieldParams", "FieldRecipe", "NumericsParams", "OpticsParams", "ParticleParams", "PatternParams",
           "PatternRecipe", "Recipe", "RecipeBase", "SimulationParams", "SimulationRecipe", "SupportParams",
           "catalog_dirs", "catalog_entries", "load_recipe", "load_recipe_file", "parse_recipe", "recipe_json_schema",
           "recipe_yaml", "with_backend"]
