"""Recipes: versioned, validated descriptions of a dataset, kept as YAML files in ``catalogs/``.

A recipe names what to generate (classes and counts), how (the generator and its parameters) and
with which seed. Unknown keys are errors; every error names the field. Ranges are written
``[low, high]`` and drawn uniformly unless the field says otherwise.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Annotated, Literal, Union

import yaml
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, field_validator, model_validator

from datagen.errors import RecipeError
from datagen.store import CLASS_NAMES

ClassName = Literal["amorphous", "monocrystalline", "polycrystalline"]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _ordered(v: tuple[float, float]) -> tuple[float, float]:
    if v[0] > v[1]:
        raise ValueError(f"range [{v[0]}, {v[1]}] has low > high")
    return v


def range_field(ge: float | None = None, le: float | None = None, gt: float | None = None):
    """The type of a ``[low, high]`` range of finite floats, each end within the bounds."""
    item = Annotated[float, Field(ge=ge, le=le, gt=gt, allow_inf_nan=False)]
    return tuple[item, item]


class Splits(_Model):
    """Fractions of structures in the train, validation and test splits (they sum to 1)."""

    train: float = Field(0.6, ge=0, le=1)
    val: float = Field(0.2, ge=0, le=1)
    test: float = Field(0.2, ge=0, le=1)

    @model_validator(mode="after")
    def _sum_to_one(self):
        if abs(self.train + self.val + self.test - 1) > 1e-9:
            raise ValueError(f"train + val + test must be 1, got {self.train + self.val + self.test:g}")
        return self


class RecipeBase(_Model):
    """What every recipe has, whatever its generator."""

    format: Literal[1] = Field(1, description="recipe file format version")
    name: str = Field(pattern=r"^[a-z0-9][a-z0-9._-]*$", max_length=64)
    version: str = Field(pattern=r"^\d+\.\d+\.\d+$", description="semantic version of this recipe")
    description: str = Field(min_length=1, max_length=200)
    seed: int = Field(ge=0, lt=2**63)
    chunk_size: int = Field(32, ge=1, le=4096, description="samples per stored chunk (and per task)")
    classes: dict[ClassName, Annotated[int, Field(ge=0, le=10_000_000)]]
    split: Splits = Splits()
    license: str = "CC-BY-4.0"
    references: str = ("Gumbiowski, Barthel, Loza, Heggen, Epple, Nanoscale Adv. 2024, 6, 4196-4206, "
                       "doi:10.1039/D4NA00266K")
    reference_content_sha256: str | None = Field(
        None, pattern=r"^[0-9a-f]{64}$", description="content hash of the reference build of this entry")

    @field_validator("description")
    @classmethod
    def _one_line(cls, v: str) -> str:
        if "\n" in v.strip():
            raise ValueError("description must be one line")
        return v.strip()

    @field_validator("classes")
    @classmethod
    def _some_samples(cls, v: dict) -> dict:
        if sum(v.values()) < 1:
            raise ValueError("at least one sample must be requested")
        return {k: v[k] for k in CLASS_NAMES if k in v}

    @property
    def n_samples(self) -> int:
        return sum(self.classes.values())

    def to_json_dict(self) -> dict:
        return self.model_dump(mode="json")

    def sha256(self) -> str:
        return hashlib.sha256(json.dumps(self.to_json_dict(), sort_keys=True, separators=(",", ":")).encode()).hexdigest()


class PatternParams(_Model):
    """The paper's baseline "pattern" images: a particle disk on a noisy background.

    Lengths in [pixel]; ``frequency`` is the angular frequency of the sinusoids [rad/pixel]
    (period 2π/frequency pixels); intensities in units of the mean background (1).
    """

    image_size: int = Field(128, ge=32, le=2048, description="image side [pixel]")
    diameter_px: range_field(gt=0) = (48.0, 96.0)
    frequency: range_field(gt=0, le=3.1416) = (0.05, 0.55)
    contrast: range_field(ge=0, le=10) = (0.3, 0.7)
    background_noise: range_field(ge=0, le=10) = (0.05, 0.2)
    dot_density: range_field(ge=0, le=1) = (0.02, 0.05)
    dot_sigma_px: range_field(gt=0, le=20) = (0.8, 1.6)
    salt_pepper: range_field(ge=0, le=1) = (0.02, 0.08)
    third_domain_probability: float = Field(0.5, ge=0, le=1)

    @model_validator(mode="after")
    def _ranges(self):
        for name in ("diameter_px", "frequency", "contrast", "background_noise", "dot_density",
                     "dot_sigma_px", "salt_pepper"):
            try:
                _ordered(getattr(self, name))
            except ValueError as err:
                raise ValueError(f"{name}: {err}") from None
        if self.diameter_px[1] > self.image_size:
            raise ValueError(f"diameter_px: high end {self.diameter_px[1]} exceeds image_size {self.image_size}")
        return self


class PatternRecipe(RecipeBase):
    generator: Literal["pattern"]
    pattern: PatternParams = PatternParams()


Recipe = Annotated[Union[PatternRecipe], Field(discriminator="generator")]
_ADAPTER = TypeAdapter(Recipe)


# ----------------------------------------------------------------------------------------- loading
def _one_line(err: ValidationError, source: str) -> str:
    first = err.errors()[0]
    loc = [str(p) for p in first["loc"]]
    if len(loc) > 1 and loc[0] in ("pattern", "simulation") and first["type"] != "union_tag_invalid":
        loc = loc[1:]  # drop the discriminator's tag that pydantic puts first
    where = ".".join(loc) or "recipe"
    msg = first["msg"].removeprefix("Value error, ")
    got = first.get("input")
    shown = "" if isinstance(got, dict) or first["type"] == "missing" else f" (got {got!r})"
    more = f" [+{err.error_count() - 1} more]" if err.error_count() > 1 else ""
    return f"{source}: {where}: {msg}{shown}{more}"


def parse_recipe(data: dict, source: str = "recipe") -> PatternRecipe:
    """Validate a recipe given as a dict; raise RecipeError naming the field."""
    if not isinstance(data, dict):
        raise RecipeError(f"{source}: a recipe must be a mapping, got {type(data).__name__}")
    if "generator" not in data:
        raise RecipeError(f"{source}: generator: field required (one of: pattern)")
    try:
        return _ADAPTER.validate_python(data)
    except ValidationError as err:
        raise RecipeError(_one_line(err, source)) from None


def load_recipe_file(path: str | Path) -> PatternRecipe:
    """Read and validate one recipe file (YAML, loaded safely)."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except OSError as err:
        raise RecipeError(f"{path}: cannot read ({err.strerror})") from None
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        at = f" at line {mark.line + 1}" if mark else ""
        raise RecipeError(f"{path}: not valid YAML{at}: {getattr(err, 'problem', err)}") from None
    recipe = parse_recipe(data, str(path))
    if recipe.name != path.stem:
        raise RecipeError(f"{path}: name: {recipe.name!r} must equal the file name {path.stem!r}")
    return recipe


