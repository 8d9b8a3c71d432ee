"""The recipe models: versioned, validated descriptions of a dataset (kept as YAML in ``catalogs/``).

A recipe names what to generate (classes and counts), how (the generator and its parameters) and
with which seed. Unknown keys are errors; every error names the field. Ranges are written
``[low, high]`` and drawn uniformly unless the field says otherwise.

The simulation's physical parameters are declared once, on the engine's parameter classes
(``datagen.simulate.params``: unit, bounds, description, neutral default); the fields here are made
from those declarations by :func:`declared`. Where a recipe's default differs from the engine's
neutral one, it is the paper's choice, listed in ``PAPER_OPTICS`` with its reason.
"""

from __future__ import annotations

import hashlib
import json
from typing import Annotated, Literal, Union

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from ase.data import atomic_numbers

from datagen.classes import CLASS_NAMES
from datagen.simulate.backends import BACKENDS
from datagen.simulate.params import Detector, Optics, SimulationSettings, declaration
from datagen.structures.kinds import KINDS, default_kind_weights

ClassName = Literal[CLASS_NAMES]
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


#: (section, field) of optional recipe blocks added after the recipe format's first version.
OMITTED_WHEN_UNSET = (("simulation", "recording"),)


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
        the recipe, not part of it: recording it does not change the recipe's hash), and without the
        optional blocks of ``OMITTED_WHEN_UNSET`` where they are unset (so that the recipes written
        before those blocks existed keep their hashes, and their stores stay resumable)."""
        data = self.model_dump(mode="json", exclude={"reference_content_sha256"})
        for section, name in OMITTED_WHEN_UNSET:
            if isinstance(data.get(section), dict) and data[section].get(name, 0) is None:
                del data[section][name]
        return data

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


_UNSET = object()


def declared(cls, name: str, default=_UNSET, *, ranged: bool = False):
    """The recipe field for parameter ``name`` of the engine's parameter class ``cls``: its unit,
    bounds and description from the declaration; its default the engine's, unless given (a recipe
    choice, see ``PAPER_OPTICS``). A ``ranged`` field takes a fixed value or a [low, high] range,
    whose ends the model's validator checks against the bounds."""
    d = declaration(cls, name)
    units = d["units"]
    description = d["description"] + ("" if units == "1" else f" [{units}]")
    extra = {"units": units}
    bounds = {k: d.get(k) for k in ("ge", "le", "gt") if d.get(k) is not None}
    if ranged:
        extra["bounds"] = bounds
        bounds = {}
    return Field(d["default"] if default is _UNSET else default, description=description, json_schema_extra=extra,
                 **bounds)


def _check_ranged(model) -> None:
    """Check every ranged field's values against its declared bounds (``declared(..., ranged=True)``)."""
    for name, info in type(model).model_fields.items():
        bounds = (info.json_schema_extra or {}).get("bounds") if isinstance(info.json_schema_extra, dict) else None
        value = getattr(model, name)
        if bounds is None or value is None:
            continue
        _check_number(name, value, bounds.get("ge", bounds.get("gt")), bounds.get("le"))
        if "gt" in bounds and min(value if isinstance(value, tuple) else (value,)) <= bounds["gt"]:
            raise ValueError(f"{name}: values must be > {bounds['gt']:g}")


#: The recipes' optics where they differ from the engine's neutral defaults: the paper's microscope
#: (defocus, focal spread and astigmatism ranges), behind a 30 mrad objective aperture. Without an
#: aperture the focal average does not converge for 1–3 nm Au at 0.05 Å sampling (31 planes
#: correlate 0.76 with 64: interference between far-apart high frequencies aliases in focus).
PAPER_OPTICS = {
    "defocus_nm": (-4.0, 5.0),
    "focal_spread_nm": (4.5, 5.5),
    "astig_x_nm": (-3.0, 3.0),
    "astig_y_nm": (-3.0, 3.0),
    "aperture_mrad": 30.0,
}


