"""The simulation generator: per sample, draw a spec, build the atomic model, simulate, record, mask.

For sample ``i`` of a catalog with seed ``s``, one generator ``default_rng([s, i])`` draws, in this
order: the model kind, diameter and film (:func:`draw_sample`), the optics (in the order of
``Optics``' fields) and the dose, then the atomic model itself (``datagen.structures.build_sample``),
then the detector noise. Frozen phonons come from a stream of their own per chunk,
``default_rng([s, PHONON_STREAM, first sample index of the chunk])``, from which the backend spawns
one generator per sample. Every drawn value is stored as per-sample provenance
(:func:`provenance_variables`), the model in the `atoms` group.

A task is one chunk: its models go to one backend call (the built-in engine batches them on a GPU,
and runs them one by one on the CPU, where that is faster); images are recorded by
``datagen.simulate.detector.apply_detector`` and the mask is the particle's projected footprint at
the output pixel size (``datagen.generators.mask``).

With a ``recording`` block the detector records noise-free images (resampling only), and each is then
recorded again as drawn from ``default_rng([s, RECORDING_STREAM, i])`` (:func:`draw_recording`, in the
field generator's order: dose or none, MTF, blur, 8-bit stretch; then the Poisson noise), so that
every draw before it, and the noise-free image, are those of the same recipe without the block. Such
stores also keep each sample's ``lattice_peak_ratio`` (``datagen.visibility``), measured on the
noise-free image. Given ``images_from`` (``generate --images-from``), a complete store of that recipe
without the block, the noise-free images are read from it instead of simulated again: the same
dataset, bit for bit, in minutes.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, fields
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
from ase.data import atomic_masses, atomic_numbers

from datagen.classes import CLASS_NAMES
from datagen.device import reproducible_threads
from datagen.errors import DatagenError
from datagen.generators.mask import particle_atoms_mask
from datagen.plan import sample_rng
from datagen.simulate import ctf
from datagen.simulate.backends import backend_class, get_backend
from datagen.simulate.detector import (apply_detector, apply_mtf, gaussian_blur, output_grid, poisson_noise,
                                      quantize_8bit)
from datagen.simulate.energy import electron_wavelength
from datagen.simulate.grid import grid_for_cell, slice_count
from datagen.simulate.params import MTF, Detector, Optics, SimulationSettings, declaration
from datagen.simulate.units import NM
from datagen.store import open_samples
from datagen.store.schema import Layout, Variable
from datagen.structures import SampleSpec, build_sample
from datagen.structures.lattice import bulk_reference, crystal_lattice, number_density
from datagen.structures.support import support_defaults
from datagen.visibility import lattice_band, lattice_peak_ratio

PHONON_STREAM = 2**32 + 2
RECORDING_STREAM = 2**32 + 3


def _draw(rng: np.random.Generator, value):
    """A [low, high] range drawn uniformly (no draw when low == high), a fixed number as a float, or any
    other value (None, a name, an integer count) as it is."""
    if isinstance(value, (tuple, list)):
        return float(rng.uniform(value[0], value[1])) if value[1] > value[0] else float(value[0])
    return float(value) if isinstance(value, float) else value


@dataclass(frozen=True)
class SampleDraw:
    """What the recipe's distributions gave for one sample (before its atomic model is built)."""

    kind: str
    spec: SampleSpec
    optics: Optics
    detector: Detector


