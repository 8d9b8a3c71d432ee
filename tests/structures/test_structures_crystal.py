"""Monocrystalline particles: lattices, cut-outs, ase.cluster shapes, Wulff, orientation, errors."""

from __future__ import annotations

import math

import numpy as np
import pytest
from ase.cluster import Octahedron
from scipy.spatial import cKDTree

from datagen.structures import PARTICLE_KINDS, build_particle
from datagen.structures.crystal import _family_normals, _octahedron_count, equivalent_diameter
from datagen.structures.lattice import crystal_lattice, misorientation_deg, proper_point_group, random_rotation


def nearest_distances(pos: np.ndarray) -> np.ndarray:
    d, _ = cKDTree(pos).query(pos, k=2)
    return d[:, 1]


@pytest.mark.parametrize("a", [None, 3.92])
def test_fcc_cutout_nearest_neighbour_is_a_over_sqrt2(a):
    atoms = build_particle("sphere", "Au", 25.0, np.random.default_rng(1), lattice_constant=a)
    a_used = 4.08 if a is None else a
    assert atoms.info["lattice_constant"] == pytest.approx(a_used)
    nn = nearest_distances(atoms.positions)
    assert np.allclose(nn, a_used / math.sqrt(2), atol=1e-9)
    # Interior atoms have the full fcc shell: 12 neighbours at a/√2.
    interior = np.linalg.norm(atoms.positions, axis=1) < 6.0
    counts = [len(n) - 1 for n in cKDTree(atoms.positions).query_ball_point(atoms.positions[interior],
                                                                             1.05 * a_used / math.sqrt(2))]
    assert set(counts) == {12}


@pytest.mark.parametrize("element,structure,nn", [
    ("Fe", "bcc", 2.87 * math.sqrt(3) / 2),
    ("Mg", "hcp", math.sqrt(3.21**2 / 3 + (1.624 * 3.21) ** 2 / 4)),  # c/a = 1.624 < ideal: out-of-plane bond
    ("Cu", "fcc", 3.61 / math.sqrt(2)),
])
def test_other_lattices_nearest_neighbour(element, structure, nn):
    atoms = build_particle("sphere", element, 22.0, np.random.default_rng(2))
    assert atoms.info["structure"] == structure
    assert np.allclose(nearest_distances(atoms.positions), nn, rtol=1e-9)


def test_sphere_cutout_fits_requested_diameter_and_count():
    for seed in range(4):
        atoms = build_particle("sphere", "Au", 30.0, np.random.default_rng(seed))
        assert atoms.info["max_extent"] <= 30.0 + 1.0
        assert abs(atoms.info["diameter"] - 30.0) < 1.0
        assert np.allclose(atoms.positions.mean(axis=0), 0.0, atol=1e-9)
    assert PARTICLE_KINDS["sphere"] == atoms.info["label"] == "monocrystalline"
    assert atoms.info["n_domains"] == 1 and set(atoms.arrays["domain"]) == {0}


def test_orientation_record_maps_back_to_cube_axes():
    atoms = build_particle("sphere", "Au", 20.0, np.random.default_rng(5))
    rot = np.array(atoms.info["orientation"])
    crystal = atoms.positions @ rot  # x_crystal = R^T x_lab
    tree = cKDTree(crystal)
    pairs = tree.query_pairs(3.0, output_type="ndarray")
    bonds = np.abs(crystal[pairs[:, 0]] - crystal[pairs[:, 1]])
    bonds = np.sort(bonds, axis=1)
    assert np.allclose(bonds, [0.0, 2.04, 2.04], atol=1e-6)  # every bond is a/2 <110>


def test_random_rotation_is_uniform_on_so3():
    rng = np.random.default_rng(0)
    rots = np.array([random_rotation(rng) for _ in range(4000)])
    assert np.allclose(np.einsum("nij,nkj->nik", rots, rots), np.eye(3), atol=1e-12)
    assert np.allclose(np.linalg.det(rots), 1.0)
    assert np.abs(rots.mean(axis=0)).max() < 0.04  # Haar measure: E[R] = 0
    angles = np.arccos(np.clip((np.trace(rots, axis1=1, axis2=2) - 1) / 2, -1, 1))
    # Haar density of the rotation angle: (1 - cos ω)/π, so P(ω < π/2) = (π/2 - 1)/π.
    assert np.mean(angles < math.pi / 2) == pytest.approx((math.pi / 2 - 1) / math.pi, abs=0.02)


def test_misorientation_respects_cubic_symmetry():
    rng = np.random.default_rng(3)
    r = random_rotation(rng)
    for op in proper_point_group("fcc"):
        assert misorientation_deg(r, r @ op, "fcc") == pytest.approx(0.0, abs=1e-5)
    rz = np.array([[math.cos(0.3), -math.sin(0.3), 0], [math.sin(0.3), math.cos(0.3), 0], [0, 0, 1]])
    assert misorientation_deg(r, r @ rz, "fcc") == pytest.approx(math.degrees(0.3))
    assert len(proper_point_group("hcp")) == 12


@pytest.mark.parametrize("kind,n_atoms", [("cuboctahedron", 13), ("cuboctahedron", 55), ("cuboctahedron", 147),
                                          ("cuboctahedron", 309), ("octahedron", 85), ("octahedron", 146),
                                          ("truncated_octahedron", 38), ("truncated_octahedron", 201)])