class ParticleParams(_Model):
    """The particles: element, size and the mix of model kinds per class.

    ``kinds`` maps each class to relative weights of the model kinds that carry its label
    (``datagen.structures.kinds.KINDS``; the defaults are the registry's).
    """

    element: str = "Au"
    lattice_constant_A: float | None = Field(None, gt=0, le=10, description="[Å]; None: ase's reference value (Au: 4.08)")
    diameter_nm: range_field(gt=0, le=20) = (1.0, 3.0)
    kinds: dict[ClassName, dict[str, Annotated[float, Field(ge=0)]]] = Field(default_factory=default_kind_weights)
    amorphous_min_distance_nm: float | None = Field(None, gt=0, le=1, description="[nm]; None: Novaes 0.248 for Au")
    amorphous_density_g_cm3: float | None = Field(None, gt=0, le=30)

    @model_validator(mode="after")
    def _check(self):
        if self.element not in atomic_numbers:
            raise ValueError(f"element: unknown element {self.element!r}")
        _check_number("diameter_nm", self.diameter_nm)
        for label, weights in self.kinds.items():
            for kind in weights:
                if kind not in KINDS or KINDS[kind].label != label:
                    allowed = sorted(k.name for k in KINDS.values() if k.label == label)
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

    Units, signs and bounds as declared on ``datagen.simulate.params.Optics``: defocus C1 [nm]
    (positive = overfocus), focal spread as 1/e half-width [nm], astigmatism A1 components [nm],
    Cs [µm], angles [mrad].

    Defaults: the paper's optics (``PAPER_OPTICS``), explicit focal averaging over 15 Gauss–Hermite
    planes behind a 30 mrad objective aperture: there 15 planes correlate 0.99999 with 64, while the
    quasi-coherent envelope gives 0.83 (it over-damps the non-linear terms of strong scatterers).
    """

    voltage_kv: float = declared(Optics, "voltage_kv")
    defocus_nm: Number = declared(Optics, "defocus_nm", PAPER_OPTICS["defocus_nm"], ranged=True)
    focal_spread_nm: Number = declared(Optics, "focal_spread_nm", PAPER_OPTICS["focal_spread_nm"], ranged=True)
    astig_x_nm: Number = declared(Optics, "astig_x_nm", PAPER_OPTICS["astig_x_nm"], ranged=True)
    astig_y_nm: Number = declared(Optics, "astig_y_nm", PAPER_OPTICS["astig_y_nm"], ranged=True)
    cs_um: Number = declared(Optics, "cs_um", ranged=True)
    aperture_mrad: float | None = declared(Optics, "aperture_mrad", PAPER_OPTICS["aperture_mrad"])
    convergence_mrad: Number = declared(Optics, "convergence_mrad", ranged=True)
    temporal_model: Literal["focal_average", "envelope"] = declared(Optics, "temporal_model")
    n_focal: int = declared(Optics, "n_focal")

    @model_validator(mode="after")
    def _check(self):
        _check_ranged(self)
        return self


class DetectorParams(_Model):
    """Recording: output pixel size, dose (None: noise-free) and MTF (ideal, parametric or tabulated).

    Units and bounds as declared on ``datagen.simulate.params.Detector``.
    """

    pixel_size_nm: float = declared(Detector, "pixel_size_nm")
    dose_e_per_A2: Number | None = declared(Detector, "dose_e_per_A2", ranged=True)
    mtf_q0: float | None = Field(None, gt=0, le=10, description="parametric MTF (1-c)/(1+(q/q0)^2)+c, q in Nyquist")
    mtf_c: float = Field(0.0, ge=0, lt=1)
    mtf_table: tuple[float, ...] | None = Field(None, description="MTF from zero to Nyquist (or mtf_file in YAML)")
    mtf_source: str = "ideal"

    @model_validator(mode="after")
    def _check(self):
        _check_ranged(self)
        if self.mtf_q0 is not None and self.mtf_table is not None:
            raise ValueError("give either mtf_q0 (parametric) or mtf_table/mtf_file, not both")
        return self


class NumericsParams(_Model):
    """Simulation grid and slicing, as declared on ``datagen.simulate.params.SimulationSettings``."""

    sampling_A: float = declared(SimulationSettings, "sampling_A")
    slice_thickness_A: float = declared(SimulationSettings, "slice_thickness_A")
    parametrization: Literal["lobato", "kirkland"] = declared(SimulationSettings, "parametrization")
    frozen_phonons: int = declared(SimulationSettings, "frozen_phonons")
    debye_waller: bool = declared(SimulationSettings, "debye_waller")


class Recording(_Model):
    """How an image is recorded and saved: each value fixed or a [low, high] range, drawn per image.

    Domain randomisation over microscopes and habits: dose (log-uniform, or noise-free with
    ``noise_free_probability``); a parametric MTF (1-c)/(1+(q/q0)^2)+c (q in Nyquist; no MTF with
    ``ideal_mtf_probability``); a Gaussian blur of the recorded image (as images are often filtered
    before saving); and 8-bit saving with a contrast stretch that clips the darkest and brightest
    ``clip_percent`` of pixels (with ``eight_bit_probability``)."""

    dose_e_per_A2: range_field(gt=0, le=1e7) = Field((20.0, 5000.0), description="drawn log-uniformly [e-/Å²]")
    noise_free_probability: float = Field(0.1, ge=0, le=1)
    mtf_q0: Number = Field((0.4, 1.2), description="parametric MTF q0 [Nyquist]")
    mtf_c: Number = Field((0.0, 0.2), description="parametric MTF floor")
    ideal_mtf_probability: float = Field(0.2, ge=0, le=1)
    blur_px: Number = Field((0.0, 2.5), description="Gaussian sigma of the blur of the recorded image [output pixels]")
    blur_probability: float = Field(0.5, ge=0, le=1)
    eight_bit_probability: float = Field(0.5, ge=0, le=1)
    clip_percent: Number = Field((0.0, 1.0), description="share of pixels clipped at each end by the 8-bit stretch [%]")

    @model_validator(mode="after")
    def _check(self):
        _check_ranged(self)
        _ordered(self.dose_e_per_A2)
        for name, lo, hi in (("mtf_q0", 0.01, 10), ("mtf_c", 0, 0.99), ("blur_px", 0, 10), ("clip_percent", 0, 20)):
            _check_number(name, getattr(self, name), lo, hi)
        return self


class SimulationParams(_Model):
    """Simulated HRTEM images of a particle on a support film in a box."""

    particle: ParticleParams = ParticleParams()
    support: SupportParams = SupportParams()
    box_nm: tuple[Annotated[float, Field(gt=0, le=100)], Annotated[float, Field(gt=0, le=100)],
                  Annotated[float, Field(gt=0, le=100)]] = (6.0, 6.0, 8.2)
    optics: OpticsParams = OpticsParams()
    detector: DetectorParams = DetectorParams()
    numerics: NumericsParams = NumericsParams()
    backend: Literal[tuple(BACKENDS)] = "multislice"
    #: None: every image recorded by ``detector`` alone. A ``Recording``: the dose, MTF, blur and 8-bit
    #: saving drawn per sample instead, from a stream of their own (``datagen.generators.simulated``), so
    #: that the noise-free images are those of the same recipe without it.
    recording: Recording | None = None

    @model_validator(mode="after")
    def _fits(self):
        d = self.detector
        if self.recording is not None and (d.dose_e_per_A2 is not None or d.mtf_q0 is not None or d.mtf_table):
            raise ValueError("recording: draws the dose and MTF per sample; leave detector.dose_e_per_A2, "
                             "mtf_q0 and mtf_file unset")
        kinds = {k for weights in self.particle.kinds.values() for k, w in weights.items() if w > 0}
        extent = max(KINDS[k].extent_factor for k in kinds) * self.particle.diameter_nm[1]
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


class FieldParticles(_Model):
    """How many particles a field holds and how they are placed (``datagen.structures.field``)."""

    per_100nm2: range_field(ge=0, le=100) = Field((1.0, 8.0), description="particles per 100 nm² of field, drawn "
                                                                         "uniformly per field (a real Au sample: about 6)")
    class_weights: dict[ClassName, Annotated[float, Field(ge=0)]] = Field(
        default_factory=lambda: {"amorphous": 1.0, "monocrystalline": 1.0, "polycrystalline": 1.0},
        description="relative frequency of each particle class")
    touching_probability: float = Field(0.3, ge=0, le=1, description="chance that a particle is placed touching "
                                                                      "one already placed (pairs, clusters)")
    contact_nm: range_field(ge=0, le=2) = Field((0.0, 0.2), description="outline-to-outline distance of touching particles [nm]")
    spacing_nm: float = Field(0.3, ge=0, le=20, description="least outline-to-outline distance of particles placed alone [nm]")

    @model_validator(mode="after")
    def _check(self):
        for name in ("per_100nm2", "contact_nm"):
            try:
                _ordered(getattr(self, name))
            except ValueError as err:
                raise ValueError(f"{name}: {err}") from None
        if sum(self.class_weights.values()) <= 0:
            raise ValueError("class_weights: weights must not all be zero")
        return self


class FieldSupport(SupportParams):
    """The film under a field: as for single particles, with the density also drawn from a range."""

    thickness_nm: range_field(ge=0.1, le=50) = (2.0, 10.0)
    density_g_cm3: Number | None = Field(None, description="[g/cm³], fixed or [low, high]; None: the builder's default (C: 2.0)")
    roughness_nm: Number = Field(0.0, description="standard deviation of the film's thickness across the field [nm], "
                                                  "fixed or [low, high] (real films vary: the support's coarse speckle)")
    roughness_length_nm: Number = Field(1.5, description="correlation length of the thickness variation [nm]")

    @model_validator(mode="after")
    def _density(self):
        if self.density_g_cm3 is not None:
            _check_number("density_g_cm3", self.density_g_cm3, 0.1, 30)
        _check_number("roughness_nm", self.roughness_nm, 0, 10)
        _check_number("roughness_length_nm", self.roughness_length_nm, 0.1, 50)
        return self


class FieldRecording(Recording):
    """A field's recording (``Recording``), its pixel size drawn per field too."""

    pixel_size_nm: Number = declared(Detector, "pixel_size_nm", (0.04, 0.08), ranged=True)