def draw_sample(sim, label: str, rng: np.random.Generator) -> SampleDraw:
    """Draw one sample's model spec, optics and detector from ``sim`` (``SimulationParams``).

    The optics are drawn field by field in the order ``Optics`` declares them, each recipe field
    feeding the engine field of the same name (a test holds the two classes to the same names)."""
    weights = sim.particle.kinds.get(label)
    if not weights:
        raise ValueError(f"simulation.particle.kinds: no model kinds for class {label!r}")
    kinds = list(weights)
    p = np.array([weights[k] for k in kinds], float)
    kind = kinds[int(rng.choice(len(kinds), p=p / p.sum()))]
    diameter_nm = _draw(rng, sim.particle.diameter_nm)
    support, particle = sim.support, sim.particle
    thickness_nm = _draw(rng, support.thickness_nm)
    use_substitute = support.substitute is not None and rng.random() < support.substitute_probability
    spec = SampleSpec(
        kind=kind, element=particle.element, diameter=diameter_nm * NM, support=support.element,
        support_substitute=support.substitute if use_substitute else None, thickness=thickness_nm * NM,
        box=tuple(b * NM for b in sim.box_nm), lattice_constant=particle.lattice_constant_A,
        min_distance=_A(particle.amorphous_min_distance_nm), density=particle.amorphous_density_g_cm3,
        support_density=support.density_g_cm3, support_min_distance=_A(support.min_distance_nm))
    optics = draw_optics(sim.optics, rng)
    d = sim.detector
    mtf = MTF(table=d.mtf_table, source=d.mtf_source) if d.mtf_table else (
        MTF(q0=d.mtf_q0, c=d.mtf_c, source="parametric") if d.mtf_q0 else MTF())
    detector = Detector(pixel_size_nm=d.pixel_size_nm, dose_e_per_A2=_draw(rng, d.dose_e_per_A2), mtf=mtf)
    return SampleDraw(kind, spec, optics, detector)


@dataclass(frozen=True)
class RecordingDraw:
    """What a ``Recording`` gave for one image."""

    dose_e_per_A2: float | None  # None: noise-free
    mtf: MTF
    blur_px: float
    eight_bit: bool
    clip_percent: float


def draw_recording(r, rng: np.random.Generator) -> RecordingDraw:
    """Draw one image's recording from ``r`` (``datagen.recipe.models.Recording``): noise-free or a dose
    (log-uniform), an ideal or a parametric MTF, a blur or none, 8-bit saving or not (every value is
    drawn, used or not, so the stream's use does not depend on the outcomes)."""
    noise_free = rng.random() < r.noise_free_probability
    lo, hi = r.dose_e_per_A2
    dose = float(math.exp(rng.uniform(math.log(lo), math.log(hi))))
    ideal = rng.random() < r.ideal_mtf_probability
    q0, c = _draw(rng, r.mtf_q0), _draw(rng, r.mtf_c)
    blurred = rng.random() < r.blur_probability
    blur = _draw(rng, r.blur_px)
    eight_bit = bool(rng.random() < r.eight_bit_probability)
    clip = _draw(rng, r.clip_percent)
    return RecordingDraw(None if noise_free else dose, MTF() if ideal else MTF(q0=q0, c=c, source="parametric"),
                         blur if blurred else 0.0, eight_bit, clip if eight_bit else 0.0)


def record(clean: np.ndarray, pixel_A: tuple[float, float], rec: RecordingDraw,
           rng: np.random.Generator) -> np.ndarray:
    """A noise-free image (ny, nx) on the output grid (pixel ``pixel_A`` [Å]) recorded as ``rec`` says: MTF,
    Poisson noise, blur, 8-bit stretch (float32; grey levels 0-255 where saved as 8-bit)."""
    image = apply_mtf(torch.as_tensor(np.asarray(clean, np.float64))[None], rec.mtf)[0].numpy()
    if rec.dose_e_per_A2 is not None:
        image = poisson_noise(image, rec.dose_e_per_A2 * pixel_A[0] * pixel_A[1], rng)
    image = gaussian_blur(image, rec.blur_px)
    return quantize_8bit(image, rec.clip_percent) if rec.eight_bit else image


def draw_optics(params, rng: np.random.Generator) -> Optics:
    """The engine's ``Optics`` from the recipe's ``OpticsParams``, drawn field by field in the order
    ``Optics`` declares them (a fixed value draws nothing)."""
    return Optics(**{f.name: _draw(rng, getattr(params, f.name)) for f in fields(Optics)})


def _A(length_nm: float | None) -> float | None:
    return None if length_nm is None else length_nm * NM


def settings_for(sim) -> SimulationSettings:
    """The engine's numerical settings from the recipe's ``numerics`` (fields of the same names)."""
    return SimulationSettings(**sim.numerics.model_dump())


