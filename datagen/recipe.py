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
from datagen.schema import CLASS_NAMES

ClassName = Literal["amorphous", "monocrystalline", "polycrystalline"]
Sha256 = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]


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
    reference_content_sha256: Sha256 | dict[Literal["cpu", "cuda"], Sha256] | None = Field(
        None, description="content hash of the entry's reference build: one hash (any device), or one "
                          "per device class where builds differ in the last bits (CPU vs CUDA)")

    def reference_for(self, device_class: str) -> str | None:
        """The reference content hash for builds on ``device_class`` ("cpu" or "cuda"), if recorded."""
        ref = self.reference_content_sha256
        return ref.get(device_class) if isinstance(ref, dict) else ref

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
        """The recipe as JSON-able data, without ``reference_content_sha256`` (a fact about one build of
        the recipe, not part of it: recording it does not change the recipe's hash)."""
        return self.model_dump(mode="json", exclude={"reference_content_sha256"})

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


Number = Union[Annotated[float, Field(allow_inf_nan=False)], tuple[float, float]]
"""A fixed value, or a ``[low, high]`` range drawn uniformly."""


def _check_number(name: str, v, lo: float | None = None, hi: float | None = None) -> None:
    values = v if isinstance(v, tuple) else (v,)
    if isinstance(v, tuple) and v[0] > v[1]:
        raise ValueError(f"{name}: range [{v[0]}, {v[1]}] has low > high")
    for x in values:
        if (lo is not None and x < lo) or (hi is not None and x > hi):
            raise ValueError(f"{name}: {x} is outside [{lo}, {hi}]")


DEFAULT_KINDS = {
    "amorphous": {"amorphous": 1.0},
    "monocrystalline": {"sphere": 0.6, "octahedron": 0.1, "truncated_octahedron": 0.1, "cuboctahedron": 0.1,
                        "wulff": 0.1},
    "polycrystalline": {"stitched": 0.8, "icosahedron": 0.1, "decahedron": 0.1},
}


#: Largest tip-to-tip extent of each model kind over the requested diameter: the worst seen over
#: 196 builds per kind at 0.8-3.2 nm (datagen.structures), plus 5 %. Discrete shapes snap to the
#: nearest magic size, and regular octahedra and decahedra are elongated.
EXTENT_FACTOR = {"sphere": 1.15, "amorphous": 1.15, "stitched": 1.25, "icosahedron": 1.3,
                 "cuboctahedron": 1.3, "truncated_octahedron": 1.2, "wulff": 1.25, "octahedron": 1.5,
                 "decahedron": 1.65}


class ParticleParams(_Model):
    """The particles: element, size and the mix of model kinds per class.

    ``kinds`` maps each class to relative weights of the model kinds that carry its label
    (``datagen.structures.PARTICLE_KINDS``).
    """

    element: str = "Au"
    lattice_constant_A: float | None = Field(None, gt=0, le=10, description="[Å]; None: ase's reference value (Au: 4.08)")
    diameter_nm: range_field(gt=0, le=20) = (1.0, 3.0)
    kinds: dict[ClassName, dict[str, Annotated[float, Field(ge=0)]]] = DEFAULT_KINDS
    amorphous_min_distance_nm: float | None = Field(None, gt=0, le=1, description="[nm]; None: Novaes 0.248 for Au")
    amorphous_density_g_cm3: float | None = Field(None, gt=0, le=30)

    @model_validator(mode="after")
    def _check(self):
        from ase.data import atomic_numbers

        from datagen.structures import PARTICLE_KINDS

        if self.element not in atomic_numbers:
            raise ValueError(f"element: unknown element {self.element!r}")
        _check_number("diameter_nm", self.diameter_nm)
        for label, weights in self.kinds.items():
            for kind in weights:
                if PARTICLE_KINDS.get(kind) != label:
                    allowed = sorted(k for k, v in PARTICLE_KINDS.items() if v == label)
                    raise ValueError(f"kinds.{label}: {kind!r} is not a {label} kind (one of {allowed})")
            if sum(weights.values()) <= 0:
                raise ValueError(f"kinds.{label}: weights must not all be zero")
        return self


class SupportParams(_Model):
    """The amorphous support film under the particle (``element: none`` for no film)."""

    element: str | None = "C"
    thickness_nm: range_field(ge=0.1, le=50) = (1.0, 3.0)
    density_g_cm3: float | None = Field(None, gt=0, le=30, description="None: the builder's default (C: 2.0)")
    min_distance_nm: float | None = Field(None, gt=0, le=1, description="None: the builder's default (C: 0.160)")
    substitute: str | None = Field(None, description="replace every film atom by this element (the paper's C->Si)")
    substitute_probability: float = Field(1.0, ge=0, le=1)

    @field_validator("element", "substitute")
    @classmethod
    def _element(cls, v):
        from ase.data import atomic_numbers

        if v is None or v.lower() == "none":
            return None
        if v not in atomic_numbers:
            raise ValueError(f"unknown element {v!r}")
        return v

    @model_validator(mode="after")
    def _check(self):
        _check_number("thickness_nm", self.thickness_nm)
        return self