def catalog_dirs() -> list[Path]:
    """Folders searched for catalog entries: $DATAGEN_CATALOGS (os.pathsep-separated), then the
    catalogs shipped in the package (wheel installs), then the repository's ``catalogs/``."""
    dirs = [Path(p) for p in os.environ.get("DATAGEN_CATALOGS", "").split(os.pathsep) if p]
    here = Path(__file__).resolve().parent
    dirs += [here / "catalogs", here.parent / "catalogs"]
    return [d for d in dirs if d.is_dir()]


def catalog_entries() -> dict[str, Path]:
    """Entry name -> recipe file; earlier folders win."""
    entries: dict[str, Path] = {}
    for d in catalog_dirs():
        for f in sorted(d.glob("*.yaml")):
            entries.setdefault(f.stem, f)
    return entries


def load_recipe(entry: str) -> PatternRecipe:
    """A catalog entry by name (e.g. ``pattern-demo``), or a path to a recipe file."""
    if entry.endswith((".yaml", ".yml")) or os.sep in entry:
        if not Path(entry).is_file():
            raise RecipeError(f"recipe file {entry} does not exist")
        return load_recipe_file(entry)
    entries = catalog_entries()
    if entry not in entries:
        known = ", ".join(sorted(entries)) or "none found"
        raise RecipeError(f"unknown catalog entry {entry!r} (known: {known})")
    return load_recipe_file(entries[entry])
