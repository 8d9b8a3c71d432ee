"""Random sequential packing and amorphous particles: distances, density, RDF, defaults, errors."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.spatial import cKDTree

from datagen.structures import build_particle
from datagen.structures.amorphous import AMORPHOUS_DENSITY_FACTOR, amorphous_defaults
from datagen.structures.lattice import number_density
from datagen.structures.packing import MAX_PACKING_FRACTION, packing_fraction, random_sequential_packing


def min_pair_distance(pos, boxsize=None) -> float:
    d, _ = cKDTree(pos, boxsize=boxsize).query(pos, k=2)
    return float(d[:, 1].min())


def rdf_about_centre(pos: np.ndarray, radius: float, n: float, r_max: float = 8.0, dr: float = 0.2):
    """g(r) [bins of dr Å] counted around atoms deeper than r_max inside a sphere of ``radius`` [Å]."""
    centre = pos[np.linalg.norm(pos, axis=1) < radius - r_max]
    d = np.linalg.norm(centre[:, None, :] - pos[None, :, :], axis=2).ravel()
    edges = np.arange(0.0, r_max + dr, dr)
    h, _ = np.histogram(d[d > 1e-9], bins=edges)
    shell = 4.0 / 3.0 * math.pi * (edges[1:] ** 3 - edges[:-1] ** 3)
    return edges[:-1] + dr / 2, h / (len(centre) * shell * n)


@pytest.mark.parametrize("periodic", [(True, True, True), (True, True, False), (False, False, False)])
def test_packing_respects_min_distance_with_minimum_image(periodic):
    rng = np.random.default_rng(0)
    length = np.array([17.3, 9.1, 12.0])
    pos, attempts = random_sequential_packing(250, (0, 0, 0), length, 1.6, rng, periodic=periodic)
    assert len(pos) == 250 and attempts >= 250  # packing fraction 0.28
    assert ((pos >= 0) & (pos < length)).all()
    box = np.where(periodic, length, 10 * length.max())
    assert min_pair_distance(pos, boxsize=box) >= 1.6


def test_packing_small_periodic_box_fewer_than_three_cells():
    pos, _ = random_sequential_packing(6, (0, 0, 0), (3.5, 3.5, 3.5), 1.6, np.random.default_rng(2),
                                       periodic=(True, True, True))
    assert len(pos) == 6 and min_pair_distance(pos, boxsize=[3.5] * 3) >= 1.6


def test_packing_gives_up_when_jammed():
    pos, attempts = random_sequential_packing(1000, (0, 0, 0), (10, 10, 10), 1.6, np.random.default_rng(1),
                                              max_attempts=20000)
    assert len(pos) < 1000 and attempts == 20000


def test_packing_is_deterministic_per_generator():
    a, _ = random_sequential_packing(300, (0, 0, 0), (20, 20, 20), 2.0, np.random.default_rng(5))
    b, _ = random_sequential_packing(300, (0, 0, 0), (20, 20, 20), 2.0, np.random.default_rng(5))
    c, _ = random_sequential_packing(300, (0, 0, 0), (20, 20, 20), 2.0, np.random.default_rng(6))
    assert np.array_equal(a, b) and not np.allclose(a, c)


@pytest.mark.parametrize("seed", range(3))
def test_amorphous_au_min_distance_density_and_no_crystalline_rdf(seed):
    atoms = build_particle("amorphous", "Au", 40.0, np.random.default_rng(seed))
    info = atoms.info
    assert info["label"] == "amorphous" and info["n_domains"] == 0 and info["min_distance"] == 2.48
    assert set(atoms.arrays["domain"]) == {-1}
    assert min_pair_distance(atoms.positions) >= 2.48
    target = info["density"]
    assert target == pytest.approx(AMORPHOUS_DENSITY_FACTOR * 19.32, rel=0.01)
    n = number_density(target, "Au")
    r = np.linalg.norm(atoms.positions, axis=1)
    for radius in (14.0, 20.0):  # uniform: the interior is as dense as the whole sphere
        measured = (r <= radius).sum() / (4.0 / 3.0 * math.pi * radius**3)
        assert measured == pytest.approx(n, rel=0.05)
    centres, g = rdf_about_centre(atoms.positions, 20.0, n)
    assert g[centres < 2.48].max() == 0.0
    assert g.max() < 3.0
    assert np.abs(g[centres > 5.0] - 1.0).max() < 0.3


def test_crystal_rdf_has_the_peaks_the_amorphous_one_lacks():
    atoms = build_particle("sphere", "Au", 40.0, np.random.default_rng(0))
    _, g = rdf_about_centre(atoms.positions, 20.0, 4 / 4.08**3)
    assert g.max() > 6.0


def test_other_elements_follow_the_nearest_neighbour_rule():
    d_min, rho = amorphous_defaults("Cu")
    assert d_min == pytest.approx(0.86 * 3.61 / math.sqrt(2))
    assert rho == pytest.approx(AMORPHOUS_DENSITY_FACTOR * 4 * 63.546 / (3.61**3 * 0.602214076), rel=1e-6)
    atoms = build_particle("amorphous", "Cu", 25.0, np.random.default_rng(0))
    assert min_pair_distance(atoms.positions) >= d_min
    si = build_particle("amorphous", "Si", 25.0, np.random.default_rng(0))  # diamond reference state
    assert si.info["min_distance"] == pytest.approx(0.86 * 5.43 * math.sqrt(3) / 4)
    h = build_particle("amorphous", "H", 20.0, np.random.default_rng(0), min_distance=1.0, density=0.08)
    assert len(h) > 0 and min_pair_distance(h.positions) >= 1.0


def test_explicit_density_and_min_distance_are_reached():
    atoms = build_particle("amorphous", "Pt", 36.0, np.random.default_rng(4), min_distance=2.2, density=16.0)
    assert min_pair_distance(atoms.positions) >= 2.2
    assert atoms.info["actual_density"] == pytest.approx(16.0, rel=0.05)
    assert atoms.info["packing_fraction"] == pytest.approx(packing_fraction(number_density(16.0, "Pt"), 2.2))


def test_unreachable_density_names_min_distance_and_density():
    with pytest.raises(ValueError, match="min_distance=2.48 .*density=19.3"):
        build_particle("amorphous", "Au", 20.0, np.random.default_rng(0), density=19.3)
    assert packing_fraction(number_density(19.3, "Au"), 2.48) > MAX_PACKING_FRACTION
    with pytest.raises(ValueError, match="element 'H'"):
        build_particle("amorphous", "H", 20.0, np.random.default_rng(0))
