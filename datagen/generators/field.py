"""The field generator: simulated micrographs, many particles of all classes on one support film.

For field ``i`` of a catalog with seed ``s``, one generator ``default_rng([s, i])`` draws, in this
order (:func:`draw_field`): the pixel size, the particle density, each particle's class, model kind and
diameter, the film's thickness, density and substitution, the optics (in the order of ``Optics``'
fields), and the recording (dose or none, MTF, blur, 8-bit stretch); then the particles' atomic models
and their places (``datagen.structures.field``), the film, and the detector noise.

The field of view is ``image_px`` output pixels a side; it is simulated with a guard band of
``ceil(guard_nm / pixel)`` pixels around it, recorded (``apply_detector``: resampling, MTF, noise),
cropped, blurred and quantised. The ground truth is an instance image (0 background, k + 1 the
particle in slot k of the per-particle variables), rasterised from the particles' atoms at the output
pixel size (``datagen.generators.mask.instance_mask``); ``mask`` is its union, and every field's
``label`` is ``MIXED_LABEL`` (each particle's class is in ``particle_class``). The atomic models are
not stored (a field's film has 10⁵–10⁶ atoms); each is rebuilt from the seed and the sample index.
Frozen phonons, where asked for, come from ``default_rng([s, PHONON_STREAM, i])``.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np
import torch

from datagen.classes import CLASS_NAMES, MIXED_LABEL
from datagen.device import reproducible_threads
from datagen.generators.mask import instance_mask, touching_pairs
from datagen.generators.simulated import (RECORDED_PARAMETERS, _backend, _draw, _recorded, draw_optics,
                                          draw_recording, lattice_fringes, settings_for)
from datagen.plan import sample_rng
from datagen.simulate.detector import apply_detector, gaussian_blur, quantize_8bit
from datagen.simulate.params import Detector, Optics
from datagen.simulate.units import NM
from datagen.store.schema import Layout, Variable
from datagen.structures.field import FieldLayout, assemble_field, place_particles
from datagen.structures.particles import build_particle
from datagen.structures.support import build_support, roughen, substitute

PHONON_STREAM = 2**32 + 2
NO_PARTICLE = -1  # the class of an unused particle slot


@dataclass(frozen=True)
class ParticleDraw:
    label: int
    kind: str
    diameter_nm: float


@dataclass(frozen=True)
class FieldDraw:
    """What the recipe's distributions gave for one field (before any atomic model is built)."""

    pixel_size_nm: float
    guard_px: int
    particles: tuple[ParticleDraw, ...]
    support_thickness_nm: float
    support_density_g_cm3: float | None
    support_substitute: str | None
    roughness_nm: float
    roughness_length_nm: float
    optics: Optics
    detector: Detector
    blur_px: float
    eight_bit: bool
    clip_percent: float


def capacity(recipe) -> int:
    """Most particles a field of this recipe can hold (the length of the per-particle variables)."""
    f = recipe.field
    px = f.recording.pixel_size_nm
    side = f.image_px * (max(px) if isinstance(px, tuple) else px)
    return max(1, math.ceil(f.particles.per_100nm2[1] * side * side / 100))


def draw_field(f, rng: np.random.Generator) -> FieldDraw:
    """Draw one field's particles, film, optics and recording from ``f`` (``FieldParams``)."""
    pixel = _draw(rng, f.recording.pixel_size_nm)
    side = f.image_px * pixel
    density = _draw(rng, f.particles.per_100nm2)
    n = int(round(density * side * side / 100))
    names = [c for c in CLASS_NAMES if f.particles.class_weights.get(c, 0) > 0]
    w = np.array([f.particles.class_weights[c] for c in names], float)
    particles = []
    for _ in range(n):
        label = names[int(rng.choice(len(names), p=w / w.sum()))]
        kinds = f.particle.kinds[label]
        kw = np.array([kinds[k] for k in kinds], float)
        kind = list(kinds)[int(rng.choice(len(kinds), p=kw / kw.sum()))]
        particles.append(ParticleDraw(CLASS_NAMES.index(label), kind, _draw(rng, f.particle.diameter_nm)))
    s = f.support
    thickness = _draw(rng, s.thickness_nm)
    density_film = _draw(rng, s.density_g_cm3)
    use_substitute = s.substitute is not None and rng.random() < s.substitute_probability
    roughness, roughness_length = _draw(rng, s.roughness_nm), _draw(rng, s.roughness_length_nm)
    optics = draw_optics(f.optics, rng)
    rec = draw_recording(f.recording, rng)
    detector = Detector(pixel_size_nm=pixel, dose_e_per_A2=rec.dose_e_per_A2, mtf=rec.mtf)
    return FieldDraw(pixel, math.ceil(f.guard_nm / pixel - 1e-9), tuple(particles), thickness, density_film,
                     s.substitute if use_substitute else None, roughness, roughness_length, optics, detector,
                     rec.blur_px, rec.eight_bit, rec.clip_percent)


