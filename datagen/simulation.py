"""The simulation generator: per sample, draw a spec, build the atomic model, simulate, record, mask.

For sample ``i`` of a catalog with seed ``s``, one generator ``default_rng([s, i])`` draws, in this
order: the model kind, diameter and film (:func:`draw_sample`), the optics and the dose, then the
atomic model itself (``datagen.structures.build_sample``), then the detector noise. Frozen phonons
come from a stream of their own per chunk, ``default_rng([s, PHONON_STREAM, chunk])``. Every drawn
value is stored as per-sample provenance (:func:`provenance_variables`), the model in the `atoms` group.

The chunk's models are simulated in one batched backend call (on the GPU when there is one), so a
task is one chunk; images are recorded by ``datagen.simulate.detector.apply_detector`` and the mask
is the particle's projected footprint at the output pixel size (``datagen.mask``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from datagen.mask import particle_atoms_mask
from datagen.plan import sample_rng
from datagen.schema import CLASS_NAMES, Layout, Variable

PHONON_STREAM = 2**32 + 2
NM = 10.0  # [Å] per [nm]


def _draw(rng: np.random.Generator, value) -> float:
    """A fixed value, or uniform on a [low, high] range."""
    if isinstance(value, (tuple, list)):
        return float(rng.uniform(value[0], value[1])) if value[1] > value[0] else float(value[0])
    return float(value)


@dataclass(frozen=True)
class SampleDraw:
    """What the recipe's distributions gave for one sample (before its atomic model is built)."""

    kind: str
    spec: dict
    optics: object
    detector: object


def draw_sample(sim, label: str, rng: np.random.Generator) -> SampleDraw:
    """Draw one sample's model spec, optics and detector from ``sim`` (SimulationParams)."""
    from datagen.simulate.params import MTF, Detector, Optics

    weights = sim.particle.kinds.get(label)
    if not weights:
        raise ValueError(f"simulation.particle.kinds: no model kinds for class {label!r}")
    kinds = list(weights)
    p = np.array([weights[k] for k in kinds], float)
    kind = kinds[int(rng.choice(len(kinds), p=p / p.sum()))]
    diameter_nm = _draw(rng, sim.particle.diameter_nm)
    support = sim.support
    thickness_nm = _draw(rng, support.thickness_nm)
    use_substitute = support.substitute is not None and rng.random() < support.substitute_probability
    spec = {
        "kind": kind, "element": sim.particle.element, "diameter": diameter_nm * NM,
        "support": support.element, "support_substitute": support.substitute if use_substitute else None,
        "thickness": thickness_nm * NM, "box": [b * NM for b in sim.box_nm],
        "lattice_constant": sim.particle.lattice_constant_A,
        "min_distance": None if sim.particle.amorphous_min_distance_nm is None else sim.particle.amorphous_min_distance_nm * NM,
        "density": sim.particle.amorphous_density_g_cm3,
        "support_density": support.density_g_cm3,
        "support_min_distance": None if support.min_distance_nm is None else support.min_distance_nm * NM,
    }
    o = sim.optics
    optics = Optics(voltage_kv=o.voltage_kv, defocus_nm=_draw(rng, o.defocus_nm),
                    focal_spread_nm=_draw(rng, o.focal_spread_nm), astig_x_nm=_draw(rng, o.astig_x_nm),
                    astig_y_nm=_draw(rng, o.astig_y_nm), cs_um=_draw(rng, o.cs_um), aperture_mrad=o.aperture_mrad,
                    convergence_mrad=_draw(rng, o.convergence_mrad), temporal_model=o.temporal_model,
                    n_focal=o.n_focal)
    d = sim.detector
    mtf = MTF(table=d.mtf_table, source=d.mtf_source) if d.mtf_table else (
        MTF(q0=d.mtf_q0, c=d.mtf_c, source="parametric") if d.mtf_q0 else MTF())
    dose = None if d.dose_e_per_A2 is None else _draw(rng, d.dose_e_per_A2)
    detector = Detector(pixel_size_nm=d.pixel_size_nm, dose_e_per_A2=dose, mtf=mtf)
    return SampleDraw(kind, spec, optics, detector)


def settings_for(sim):
    from datagen.simulate.params import SimulationSettings

    n = sim.numerics
    return SimulationSettings(sampling_A=n.sampling_A, slice_thickness_A=n.slice_thickness_A,
                              parametrization=n.parametrization, frozen_phonons=n.frozen_phonons,
                              debye_waller=n.debye_waller)


def image_shape(sim) -> tuple[int, int]:
    """Output image shape (ny, nx): the box's width on the simulation grid, resampled to the pixel size."""
    from datagen.simulate.detector import output_grid
    from datagen.simulate.grid import grid_for_cell

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
    import torch

    from datagen.simulate import ctf
    from datagen.simulate.energy import electron_wavelength
    from datagen.structures.lattice import crystal_lattice

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
    from ase.data import atomic_masses, atomic_numbers

    from datagen.structures.lattice import bulk_reference, number_density
    from datagen.structures.support import support_defaults

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