def test_octahedral_magic_numbers(kind, n_atoms):
    lattice = crystal_lattice("Au")
    d = equivalent_diameter(n_atoms, lattice.number_density)
    atoms = build_particle(kind, "Au", d, np.random.default_rng(0))
    assert len(atoms) == n_atoms
    assert atoms.info["diameter"] == pytest.approx(d)
    assert np.allclose(nearest_distances(atoms.positions), 4.08 / math.sqrt(2))


def test_octahedron_count_formula_matches_ase():
    for length in range(1, 9):
        for cutoff in range(0, (length - 1) // 2 + 1):
            assert _octahedron_count(length, cutoff) == len(Octahedron("Au", length, cutoff))


def test_discrete_shapes_pick_closest_size():
    rng = np.random.default_rng(0)
    lattice = crystal_lattice("Au")
    sizes = [equivalent_diameter(n, lattice.number_density) for n in (13, 55, 147, 309, 561)]
    for target in (12.0, 17.0, 22.0, 27.0):
        atoms = build_particle("cuboctahedron", "Au", target, rng)
        assert atoms.info["diameter"] == pytest.approx(min(sizes, key=lambda s: abs(s - target)))


@pytest.mark.parametrize("element", ["Au", "Fe", "Mg"])
def test_wulff_shape_is_bounded_by_its_facets(element):
    atoms = build_particle("wulff", element, 24.0, np.random.default_rng(4))
    info = atoms.info
    lattice = crystal_lattice(element)
    crystal = atoms.positions @ np.array(info["orientation"])
    ops = proper_point_group(lattice.structure)
    normals = [_family_normals(lattice, hkl, ops) for hkl in info["surfaces"]]
    s = np.max([np.max(crystal @ n.T, axis=1) / g for n, g in zip(normals, info["surface_energies"])], axis=0)
    assert s.max() <= info["wulff_lambda"] + 1e-6
    assert abs(info["diameter"] - 24.0) < 2.5
    if element != "Mg":  # cubic Wulff shapes about an inversion centre are centrosymmetric
        assert np.allclose(nearest_distances(np.concatenate([crystal, -crystal]))[: len(crystal)], 0.0, atol=1e-6)


@pytest.mark.parametrize("kind", list(PARTICLE_KINDS))
def test_same_seed_same_model_different_seed_different(kind):
    a = build_particle(kind, "Au", 20.0, np.random.default_rng(11))
    b = build_particle(kind, "Au", 20.0, np.random.default_rng(11))
    c = build_particle(kind, "Au", 20.0, np.random.default_rng(12))
    assert np.array_equal(a.positions, b.positions) and a.info == b.info
    assert len(a) != len(c) or not np.allclose(a.positions, c.positions)
    assert a.info["label"] == PARTICLE_KINDS[kind]
    assert np.allclose(a.positions.mean(axis=0), 0.0, atol=1e-9)


@pytest.mark.parametrize("kind", ["cuboctahedron", "icosahedron", "decahedron"])
def test_info_is_json_able_and_cached_templates_are_not_shared(kind):
    import json

    atoms = build_particle(kind, "Au", 20.0, np.random.default_rng(0))
    json.dumps(atoms.info)
    reference = atoms.positions.copy()
    atoms.positions[:] = 0.0
    atoms.arrays["domain"][:] = -7
    again = build_particle(kind, "Au", 20.0, np.random.default_rng(0))
    assert np.array_equal(again.positions, reference)
    assert (again.arrays["domain"] >= 0).all()


@pytest.mark.parametrize("args,kwargs,name", [
    (("sphere", "Xx", 20.0), {}, "element"),
    (("sphere", "Au", 0.0), {}, "diameter"),
    (("sphere", "Au", -5.0), {}, "diameter"),
    (("sphere", "Au", float("nan")), {}, "diameter"),
    (("pyramid", "Au", 20.0), {}, "kind"),
    (("sphere", "Au", 20.0), {"lattice_constant": -1.0}, "lattice_constant"),
    (("octahedron", "Fe", 20.0), {}, "fcc"),
    (("sphere", "Si", 20.0), {}, "element"),
    (("amorphous", "Au", 20.0), {"density": 0.0}, "density"),
    (("amorphous", "Au", 20.0), {"min_distance": 3.2}, "min_distance"),
])
def test_bad_input_names_the_parameter(args, kwargs, name):
    with pytest.raises(ValueError, match=name):
        build_particle(*args, np.random.default_rng(0), **kwargs)


def test_reflections_follow_the_extinction_rules():
    """fcc: {111} a/√3 then {200} a/2 ({100}, {110} extinct); bcc: {110} a/√2 first ({100} extinct);
    hcp: {100} a√3/2 then {002} c/2, {001} extinct."""
    au = crystal_lattice("Au")
    (h1, d1), (h2, d2), (h3, d3) = au.reflections()[:3]
    assert (h1, h2, h3) == ((1, 1, 1), (2, 0, 0), (2, 2, 0))
    assert (d1, d2, d3) == pytest.approx((au.a / math.sqrt(3), au.a / 2, au.a / math.sqrt(8)), abs=1e-4)
    fe = crystal_lattice("Fe")
    assert fe.reflections()[0] == ((1, 1, 0), pytest.approx(fe.a / math.sqrt(2), abs=1e-4))
    mg = crystal_lattice("Mg")
    a, c = mg.a, mg.cell[2, 2]
    spacings = [d for _, d in mg.reflections()]
    assert spacings[:2] == pytest.approx([a * math.sqrt(3) / 2, c / 2], abs=1e-4)
    assert all(abs(d - c) > 1e-3 for d in spacings)  # (001) at d = c is extinct