def build_field(f, draw: FieldDraw, rng: np.random.Generator):
    """The field's atomic model (``datagen.structures.field``) and the particles' models, in slot order."""
    p = f.particle
    models = [build_particle(d.kind, p.element, d.diameter_nm * NM, rng, lattice_constant=p.lattice_constant_A,
                             min_distance=None if p.amorphous_min_distance_nm is None else p.amorphous_min_distance_nm * NM,
                             density=p.amorphous_density_g_cm3) for d in draw.particles]
    side = f.image_px * draw.pixel_size_nm * NM
    guard = draw.guard_px * draw.pixel_size_nm * NM
    pp = f.particles
    layout = FieldLayout(field=(side, side), guard=guard, spacing=pp.spacing_nm * NM,
                         contact=(pp.contact_nm[0] * NM, pp.contact_nm[1] * NM),
                         touching_probability=pp.touching_probability)
    centres = place_particles(models, layout, rng)
    film = None
    if f.support.element is not None:
        d_min = None if f.support.min_distance_nm is None else f.support.min_distance_nm * NM
        # a rough film is built thicker by 2.5 rms and trimmed: its mean thickness stays the drawn one
        extra = 2.5 * draw.roughness_nm if draw.roughness_nm > 0 else 0.0
        film = build_support(f.support.element, side + 2 * guard, side + 2 * guard,
                             (draw.support_thickness_nm + extra) * NM, rng, density=draw.support_density_g_cm3,
                             min_distance=d_min)
        if draw.roughness_nm > 0:
            film = roughen(film, draw.roughness_nm * NM, draw.roughness_length_nm * NM, rng)
        if draw.support_substitute is not None:
            film = substitute(film, f.support.element, draw.support_substitute)
    atoms = assemble_field(models, centres, film, layout)
    return atoms, models, centres


def provenance_variables(n_particles: int) -> tuple[Variable, ...]:
    f, s = "float32", "str"
    S, P = ("sample",), ("sample", "particle")
    engine = {name: _recorded(cls, name, dtype) for cls, name, dtype in RECORDED_PARAMETERS}
    classes = {"flag_values": [NO_PARTICLE, *range(len(CLASS_NAMES))],
               "flag_meanings": "none " + " ".join(CLASS_NAMES)}
    return (
        Variable("instances", ("sample", "y", "x"), "uint16", "1",
                 "particle instance per pixel: 0 background, k + 1 the particle in slot k"),
        Variable("n_particles", S, "int16", "1", "particles in the field (slots 0 .. n-1 are used)"),
        Variable("particle_class", P, "int8", "1", "class of the particle in each slot (-1: slot unused)", classes),
        Variable("particle_kind", P, s, "1", "atomic model kind ('' for an unused slot)"),
        Variable("particle_diameter_nm", P, f, "nm", "equivalent-sphere diameter of the built model"),
        Variable("particle_x_nm", P, f, "nm", "projected centroid x in the image (column * pixel size)"),
        Variable("particle_y_nm", P, f, "nm", "projected centroid y in the image (row * pixel size)"),
        Variable("particle_n_domains", P, "int8", "1", "crystalline domains (0 amorphous)"),
        Variable("particle_area_px", P, "int32", "1", "pixels of the particle's instance in the image"),
        Variable("particle_cut", P, "int8", "1", "1 where the particle's footprint touches the image border"),
        Variable("particle_touching", P, "int8", "1", "1 where the particle's footprint touches another's"),
        Variable("support_element", S, s, "1", "support film element ('none': no film)"),
        Variable("support_thickness_nm", S, f, "nm", "support film thickness"),
        Variable("support_density_g_cm3", S, f, "g cm-3", "support film density reached"),
        Variable("support_roughness_nm", S, f, "nm", "standard deviation of the film's thickness across the field"),
        Variable("n_atoms", S, "int32", "1", "atoms in the simulated model (particles and film)"),
        *(engine[name] for name in engine if name not in ("pixel_size_nm", "sampling_A", "slice_thickness_A",
                                                           "frozen_phonons")),
        Variable("mtf", S, s, "1", "detector MTF: ideal or parametric"),
        Variable("mtf_q0", S, f, "1", "parametric MTF q0 [Nyquist] (NaN: ideal)"),
        Variable("mtf_c", S, f, "1", "parametric MTF floor (NaN: ideal)"),
        Variable("blur_px", S, f, "1", "Gaussian sigma of the blur applied to the recorded image [pixels] (0: none)"),
        Variable("eight_bit", S, "int8", "1", "1 where the image was saved as 8 bits (grey levels 0-255)"),
        Variable("clip_percent", S, f, "percent", "share of pixels clipped at each end by the 8-bit stretch"),
        *(engine[name] for name in ("pixel_size_nm", "sampling_A", "slice_thickness_A", "frozen_phonons")),
        Variable("backend", S, s, "1", "simulation backend and version"),
    )