class FieldParams(_Model):
    """Simulated micrographs: many particles of all classes on one film, recorded as real cameras do.

    The field of view is ``image_px`` pixels of the drawn pixel size on each side; it is simulated in a
    box with a ``guard_nm`` band around it (so particles are cut by the field's border, never wrapped)."""

    image_px: int = Field(384, ge=32, le=4096, description="field side [output pixels]")
    guard_nm: float = Field(2.5, ge=0.5, le=20, description="band simulated around the field [nm]")
    particle: ParticleParams = ParticleParams()
    particles: FieldParticles = FieldParticles()
    support: FieldSupport = FieldSupport()
    optics: OpticsParams = OpticsParams()
    recording: FieldRecording = FieldRecording()
    numerics: NumericsParams = NumericsParams(sampling_A=0.1)
    backend: Literal[tuple(BACKENDS)] = "multislice"

    @model_validator(mode="after")
    def _fits(self):
        kinds = {k for weights in self.particle.kinds.values() for k, w in weights.items() if w > 0}
        radius = max(KINDS[k].extent_factor for k in kinds) * self.particle.diameter_nm[1] / 2
        if self.guard_nm < radius:
            raise ValueError(f"guard_nm: must hold the widest particle's radius ({radius:.3g} nm)")
        for label, weight in self.particles.class_weights.items():
            if weight > 0 and not self.particle.kinds.get(label):
                raise ValueError(f"particle.kinds: class {label} has weight {weight:g} but no model kinds")
        return self


class FieldRecipe(RecipeBase):
    """A dataset of simulated fields of view; ``fields`` samples, each one micrograph."""

    generator: Literal["field"]
    chunk_size: int = Field(4, ge=1, le=4096, description="fields per stored chunk (and per task)")
    classes: dict[ClassName, Annotated[int, Field(ge=0)]] = Field(
        default_factory=dict, description="not used by fields (every field holds all classes): leave empty")
    fields: int = Field(ge=1, le=1_000_000, description="number of fields (samples)")
    field: FieldParams = FieldParams()

    @field_validator("classes")
    @classmethod
    def _some_samples(cls, v: dict) -> dict:
        if v:
            raise ValueError("a field recipe counts fields (fields: N); set the class mix in field.particles.class_weights")
        return v

    @property
    def n_samples(self) -> int:
        return self.fields


Recipe = Annotated[Union[PatternRecipe, SimulationRecipe, FieldRecipe], Field(discriminator="generator")]
"""Any recipe: the ``generator`` field picks the model (one per entry of ``datagen.generators.GENERATORS``)."""