def image_shape(sim) -> tuple[int, int]:
    """Output image shape (ny, nx): the box's width on the simulation grid, resampled to the pixel size."""
    grid = grid_for_cell((sim.box_nm[0] * NM, sim.box_nm[1] * NM), sim.numerics.sampling_A)
    shape, _ = output_grid(tuple(grid.gpts), (grid.sampling[0], grid.sampling[1]), sim.detector.pixel_size_nm)
    return shape


def lattice_fringes(sim, n: int = 3) -> dict:
    """Whether the recipe's optics can show the particle's lattice fringes, without simulating.

    For the ``n`` largest lattice-plane spacings of the particle's crystal (``Lattice.reflections``):
    does the objective aperture pass them (d ≥ λ/α) and how much of them does the temporal envelope
    keep at the largest focal spread. ``warning`` is set when not even the largest spacing is passed
    (or kept above 0.1): crystalline particles would then show no fringes and look like amorphous ones.
    """
    p, o = sim.particle, sim.optics
    wavelength = electron_wavelength(o.voltage_kv)  # [Å]
    resolution = None if o.aperture_mrad is None else wavelength / (o.aperture_mrad * 1e-3)  # [Å]
    spread = max(o.focal_spread_nm) if isinstance(o.focal_spread_nm, tuple) else o.focal_spread_nm
    try:
        lattice = crystal_lattice(p.element, p.lattice_constant_A)
    except ValueError:
        return {"resolution_A": resolution, "reflections": [], "warning": None}
    rows = []
    for hkl, d in lattice.reflections()[:n]:
        k = torch.tensor([[1.0 / d]], dtype=torch.float64)
        envelope = float(ctf.temporal_envelope(k, torch.zeros_like(k), wavelength, spread))
        rows.append({"hkl": list(hkl), "d_A": d, "passed": resolution is None or d >= resolution,
                     "temporal_envelope": envelope})
    first = rows[0]
    warning = None
    if not first["passed"] or first["temporal_envelope"] < 0.1:
        name = "".join(map(str, first["hkl"]))
        why = (f"the {o.aperture_mrad:g} mrad objective aperture at {o.voltage_kv:g} kV passes only d >= "
               f"{resolution:.3g} Å" if not first["passed"] else
               f"the temporal envelope at {spread:g} nm focal spread keeps {first['temporal_envelope']:.2g} of it")
        warning = (f"no lattice fringes: {p.element} {{{name}}} planes are {first['d_A']:.3g} Å apart and {why}; "
                   f"crystalline particles will look amorphous")
    return {"resolution_A": resolution, "reflections": rows, "warning": warning}


def atoms_capacity(sim) -> int:
    """Upper bound on the atoms of one model: a film of the largest thickness and the largest particle."""
    d_max = sim.particle.diameter_nm[1] * NM
    try:
        n_bulk = bulk_reference(sim.particle.element)[0]
    except ValueError:
        n_bulk = 0.1  # [1/Å³], denser than any metal
    if sim.particle.amorphous_density_g_cm3:
        n_bulk = max(n_bulk, number_density(sim.particle.amorphous_density_g_cm3, sim.particle.element))
    particle = math.pi / 6 * (d_max + 3.0) ** 3 * n_bulk
    film = 0.0
    if sim.support.element:
        elements = [sim.support.element] + ([sim.support.substitute] if sim.support.substitute else [])
        density = sim.support.density_g_cm3 or support_defaults(sim.support.element)[1]
        mass = min(atomic_masses[atomic_numbers[e]] for e in elements)
        film = sim.box_nm[0] * sim.box_nm[1] * sim.support.thickness_nm[1] * NM**3 * density * 0.60221 / mass
    return int(1.1 * (particle + film)) + 64


#: The engine parameters recorded per sample, in store order: (parameter class, field, dtype). Their
#: units and long names are the parameter declarations' (``datagen.simulate.params.param``).
RECORDED_PARAMETERS = (
    *((Optics, name, "float32") for name in ("voltage_kv", "defocus_nm", "focal_spread_nm", "astig_x_nm",
                                             "astig_y_nm", "cs_um", "aperture_mrad", "convergence_mrad")),
    (Optics, "temporal_model", "str"),
    (Detector, "dose_e_per_A2", "float32"),
    (Detector, "pixel_size_nm", "float32"),
    (SimulationSettings, "sampling_A", "float32"),
    (SimulationSettings, "slice_thickness_A", "float32"),
    (SimulationSettings, "frozen_phonons", "int16"),
)


