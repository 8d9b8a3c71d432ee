"""Polycrystalline particles: stitched spheres, icosahedra, decahedra (counts, domains, symmetry)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from ase.cluster import Decahedron, Icosahedron
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from scipy.spatial import cKDTree

from datagen.structures import build_particle
from datagen.structures.crystal import equivalent_diameter
from datagen.structures.lattice import crystal_lattice
from datagen.structures.polycrystal import (MIN_MISORIENTATION_DEG, decahedron_count, decahedron_parameters,
                                            remove_close_pairs)

A = 4.08
NN = A / math.sqrt(2)


def orientation_domains(pos: np.ndarray, nn: float, *, tol_deg: float = 2.0, min_fraction: float = 0.05):
    """Blind local-orientation analysis: grains as connected sets of atoms with the same bond directions.

    Each atom's bonds are the unit vectors to neighbours within 1.2·nn. Two neighbouring atoms are
    in the same grain when, for both, the median over its bonds of the angle to the nearest bond
    direction (±) of the other is below ``tol_deg``. Returns the grain label per atom (−1 for
    atoms in grains smaller than ``min_fraction`` of the particle) and the number of grains.
    """
    tree = cKDTree(pos)
    neighbours = tree.query_ball_point(pos, 1.2 * nn)
    bonds = []
    for i, nb in enumerate(neighbours):
        v = pos[[j for j in nb if j != i]] - pos[i]
        v /= np.linalg.norm(v, axis=1, keepdims=True)
        bonds.append(np.concatenate([v, -v]))
    rows, cols = [], []
    cos_tol = math.cos(math.radians(tol_deg))
    for i, nb in enumerate(neighbours):
        for j in nb:
            if j <= i or len(bonds[i]) < 6 or len(bonds[j]) < 6:
                continue
            m = bonds[i] @ bonds[j].T
            if np.median(m.max(axis=1)) > cos_tol and np.median(m.max(axis=0)) > cos_tol:
                rows.append(i)
                cols.append(j)
    graph = coo_matrix((np.ones(len(rows)), (rows, cols)), shape=(len(pos), len(pos)))
    _, labels = connected_components(graph, directed=False)
    sizes = np.bincount(labels)
    big = np.flatnonzero(sizes >= min_fraction * len(pos))
    out = np.full(len(pos), -1)
    for k, lab in enumerate(big):
        out[labels == lab] = k
    return out, len(big)


def test_orientation_analysis_sees_one_grain_in_a_monocrystal():
    atoms = build_particle("sphere", "Au", 30.0, np.random.default_rng(0))
    _, n = orientation_domains(atoms.positions, NN)
    assert n == 1


@pytest.mark.parametrize("seed", range(8))
def test_stitched_particles_have_2_or_3_domains_and_no_close_pairs(seed):
    atoms = build_particle("stitched", "Au", 30.0, np.random.default_rng(seed))
    info = atoms.info
    assert info["label"] == "polycrystalline" and info["n_domains"] in (2, 3)
    truth = atoms.arrays["domain"]
    assert sorted(set(truth)) == list(range(info["n_domains"]))
    found, n = orientation_domains(atoms.positions, NN)
    assert n == info["n_domains"]
    for k in range(n):  # each grain found is one true domain, and each true domain is found once
        members = truth[found == k]
        assert np.bincount(members).max() >= 0.95 * len(members)
    majority = {int(np.bincount(truth[found == k]).argmax()) for k in range(n)}
    assert majority == set(range(n))
    d, _ = cKDTree(atoms.positions).query(atoms.positions, k=2)
    assert d[:, 1].min() >= info["min_distance"] == pytest.approx(2.48, abs=0.01)
    assert min(info["misorientations_deg"]) >= MIN_MISORIENTATION_DEG
    assert all(0.0 <= s <= 15.0 / 2 for s in info["cut_offsets"])
    assert len(info["cut_normals"]) == info["n_domains"] - 1


def test_stitched_three_domains_happen_about_half_the_time_with_non_parallel_planes():
    infos = [build_particle("stitched", "Au", 16.0, np.random.default_rng(s)).info for s in range(60)]
    n3 = sum(i["n_domains"] == 3 for i in infos)
    assert 15 <= n3 <= 45
    for i in infos:
        if i["n_domains"] == 3:
            n1, n2 = np.array(i["cut_normals"])
            assert abs(n1 @ n2) < math.cos(math.radians(20.0)) + 1e-12


def test_stitched_domains_keep_the_lattice_inside_and_lie_beyond_their_cut():
    atoms = build_particle("stitched", "Au", 30.0, np.random.default_rng(3))
    pos, dom = atoms.positions, atoms.arrays["domain"]
    rel = pos - np.array(atoms.info["sphere_center"])
    for k, (n, s) in enumerate(zip(atoms.info["cut_normals"], atoms.info["cut_offsets"]), start=1):
        assert (rel[dom == k] @ np.array(n) >= s - 1e-9).all()
        assert (rel[dom < k] @ np.array(n) < s).all()
    for k in range(atoms.info["n_domains"]):
        p = pos[dom == k]
        d, _ = cKDTree(p).query(p, k=2)
        assert np.allclose(d[:, 1], NN)


def test_close_pair_rule_drops_the_later_domain():
    pos = np.array([[0.0, 0, 0], [1.0, 0, 0], [5.0, 0, 0], [5.5, 0, 0], [9.0, 0, 0], [9.5, 0, 0]])
    dom = np.array([0, 1, 1, 0, 2, 2])
    keep = remove_close_pairs(pos, dom, 2.0)
    assert keep.tolist() == [True, False, False, True, True, True]


@pytest.mark.parametrize("shells,n_atoms", [(2, 13), (3, 55), (4, 147), (5, 309)])
def test_icosahedron_magic_numbers_and_isotropy(shells, n_atoms):
    d = equivalent_diameter(n_atoms, crystal_lattice("Au").number_density)
    atoms = build_particle("icosahedron", "Au", d, np.random.default_rng(shells))
    assert len(atoms) == n_atoms == len(Icosahedron("Au", shells))
    assert atoms.info["n_shells"] == shells and atoms.info["n_domains"] == 20
    assert atoms.info["label"] == "polycrystalline"
    moments = np.linalg.eigvalsh(np.einsum("ni,nj->ij", atoms.positions, atoms.positions))
    assert moments.max() - moments.min() < 1e-6 * moments.max()  # icosahedral: isotropic inertia
    if shells >= 4:  # from 147 atoms on, every tetrahedron has atoms off the twin planes
        assert sorted(set(atoms.arrays["domain"])) == list(range(20))


def test_decahedron_count_matches_ase():
    for p in range(1, 6):
        for q in range(1, 5):
            for r in range(0, 3):
                assert decahedron_count(p, q, r) == len(Decahedron("Au", p, q, r))
    assert [decahedron_count(p, 1, 0) for p in range(2, 7)] == [7, 23, 54, 105, 181]
    assert [decahedron_count(*pqr) for pqr in [(2, 2, 1), (3, 2, 1), (3, 3, 1)]] == [75, 146, 192]


@pytest.mark.parametrize("seed", range(6))
def test_decahedra_five_fold_axis_and_equal_wedges(seed):
    atoms = build_particle("decahedron", "Au", 25.0, np.random.default_rng(seed))
    info = atoms.info
    assert info["n_domains"] == 5 and info["variant"] in ("regular", "ino", "marks")
    assert (info["p"], info["q"], info["r"]) == decahedron_parameters(info["variant"], info["p"])
    assert len(atoms) == decahedron_count(info["p"], info["q"], info["r"])
    axis = np.array(info["orientation"])[:, 2]
    moments, vectors = np.linalg.eigh(np.einsum("ni,nj->ij", atoms.positions, atoms.positions))
    pair = [(0, 1), (1, 2), (0, 2)]
    i, j = min(pair, key=lambda ij: abs(moments[ij[0]] - moments[ij[1]]))
    assert abs(moments[i] - moments[j]) < 1e-6 * moments.max()  # five-fold axis: two equal moments
    unique = ({0, 1, 2} - {i, j}).pop()
    assert abs(abs(vectors[:, unique] @ axis) - 1.0) < 1e-6
    counts = np.bincount(atoms.arrays["domain"], minlength=5)
    h = info["p"] + info["q"] + 2 * info["r"] - 1  # atoms on the five-fold axis go to domain 0
    assert len(set(counts[1:])) == 1 and counts[0] == counts[1] + h


def test_polycrystal_shapes_need_fcc():
    with pytest.raises(ValueError, match="fcc"):
        build_particle("icosahedron", "Fe", 20.0, np.random.default_rng(0))
    with pytest.raises(ValueError, match="fcc"):
        build_particle("decahedron", "Mg", 20.0, np.random.default_rng(0))
    atoms = build_particle("stitched", "Fe", 25.0, np.random.default_rng(0))
    assert atoms.info["n_domains"] in (2, 3)