class OpticsParams(_Model):
    """Objective lens and illumination; each value fixed or a ``[low, high]`` range.

    Units and signs as ``datagen.simulate.params.Optics``: defocus C1 [nm] (positive = overfocus),
    focal spread as 1/e half-width [nm], astigmatism A1 components [nm], Cs [µm], angles [mrad].

    Defaults: explicit focal averaging over 15 Gauss–Hermite planes behind a 30 mrad objective
    aperture. Without an aperture the focal average does not converge for 1–3 nm Au at 0.05 Å
    sampling (31 planes correlate 0.76 with 64: interference between far-apart high frequencies
    aliases in focus); with 30 mrad, 15 planes correlate 0.99999 with 64, while the quasi-coherent
    envelope gives 0.83 (it over-damps the non-linear terms of strong scatterers).
    """

    voltage_kv: float = Field(300.0, ge=10, le=3000)
    defocus_nm: Number = (-4.0, 5.0)
    focal_spread_nm: Number = (4.5, 5.5)
    astig_x_nm: Number = (-3.0, 3.0)
    astig_y_nm: Number = (-3.0, 3.0)
    cs_um: Number = 0.0
    aperture_mrad: float | None = Field(30.0, gt=0, le=500)
    convergence_mrad: Number = 0.0
    temporal_model: Literal["focal_average", "envelope"] = "focal_average"
    n_focal: int = Field(15, ge=1, le=64)

    @model_validator(mode="after")
    def _check(self):
        _check_number("defocus_nm", self.defocus_nm, -10_000, 10_000)
        _check_number("focal_spread_nm", self.focal_spread_nm, 0, 100)
        _check_number("astig_x_nm", self.astig_x_nm, -1000, 1000)
        _check_number("astig_y_nm", self.astig_y_nm, -1000, 1000)
        _check_number("cs_um", self.cs_um, -10_000, 10_000)
        _check_number("convergence_mrad", self.convergence_mrad, 0, 50)
        return self


class DetectorParams(_Model):
    """Recording: output pixel size, dose (None: noise-free) and MTF (ideal, parametric or tabulated)."""

    pixel_size_nm: float = Field(0.025, gt=0, le=1)
    dose_e_per_A2: Number | None = None
    mtf_q0: float | None = Field(None, gt=0, le=10, description="parametric MTF (1-c)/(1+(q/q0)^2)+c, q in Nyquist")
    mtf_c: float = Field(0.0, ge=0, lt=1)
    mtf_table: tuple[float, ...] | None = Field(None, description="MTF from zero to Nyquist (or mtf_file in YAML)")
    mtf_source: str = "ideal"

    @model_validator(mode="after")
    def _check(self):
        if self.dose_e_per_A2 is not None:
            _check_number("dose_e_per_A2", self.dose_e_per_A2, 1e-3, 1e9)
        if self.mtf_q0 is not None and self.mtf_table is not None:
            raise ValueError("give either mtf_q0 (parametric) or mtf_table/mtf_file, not both")
        return self


class NumericsParams(_Model):
    """Simulation grid and slicing (``datagen.simulate.params.SimulationSettings``)."""

    sampling_A: float = Field(0.05, ge=0.005, le=1.0)
    slice_thickness_A: float = Field(2.0, ge=0.1, le=50)
    parametrization: Literal["lobato", "kirkland"] = "lobato"
    frozen_phonons: int = Field(0, ge=0, le=1000)
    debye_waller: bool = False


class SimulationParams(_Model):
    """Simulated HRTEM images of a particle on a support film in a box."""

    particle: ParticleParams = ParticleParams()
    support: SupportParams = SupportParams()
    box_nm: tuple[Annotated[float, Field(gt=0, le=100)], Annotated[float, Field(gt=0, le=100)],
                  Annotated[float, Field(gt=0, le=100)]] = (6.0, 6.0, 8.2)
    optics: OpticsParams = OpticsParams()
    detector: DetectorParams = DetectorParams()
    numerics: NumericsParams = NumericsParams()
    backend: Literal["multislice", "abtem", "drprobe"] = "multislice"

    @model_validator(mode="after")
    def _fits(self):
        kinds = {k for weights in self.particle.kinds.values() for k, w in weights.items() if w > 0}
        extent = max(EXTENT_FACTOR.get(k, 1.6) for k in kinds) * self.particle.diameter_nm[1]
        t = self.support.thickness_nm[1] if self.support.element else 0.0
        if min(self.box_nm[:2]) < extent + 1.0:
            raise ValueError(f"box_nm: x and y must hold the widest particle ({extent:.3g} nm tip to tip for the "
                             f"kinds {sorted(kinds)}) + 1 nm, i.e. {extent + 1.0:.3g} nm")
        if self.box_nm[2] < extent + t + 0.2:
            raise ValueError(f"box_nm: z must hold the tallest particle ({extent:.3g} nm tip to tip), the film "
                             f"({t:g} nm) and a 0.2 nm gap, i.e. {extent + t + 0.2:.3g} nm")
        return self