def _recorded(cls, name: str, dtype: str) -> Variable:
    d = declaration(cls, name)
    return Variable(name, ("sample",), dtype, d["units"], d["description"])


def recording_variables() -> tuple[Variable, ...]:
    """The provenance a ``recording`` block adds: its draws, and the peak ratio of the noise-free image."""
    f, S = "float32", ("sample",)
    return (
        Variable("mtf_q0", S, f, "1", "parametric MTF q0 in units of Nyquist (NaN: ideal MTF)"),
        Variable("mtf_c", S, f, "1", "parametric MTF floor (NaN: ideal MTF)"),
        Variable("blur_px", S, f, "pixel", "Gaussian sigma of the blur of the recorded image (0: none)"),
        Variable("eight_bit", S, "int8", "1", "saved as 8 bits with a contrast stretch (grey levels 0-255)"),
        Variable("clip_percent", S, f, "1", "share of pixels clipped at each end by the 8-bit stretch [%]"),
        Variable("lattice_peak_ratio", S, f, "1", "lattice visibility of the noise-free image: peak over median "
                 "power in the lattice band of the particle's windowed diffractogram (datagen.visibility)"),
    )


def provenance_variables(recording: bool = False) -> tuple[Variable, ...]:
    """The per-sample provenance, with ``recording_variables`` where the recipe has a ``recording``."""
    return _base_variables() + (recording_variables() if recording else ())


def _base_variables() -> tuple[Variable, ...]:
    f, s = "float32", "str"
    S = ("sample",)
    engine = {name: _recorded(cls, name, dtype) for cls, name, dtype in RECORDED_PARAMETERS}
    return (
        Variable("kind", S, s, "1", "atomic model kind (datagen.structures.kinds.KINDS)"),
        Variable("element", S, s, "1", "particle element"),
        Variable("n_atoms_particle", S, "int32", "1", "atoms in the particle"),
        Variable("n_atoms_support", S, "int32", "1", "atoms in the support film"),
        Variable("diameter_nm", S, f, "nm", "particle diameter (equivalent sphere of the built model)"),
        Variable("requested_diameter_nm", S, f, "nm", "particle diameter drawn from the recipe"),
        Variable("n_domains", S, "int8", "1", "crystalline domains (0 amorphous, 1 mono, 2-3 stitched, 5 deca, 20 ico)"),
        Variable("orientation", ("sample", "row", "col"), f, "1", "rotation matrix applied to the (first) domain"),
        Variable("particle_x_nm", S, f, "nm", "particle centroid x in the image (column * pixel size)"),
        Variable("particle_y_nm", S, f, "nm", "particle centroid y in the image (row * pixel size)"),
        Variable("support_element", S, s, "1", "support film element ('none': no film)"),
        Variable("support_thickness_nm", S, f, "nm", "support film thickness"),
        Variable("support_density_g_cm3", S, f, "g cm-3", "support film density reached"),
        *(engine[name] for name in engine if name not in ("pixel_size_nm", "sampling_A", "slice_thickness_A",
                                                           "frozen_phonons")),
        Variable("mtf", S, s, "1", "detector MTF: ideal, parametric or the table's source"),
        *(engine[name] for name in ("pixel_size_nm", "sampling_A", "slice_thickness_A", "frozen_phonons")),
        Variable("backend", S, s, "1", "simulation backend and version"),
    )


def layout(recipe) -> Layout:
    sim = recipe.simulation
    return Layout(recipe.n_samples, recipe.chunk_size, image_shape(sim), provenance_variables(sim.recording is not None),
                  {"row": 3, "col": 3}, atoms_per_sample=atoms_capacity(sim))


@lru_cache(maxsize=8)
def _backend(name: str, options: tuple = ()):
    return get_backend(name, **dict(options))


def backend_info(recipe, backend_options: dict | None = None) -> tuple[str, str, str]:
    """(name, version, device) of the backend that makes this recipe's images (with ``images_from``: the
    one that made the source store's)."""
    options = dict(backend_options or {})
    source = options.pop("images_from", None)
    if source is not None:
        a = image_source(recipe, source).attrs
        return str(a.get("backend")), str(a.get("backend_version")), "cpu"
    backend = _backend(recipe.simulation.backend, tuple(sorted(options.items())))
    return backend.name, backend.version(), backend.device()


