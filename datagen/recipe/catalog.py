"""Recipe files: catalog folders, YAML read safely with one-line errors naming the field, and for
authors a full template (every default filled in) and the JSON Schema."""

from __future__ import annotations

import json
import os
from pathlib import Path

import yaml
from pydantic import TypeAdapter, ValidationError

from datagen.errors import RecipeError
from datagen.recipe.models import FieldRecipe, PatternRecipe, Recipe, SimulationRecipe
from datagen.simulate.params import MTF

RECIPE_ADAPTER = TypeAdapter(Recipe)


def _one_line(err: ValidationError, source: str) -> str:
    first = err.errors()[0]
    loc = [str(p) for p in first["loc"]]
    if len(loc) > 1 and loc[0] in ("pattern", "simulation", "field") and first["type"] != "union_tag_invalid":
        loc = loc[1:]  # drop the discriminator's tag that pydantic puts first
    where = ".".join(loc) or "recipe"
    msg = first["msg"].removeprefix("Value error, ")
    got = first.get("input")
    shown = "" if isinstance(got, dict) or first["type"] == "missing" else f" (got {got!r})"
    more = f" [+{err.error_count() - 1} more]" if err.error_count() > 1 else ""
    return f"{source}: {where}: {msg}{shown}{more}"


def parse_recipe(data: dict, source: str = "recipe") -> PatternRecipe | SimulationRecipe | FieldRecipe:
    """Validate a recipe given as a dict of plain JSON-able values, with strict types; raise RecipeError
    naming the field."""
    if not isinstance(data, dict):
        raise RecipeError(f"{source}: a recipe must be a mapping, got {type(data).__name__}")
    if "generator" not in data:
        raise RecipeError(f"{source}: generator: field required (one of: pattern, simulation, field)")
    try:
        text = json.dumps(data, allow_nan=False)
    except (TypeError, ValueError) as err:
        raise RecipeError(f"{source}: values must be numbers, strings, booleans, lists and mappings ({err})") from None
    try:  # strict: "300" is not a number, 1 not a boolean, 4.0 not a count
        return RECIPE_ADAPTER.validate_json(text, strict=True)
    except ValidationError as err:
        raise RecipeError(_one_line(err, source)) from None


#: Largest recipe file read [bytes]: a recipe is a page of YAML (an inline MTF table of 4096 values fits).
MAX_RECIPE_BYTES = 256 * 1024


class _NoAliasLoader(yaml.SafeLoader):
    """YAML's safe loader without anchors and aliases: recipes need none, and aliases nested in aliases
    expand exponentially (a "billion laughs" file of a few lines takes gigabytes)."""

    def compose_node(self, parent, index):
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise yaml.YAMLError(f"aliases (*{event.anchor}) are not allowed in recipes"
                                 f" (line {event.start_mark.line + 1})")
        return super().compose_node(parent, index)


def parse_recipe_text(text: str, path: str | Path) -> PatternRecipe | SimulationRecipe | FieldRecipe:
    """Validate a recipe file's text (``path`` names it in errors and anchors ``mtf_file``)."""
    path = Path(path)
    if len(text.encode()) > MAX_RECIPE_BYTES:
        raise RecipeError(f"{path}: {len(text.encode())} bytes, more than a recipe's {MAX_RECIPE_BYTES}")
    try:
        data = yaml.load(text, Loader=_NoAliasLoader)  # noqa: S506 (a SafeLoader subclass)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        at = f" at line {mark.line + 1}" if mark else ""
        raise RecipeError(f"{path}: not valid YAML{at}: {getattr(err, 'problem', None) or err}") from None
    _inline_mtf_file(data, path)
    return parse_recipe(data, str(path))


def load_recipe_file(path: str | Path) -> PatternRecipe | SimulationRecipe | FieldRecipe:
    """Read and validate one recipe file: YAML loaded safely, without aliases, at most
    ``MAX_RECIPE_BYTES``, with strict types (a quoted number is not a number)."""
    path = Path(path)
    try:
        size = path.stat().st_size
        if size > MAX_RECIPE_BYTES:
            raise RecipeError(f"{path}: {size} bytes, more than a recipe's {MAX_RECIPE_BYTES}")
        text = path.read_text()
    except OSError as err:
        raise RecipeError(f"{path}: cannot read ({err.strerror})") from None
    except UnicodeDecodeError:
        raise RecipeError(f"{path}: not a text file") from None
    recipe = parse_recipe_text(text, path)
    if recipe.name != path.stem:
        raise RecipeError(f"{path}: name: {recipe.name!r} must equal the file name {path.stem!r}")
    return recipe


def _inline_mtf_file(data, path: Path) -> None:
    """Replace ``simulation.detector.mtf_file`` (relative to the recipe's folder) by the table it holds,
    so the stored recipe carries the MTF itself."""
    detector = (data.get("simulation") or {}).get("detector") if isinstance(data, dict) and isinstance(data.get("simulation"), dict) else None
    if not isinstance(detector, dict) or "mtf_file" not in detector:
        return
    file = Path(detector.pop("mtf_file"))
    file = file if file.is_absolute() else path.parent / file
    try:
        mtf = MTF.from_file(file)
    except ValueError as err:
        raise RecipeError(f"{path}: simulation.detector.mtf_file: {err}") from None
    detector["mtf_table"] = list(mtf.table)
    detector.setdefault("mtf_source", file.name)


def with_backend(recipe, backend: str):
    """``recipe`` with its simulation backend replaced (a different recipe, hence another dataset)."""
    if recipe.generator not in ("simulation", "field"):
        raise RecipeError(f"--backend: the {recipe.generator!r} generator has no simulation backend")
    data = recipe.to_json_dict()
    data[recipe.generator]["backend"] = backend
    return parse_recipe(data, f"{recipe.name} with --backend {backend}")


def catalog_dirs() -> list[Path]:
    """Folders searched for catalog entries: $DATAGEN_CATALOGS (os.pathsep-separated), then the
    catalogs shipped in the package (wheel installs), then the repository's ``catalogs/``."""
    dirs = [Path(p) for p in os.environ.get("DATAGEN_CATALOGS", "").split(os.pathsep) if p]
    package = Path(__file__).resolve().parent.parent
    dirs += [package / "catalogs", package.parent / "catalogs"]
    return [d for d in dirs if d.is_dir()]


def catalog_entries() -> dict[str, Path]:
    """Entry name -> recipe file; earlier folders win."""
    entries: dict[str, Path] = {}
    for d in catalog_dirs():
        for f in sorted(d.glob("*.yaml")):
            entries.setdefault(f.stem, f)
    return entries


def load_recipe(entry: str) -> PatternRecipe | SimulationRecipe | FieldRecipe:
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


def recipe_yaml(recipe) -> str:
    """The recipe with every default filled in, as YAML (a template for a new entry), its reference
    hashes last."""
    data = recipe.to_json_dict()
    if recipe.reference_content_sha256 is not None:
        data["reference_content_sha256"] = recipe.reference_content_sha256
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=110)


def recipe_json_schema() -> dict:
    """JSON Schema of recipe files (for editors: e.g. the YAML language server's ``# yaml-language-server:
    $schema=...`` line)."""
    schema = RECIPE_ADAPTER.json_schema()
    schema["title"] = "datagen recipe"
    return schema