def provenance_variables() -> tuple[Variable, ...]:
    f, s = "float32", "str"
    S = ("sample",)
    return (
        Variable("kind", S, s, "1", "atomic model kind (datagen.structures.PARTICLE_KINDS)"),
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
        Variable("voltage_kv", S, f, "kV", "accelerating voltage"),
        Variable("defocus_nm", S, f, "nm", "defocus C1 (positive: overfocus)"),
        Variable("focal_spread_nm", S, f, "nm", "focal spread, 1/e half-width of the focus distribution"),
        Variable("astig_x_nm", S, f, "nm", "two-fold astigmatism A1, x component"),
        Variable("astig_y_nm", S, f, "nm", "two-fold astigmatism A1, y component"),
        Variable("cs_um", S, f, "um", "spherical aberration C3"),
        Variable("aperture_mrad", S, f, "mrad", "objective aperture semi-angle (NaN: none)"),
        Variable("convergence_mrad", S, f, "mrad", "illumination semi-angle (spatial coherence)"),
        Variable("temporal_model", S, s, "1", "temporal coherence model: focal_average or envelope"),
        Variable("dose_e_per_A2", S, f, "angstrom-2", "electron dose for Poisson noise (NaN: noise-free)"),
        Variable("mtf", S, s, "1", "detector MTF: ideal, parametric or the table's source"),
        Variable("pixel_size_nm", S, f, "nm", "output pixel size"),
        Variable("sampling_A", S, f, "angstrom", "simulation grid sampling"),
        Variable("slice_thickness_A", S, f, "angstrom", "multislice slice thickness"),
        Variable("frozen_phonons", S, "int16", "1", "frozen-phonon configurations (0: static)"),
        Variable("backend", S, s, "1", "simulation backend and version"),
    )


def layout(recipe) -> Layout:
    sim = recipe.simulation
    return Layout(recipe.n_samples, recipe.chunk_size, image_shape(sim), provenance_variables(),
                  {"row": 3, "col": 3}, atoms_per_sample=atoms_capacity(sim))


@lru_cache(maxsize=4)
def _backend(name: str):
    from datagen.simulate.backend import get_backend

    return get_backend(name)


def backend_info(recipe) -> tuple[str, str]:
    backend = _backend(recipe.simulation.backend)
    return backend.name, backend.version()


def generate_chunk(recipe, indices: np.ndarray, plan):
    """Images, masks and provenance of the samples ``indices``, with their atomic models."""
    from datagen.simulate.detector import apply_detector, output_grid
    from datagen.structures import build_sample

    sim = recipe.simulation
    draws, models, rngs = [], [], []
    for index, label in zip(indices, plan.labels):
        rng = sample_rng(recipe.seed, index)
        draw = draw_sample(sim, CLASS_NAMES[label], rng)
        models.append(build_sample(draw.spec, rng))
        draws.append(draw)
        rngs.append(rng)
    from datagen.device import reproducible_threads, resolve_device

    backend = _backend(sim.backend)
    phonon_rng = np.random.default_rng([int(recipe.seed), PHONON_STREAM, int(indices[0])])
    with reproducible_threads(resolve_device()):
        images, sampling = backend.simulate(models, [d.optics for d in draws], settings_for(sim), rng=phonon_rng)
    shape, pixel_A = output_grid(images.shape[-2:], sampling, sim.detector.pixel_size_nm)
    recorded = np.stack([apply_detector(images[i:i + 1], sampling, d.detector, rngs[i])[0]
                         for i, d in enumerate(draws)])
    masks = np.stack([particle_atoms_mask(m, shape, pixel_A) for m in models])
    version = backend.version()
    rows = [_provenance(d, m, sim, version) for d, m in zip(draws, models)]
    data = {"image": recorded, "mask": masks, "label": plan.labels.astype("int8"), "split": plan.splits,
            "structure_id": plan.structure_ids, "seed": np.full(len(indices), recipe.seed, "int64")}
    for var in provenance_variables():
        data[var.name] = np.asarray([r[var.name] for r in rows], dtype=object if var.dtype == "str" else var.dtype)
    return data, models


def _provenance(draw: SampleDraw, model, sim, backend: str) -> dict:
    info, o, d = model.info, draw.optics, draw.detector
    part = model.arrays["part"] == 1
    centroid = model.positions[part].mean(axis=0) / NM
    return {
        "kind": draw.kind, "element": info["element"], "n_atoms_particle": int(part.sum()),
        "n_atoms_support": int((~part).sum()), "diameter_nm": info["diameter"] / NM,
        "requested_diameter_nm": info["requested_diameter"] / NM, "n_domains": info["n_domains"],
        "orientation": np.asarray(info["orientation"], float), "particle_x_nm": centroid[0],
        "particle_y_nm": centroid[1], "support_element": info["support_element"] or "none",
        "support_thickness_nm": info.get("support_thickness", 0.0) / NM,
        "support_density_g_cm3": info.get("support_density", np.nan) or np.nan,
        "voltage_kv": o.voltage_kv, "defocus_nm": o.defocus_nm, "focal_spread_nm": o.focal_spread_nm,
        "astig_x_nm": o.astig_x_nm, "astig_y_nm": o.astig_y_nm, "cs_um": o.cs_um,
        "aperture_mrad": np.nan if o.aperture_mrad is None else o.aperture_mrad,
        "convergence_mrad": o.convergence_mrad, "temporal_model": o.temporal_model,
        "dose_e_per_A2": np.nan if d.dose_e_per_A2 is None else d.dose_e_per_A2, "mtf": d.mtf.source,
        "pixel_size_nm": d.pixel_size_nm, "sampling_A": sim.numerics.sampling_A,
        "slice_thickness_A": sim.numerics.slice_thickness_A, "frozen_phonons": sim.numerics.frozen_phonons,
        "backend": backend,
    }