@lru_cache(maxsize=4)
def _source(path: str):
    return open_samples(path)


def image_source(recipe, path: str | Path):
    """The samples of the store at ``path`` (``images_from``), refused unless it is a complete store of
    the same recipe without ``recording`` and recorded noise-free with an ideal MTF (DatagenError)."""
    try:
        ds = _source(str(path))
    except DatagenError as err:
        raise DatagenError(f"--images-from: {err}") from None
    try:
        theirs = json.loads(ds.attrs.get("recipe", "{}"))
    except ValueError:
        theirs = {}
    mine = recipe.to_json_dict()
    mine["simulation"] = {k: v for k, v in mine["simulation"].items() if k != "recording"}
    keys = ("generator", "seed", "classes", "split", "simulation")
    differ = [k for k in keys if theirs.get(k) != mine.get(k)]
    if differ:
        raise DatagenError(f"--images-from: {path} is not {recipe.name} without its recording "
                           f"(its recipe differs in {', '.join(differ)})")
    if recipe.simulation.recording is None:
        raise DatagenError(f"--images-from: {recipe.name} has no recording block; generate it directly")
    return ds


def generate_chunk(recipe, indices: np.ndarray, plan, backend_options: dict | None = None):
    """Images, masks and provenance of the samples ``indices``, with their atomic models.

    ``backend_options`` go to the backend (``datagen.simulate.backends.get_backend``)."""
    sim = recipe.simulation
    options = dict(backend_options or {})
    source = options.pop("images_from", None)
    draws, models, rngs = [], [], []
    for index, label in zip(indices, plan.labels):
        rng = sample_rng(recipe.seed, index)
        draw = draw_sample(sim, CLASS_NAMES[label], rng)
        models.append(build_sample(draw.spec, rng))
        draws.append(draw)
        rngs.append(rng)
    settings = settings_for(sim)
    if source is None:
        backend = _backend(sim.backend, tuple(sorted(options.items())))
        phonon_rng = np.random.default_rng([int(recipe.seed), PHONON_STREAM, int(indices[0])])
        with reproducible_threads(torch.device(backend.device())):
            images, sampling = backend.simulate(models, [d.optics for d in draws], settings, rng=phonon_rng)
        shape, pixel_A = output_grid(images.shape[-2:], sampling, sim.detector.pixel_size_nm)
        recorded = np.stack([apply_detector(images[i:i + 1], sampling, d.detector, rngs[i])[0]
                             for i, d in enumerate(draws)])
        versions = [backend.version()] * len(indices)
    else:  # the noise-free images of the same recipe without its recording, read instead of simulated
        block = image_source(recipe, source)[["image", "backend"]].isel(sample=np.asarray(indices)).compute()
        recorded, versions = block["image"].values, [str(v) for v in block["backend"].values]
        grid = grid_for_cell((sim.box_nm[0] * NM, sim.box_nm[1] * NM), sim.numerics.sampling_A)
        shape, pixel_A = output_grid(tuple(grid.gpts), (grid.sampling[0], grid.sampling[1]), sim.detector.pixel_size_nm)
    masks = np.stack([particle_atoms_mask(m, shape, pixel_A) for m in models])
    extra = [{} for _ in indices]
    if sim.recording is not None:
        recorded, draws, extra = _record(recipe, indices, recorded, masks, pixel_A, draws)
    rows = [{**_provenance(d, m, settings, v), **x} for d, m, v, x in zip(draws, models, versions, extra)]
    data = {"image": recorded, "mask": masks, "label": plan.labels.astype("int8"), "split": plan.splits,
            "structure_id": plan.structure_ids, "seed": np.full(len(indices), recipe.seed, "int64")}
    for var in provenance_variables(sim.recording is not None):
        data[var.name] = np.asarray([r[var.name] for r in rows], dtype=object if var.dtype == "str" else var.dtype)
    return data, models