def layout(recipe) -> Layout:
    n = recipe.field.image_px
    k = capacity(recipe)
    return Layout(recipe.n_samples, recipe.chunk_size, (n, n), provenance_variables(k), {"particle": k},
                  atoms_per_sample=0, mixed_labels=True)


def backend_info(recipe, backend_options: dict | None = None) -> tuple[str, str, str]:
    backend = _backend(recipe.field.backend, tuple(sorted((backend_options or {}).items())))
    return backend.name, backend.version(), backend.device()


@dataclass
class SimulatedField:
    """One field as the generator makes it: the recorded image, the instance image, the provenance row."""

    image: np.ndarray
    instances: np.ndarray
    row: dict
    draw: FieldDraw


def simulate_field(recipe, index: int, backend, settings=None, *, noise_free: bool = False) -> SimulatedField:
    """Field ``index`` of ``recipe``: drawn, built, simulated (one backend call: fields differ in pixel
    size, hence in box and grid), recorded, cropped, blurred and quantised as drawn. ``settings``
    replaces the recipe's numerics (the convergence benchmark); ``noise_free`` records without dose
    noise, blur or quantisation (the same draws otherwise)."""
    f = recipe.field
    rng = sample_rng(recipe.seed, index)
    draw = draw_field(f, rng)
    atoms, particle_models, centres = build_field(f, draw, rng)
    settings = settings_for(f) if settings is None else settings
    phonons = np.random.default_rng([int(recipe.seed), PHONON_STREAM, int(index)])
    with reproducible_threads(torch.device(backend.device())):
        images, sampling = backend.simulate([atoms], [draw.optics], settings, rng=phonons)
    detector = dataclasses.replace(draw.detector, dose_e_per_A2=None) if noise_free else draw.detector
    n, g = f.image_px, draw.guard_px
    box = apply_detector(np.asarray(images), sampling, detector, rng)[0]
    if box.shape != (n + 2 * g, n + 2 * g):
        raise AssertionError(f"field {index}: recorded {box.shape}, expected {(n + 2 * g,) * 2}")
    image = box[g:g + n, g:g + n]
    if not noise_free:
        image = gaussian_blur(image, draw.blur_px)
        if draw.eight_bit:
            image = quantize_8bit(image, draw.clip_percent)
    pixel_A = draw.pixel_size_nm * NM
    sel = atoms.arrays["part"] == 1
    placed = [j for j, c in enumerate(centres) if c is not None]
    slot_of = np.zeros(len(centres) + 1, np.uint16)  # instance id j + 1 (draw order) -> slot + 1
    slot_of[np.asarray(placed, int) + 1] = np.arange(1, len(placed) + 1)
    inst = instance_mask(atoms.positions[sel, :2] - g * pixel_A, slot_of[atoms.arrays["particle"][sel] + 1],
                         atoms.numbers[sel], (n, n), (pixel_A, pixel_A))
    row = _provenance(draw, atoms, inst, (particle_models, centres), settings, backend.version(), capacity(recipe))
    return SimulatedField(image.astype(np.float32), inst, row, draw)