class SimulationRecipe(RecipeBase):
    generator: Literal["simulation"]
    chunk_size: int = Field(8, ge=1, le=4096, description="samples per stored chunk (and per batched task)")
    simulation: SimulationParams = SimulationParams()

    @model_validator(mode="after")
    def _kinds_for_every_class(self):
        for label, count in self.classes.items():
            if count and not self.simulation.particle.kinds.get(label):
                raise ValueError(f"simulation.particle.kinds: {count} {label} samples requested but no "
                                 f"{label} model kinds given")
        return self


Recipe = Annotated[Union[PatternRecipe, SimulationRecipe], Field(discriminator="generator")]
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


def parse_recipe(data: dict, source: str = "recipe") -> PatternRecipe | SimulationRecipe:
    """Validate a recipe given as a dict; raise RecipeError naming the field."""
    if not isinstance(data, dict):
        raise RecipeError(f"{source}: a recipe must be a mapping, got {type(data).__name__}")
    if "generator" not in data:
        raise RecipeError(f"{source}: generator: field required (one of: pattern, simulation)")
    try:
        return _ADAPTER.validate_python(data)
    except ValidationError as err:
        raise RecipeError(_one_line(err, source)) from None


def load_recipe_file(path: str | Path) -> PatternRecipe | SimulationRecipe:
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
    _inline_mtf_file(data, path)
    recipe = parse_recipe(data, str(path))
    if recipe.name != path.stem:
        raise RecipeError(f"{path}: name: {recipe.name!r} must equal the file name {path.stem!r}")
    return recipe


def _inline_mtf_file(data, path: Path) -> None:
    """Replace ``simulation.detector.mtf_file`` (relative to the recipe's folder) by the table it holds,
    so the stored recipe carries the MTF itself."""
    detector = (data.get("simulation") or {}).get("detector") if isinstance(data, dict) else None
    if not isinstance(detector, dict) or "mtf_file" not in detector:
        return
    from datagen.simulate.params import MTF

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
    if recipe.generator != "simulation":
        raise RecipeError(f"--backend: the {recipe.generator!r} generator has no simulation backend")
    data = recipe.to_json_dict()
    data["simulation"]["backend"] = backend
    return parse_recipe(data, f"{recipe.name} with --backend {backend}")


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


def load_recipe(entry: str) -> PatternRecipe | SimulationRecipe:
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


# ------------------------------------------------------------------------------------ for authors
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
    schema = _ADAPTER.json_schema()
    schema["title"] = "datagen recipe"
    return schema


def describe_recipe(recipe) -> dict:
    """What a recipe will make, worked out without generating: counts, image and simulation grids,
    the largest model, its hash and reference builds."""
    out = {"name": recipe.name, "version": recipe.version, "generator": recipe.generator,
           "samples": recipe.n_samples, "classes": dict(recipe.classes), "chunk_size": recipe.chunk_size,
           "chunks": -(-recipe.n_samples // recipe.chunk_size), "recipe_sha256": recipe.sha256(),
           "reference_content_sha256": recipe.reference_content_sha256}
    if recipe.generator == "pattern":
        out["image_shape"] = [recipe.pattern.image_size] * 2
        return out
    from datagen.simulate.energy import electron_wavelength
    from datagen.simulate.grid import grid_for_cell, slice_count
    from datagen.simulate.imaging import band_limited_shape
    from datagen.simulate.params import Optics
    from datagen.simulation import NM, atoms_capacity, image_shape, lattice_fringes

    sim = recipe.simulation
    grid = grid_for_cell((sim.box_nm[0] * NM, sim.box_nm[1] * NM), sim.numerics.sampling_A)
    aperture = Optics(voltage_kv=sim.optics.voltage_kv, aperture_mrad=sim.optics.aperture_mrad)
    shape = image_shape(sim)
    out.update(
        image_shape=list(shape),
        pixel_size_nm=[sim.box_nm[1] / shape[0], sim.box_nm[0] / shape[1]],
        simulation_grid=list(grid.gpts), sampling_A=list(grid.sampling),
        slices=slice_count(sim.box_nm[2] * NM, sim.numerics.slice_thickness_A)[0],
        image_formation_grid=list(band_limited_shape(grid.gpts, grid.sampling, [aperture])
                                  if sim.backend == "multislice" else grid.gpts),
        wavelength_pm=electron_wavelength(sim.optics.voltage_kv) * 100,
        max_atoms_per_model=atoms_capacity(sim), backend=sim.backend, lattice_fringes=lattice_fringes(sim))
    out["warnings"] = [w for w in [out["lattice_fringes"]["warning"]] if w and recipe.classes.get("monocrystalline", 0)
                       + recipe.classes.get("polycrystalline", 0)]
    return out