def _record(recipe, indices, clean: np.ndarray, masks: np.ndarray, pixel_A, draws: list[SampleDraw]):
    """The noise-free images ``clean`` recorded as the recipe's ``recording`` draws them, the draws with the
    recorded detector, and each sample's extra provenance (``recording_variables``)."""
    sim = recipe.simulation
    try:
        band = lattice_band(sim.particle.element, sim.particle.lattice_constant_A)
    except ValueError:  # an element without a crystal lattice: no lattice to see
        band = None
    images, recorded_draws, extra = [], [], []
    for k, index in enumerate(indices):
        rng = np.random.default_rng([int(recipe.seed), RECORDING_STREAM, int(index)])
        rec = draw_recording(sim.recording, rng)
        images.append(record(clean[k], pixel_A, rec, rng))
        detector = Detector(pixel_size_nm=draws[k].detector.pixel_size_nm, dose_e_per_A2=rec.dose_e_per_A2, mtf=rec.mtf)
        recorded_draws.append(dataclasses.replace(draws[k], detector=detector))
        ratio = np.nan if band is None else lattice_peak_ratio(clean[k], masks[k], pixel_A[0] / NM, band)
        extra.append({"mtf_q0": np.nan if rec.mtf.q0 is None else rec.mtf.q0,
                      "mtf_c": np.nan if rec.mtf.q0 is None else rec.mtf.c, "blur_px": rec.blur_px,
                      "eight_bit": int(rec.eight_bit), "clip_percent": rec.clip_percent, "lattice_peak_ratio": ratio})
    return np.stack(images).astype(np.float32), recorded_draws, extra


def _provenance(draw: SampleDraw, model, settings: SimulationSettings, backend: str) -> dict:
    info = model.info
    part = model.arrays["part"] == 1
    centroid = model.positions[part].mean(axis=0) / NM
    sources = {Optics: draw.optics, Detector: draw.detector, SimulationSettings: settings}
    engine = {name: getattr(sources[cls], name) for cls, name, _ in RECORDED_PARAMETERS}
    return {
        "kind": draw.kind, "element": info["element"], "n_atoms_particle": int(part.sum()),
        "n_atoms_support": int((~part).sum()), "diameter_nm": info["diameter"] / NM,
        "requested_diameter_nm": info["requested_diameter"] / NM, "n_domains": info["n_domains"],
        "orientation": np.asarray(info["orientation"], float), "particle_x_nm": centroid[0],
        "particle_y_nm": centroid[1], "support_element": info["support_element"] or "none",
        "support_thickness_nm": info.get("support_thickness", 0.0) / NM,
        "support_density_g_cm3": info.get("support_density", np.nan) or np.nan,
        **{name: np.nan if value is None else value for name, value in engine.items()},
        "mtf": draw.detector.mtf.source, "backend": backend,
    }


def describe(recipe) -> dict:
    """What ``recipe check`` shows of a simulation recipe, worked out without simulating: grids,
    slices, wavelength, the largest model, the lattice fringes the optics pass, and warnings."""
    sim = recipe.simulation
    grid = grid_for_cell((sim.box_nm[0] * NM, sim.box_nm[1] * NM), sim.numerics.sampling_A)
    aperture = Optics(voltage_kv=sim.optics.voltage_kv, aperture_mrad=sim.optics.aperture_mrad)
    shape = image_shape(sim)
    fringes = lattice_fringes(sim)
    crystalline = recipe.classes.get("monocrystalline", 0) + recipe.classes.get("polycrystalline", 0)
    return {
        "image_shape": list(shape), "pixel_size_nm": [sim.box_nm[1] / shape[0], sim.box_nm[0] / shape[1]],
        "simulation_grid": list(grid.gpts), "sampling_A": list(grid.sampling),
        "slices": slice_count(sim.box_nm[2] * NM, sim.numerics.slice_thickness_A)[0],
        "image_formation_grid": list(backend_class(sim.backend).image_shape(grid.gpts, grid.sampling, [aperture])),
        "wavelength_pm": electron_wavelength(sim.optics.voltage_kv) * 100,
        "max_atoms_per_model": atoms_capacity(sim), "backend": sim.backend, "lattice_fringes": fringes,
        "warnings": [fringes["warning"]] if fringes["warning"] and crystalline else [],
    }