def generate_chunk(recipe, indices: np.ndarray, plan, backend_options: dict | None = None):
    """Images, instance images, per-particle tables and provenance of the fields ``indices``."""
    backend = _backend(recipe.field.backend, tuple(sorted((backend_options or {}).items())))
    made = [simulate_field(recipe, int(index), backend) for index in indices]
    instances = np.stack([m.instances for m in made])
    data = {"image": np.stack([m.image for m in made]), "mask": (instances > 0).astype(np.uint8),
            "instances": instances, "label": np.full(len(indices), MIXED_LABEL, "int8"), "split": plan.splits,
            "structure_id": plan.structure_ids, "seed": np.full(len(indices), recipe.seed, "int64")}
    for var in provenance_variables(capacity(recipe)):
        if var.name not in data:
            data[var.name] = np.asarray([m.row[var.name] for m in made], dtype=object if var.dtype == "str" else var.dtype)
    return data, None


def _provenance(draw: FieldDraw, atoms, inst: np.ndarray, parts, settings, backend: str, k: int) -> dict:
    particle_models, centres = parts
    px = draw.pixel_size_nm
    g = draw.guard_px
    placed = [j for j, c in enumerate(centres) if c is not None]
    n = len(placed)
    area = np.bincount(inst.ravel(), minlength=n + 1)[1:n + 1]
    border = np.zeros(n + 1, bool)
    for edge in (inst[0], inst[-1], inst[:, 0], inst[:, -1]):
        border[edge] = True
    touching = np.zeros(n + 1, bool)
    touching[[i for pair in touching_pairs(inst) for i in pair]] = True
    slots = {name: np.full(k, fill, dtype) for name, fill, dtype in (
        ("particle_class", NO_PARTICLE, "int8"), ("particle_kind", "", object),
        ("particle_diameter_nm", np.nan, "float32"), ("particle_x_nm", np.nan, "float32"),
        ("particle_y_nm", np.nan, "float32"), ("particle_n_domains", 0, "int8"),
        ("particle_area_px", 0, "int32"), ("particle_cut", 0, "int8"), ("particle_touching", 0, "int8"))}
    for slot, j in enumerate(placed):  # slots hold the placed particles only, in draw order
        m, d = particle_models[j], draw.particles[j]
        slots["particle_class"][slot] = d.label
        slots["particle_kind"][slot] = d.kind
        slots["particle_diameter_nm"][slot] = m.info["diameter"] / NM
        slots["particle_x_nm"][slot] = centres[j][0] / NM - g * px
        slots["particle_y_nm"][slot] = centres[j][1] / NM - g * px
        slots["particle_n_domains"][slot] = m.info["n_domains"]
        slots["particle_area_px"][slot] = area[slot]
        slots["particle_cut"][slot] = border[slot + 1]
        slots["particle_touching"][slot] = touching[slot + 1]
    o = draw.optics
    engine = {Optics: o, Detector: draw.detector, type(settings): settings}
    values = {name: getattr(engine[cls], name) for cls, name, _ in RECORDED_PARAMETERS}
    mtf = draw.detector.mtf
    return {
        **slots, "n_particles": len(placed),
        "support_element": atoms.info["support_element"], "support_thickness_nm": atoms.info["support_thickness"] / NM,
        "support_density_g_cm3": atoms.info["support_density"], "support_roughness_nm": draw.roughness_nm,
        "n_atoms": len(atoms), **{name: np.nan if v is None else v for name, v in values.items()},
        "mtf": mtf.source, "mtf_q0": np.nan if mtf.q0 is None else mtf.q0, "mtf_c": np.nan if mtf.q0 is None else mtf.c,
        "blur_px": draw.blur_px, "eight_bit": int(draw.eight_bit), "clip_percent": draw.clip_percent,
        "backend": backend,
    }


def describe(recipe) -> dict:
    """What ``recipe check`` shows of a field recipe, worked out without simulating."""
    f = recipe.field
    px = f.recording.pixel_size_nm
    lo, hi = (px, px) if not isinstance(px, tuple) else px
    fringes = lattice_fringes(f)
    return {
        "image_shape": [f.image_px, f.image_px], "pixel_size_nm": [lo, hi],
        "field_nm": [f.image_px * lo, f.image_px * hi], "max_particles_per_field": capacity(recipe),
        "backend": f.backend, "lattice_fringes": fringes,
        "warnings": [fringes["warning"]] if fringes["warning"] else [],
    }
