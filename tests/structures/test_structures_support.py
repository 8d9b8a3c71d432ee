"""Support films: thickness, density, periodic minimum distance, uniformity, C→Si substitution, errors."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial import cKDTree

from datagen.structures import build_support, substitute, support_defaults
from datagen.structures.lattice import mass_density


def min_periodic_xy_distance(atoms) -> float:
    wx, wy, t = atoms.cell.lengths()
    d, _ = cKDTree(atoms.positions, boxsize=[wx, wy, 10 * t + 10]).query(atoms.positions, k=2)
    return float(d[:, 1].min())


@pytest.mark.parametrize("thickness", [10.0, 20.0, 30.0])
def test_carbon_film_thickness_density_and_min_distance(thickness):
    film = build_support("C", 60.0, 60.0, thickness, np.random.default_rng(0))
    z = film.positions[:, 2]
    assert z.min() >= 0.0 and z.max() < thickness
    assert z.max() - z.min() > thickness - 1.0
    assert film.info["min_distance"] == 1.60 and film.info["target_density"] == 2.0
    density = mass_density(len(film) / (60.0 * 60.0 * thickness), "C")
    assert density == pytest.approx(2.0, rel=0.01) and film.info["density"] == pytest.approx(density)
    assert min_periodic_xy_distance(film) >= 1.60
    assert tuple(film.pbc) == (True, True, False)
    assert np.allclose(film.cell.lengths(), [60.0, 60.0, thickness])


def test_the_6x6x2_nm_film_has_about_7000_atoms():
    film = build_support("C", 60.0, 60.0, 20.0, np.random.default_rng(1))
    assert len(film) == round(2.0 * 6.02214076e23 / 12.011 * 1e-24 * 72000)


def test_film_density_is_uniform_up_to_both_surfaces():
    film = build_support("C", 60.0, 60.0, 20.0, np.random.default_rng(2))
    counts, _ = np.histogram(film.positions[:, 2], bins=5, range=(0.0, 20.0))
    assert np.abs(counts / counts.mean() - 1.0).max() < 0.05


def test_min_distance_holds_across_the_periodic_boundary_in_a_narrow_film():
    film = build_support("C", 5.0, 7.0, 12.0, np.random.default_rng(3), density=1.8, min_distance=1.6)
    assert min_periodic_xy_distance(film) >= 1.6


def test_every_call_is_a_new_film_and_a_seed_fixes_it():
    a = build_support("C", 30.0, 30.0, 15.0, np.random.default_rng(7))
    b = build_support("C", 30.0, 30.0, 15.0, np.random.default_rng(7))
    rng = np.random.default_rng(7)
    c, d = build_support("C", 30.0, 30.0, 15.0, rng), build_support("C", 30.0, 30.0, 15.0, rng)
    assert np.array_equal(a.positions, b.positions) and np.array_equal(a.positions, c.positions)
    assert not np.allclose(c.positions[: min(len(c), len(d))], d.positions[: min(len(c), len(d))])


def test_silicon_substitution_keeps_positions_and_scales_density():
    film = build_support("C", 40.0, 40.0, 20.0, np.random.default_rng(0))
    si = substitute(film, "C", "Si")
    assert np.array_equal(si.positions, film.positions)
    assert set(si.get_chemical_symbols()) == {"Si"} and set(film.get_chemical_symbols()) == {"C"}
    assert si.info["element"] == "Si" and si.info["substituted_from"] == "C"
    assert si.info["density"] == pytest.approx(film.info["density"] * 28.085 / 12.011, rel=1e-3)
    assert film.info["element"] == "C" and film.info["substituted_from"] is None
    with pytest.raises(ValueError, match="old element"):
        substitute(film, "Au", "Si")


def test_other_film_elements_have_defaults():
    assert support_defaults("C") == (1.60, 2.0)
    d_si, rho_si = support_defaults("Si")
    assert d_si == pytest.approx(0.86 * 5.43 * 3**0.5 / 4) and rho_si == 2.28
    film = build_support("Si", 20.0, 20.0, 15.0, np.random.default_rng(0))
    assert min_periodic_xy_distance(film) >= d_si


@pytest.mark.parametrize("kwargs,name", [
    ({"thickness": 0.0}, "thickness"), ({"thickness": -2.0}, "thickness"), ({"width_x": 0.0}, "width_x"),
    ({"width_y": float("inf")}, "width_y"), ({"element": "Qq"}, "element"), ({"density": -1.0}, "density"),
    ({"density": 3.5}, "density"), ({"min_distance": 0.0}, "min_distance"),
])
def test_bad_film_input_names_the_parameter(kwargs, name):
    args = {"element": "C", "width_x": 20.0, "width_y": 20.0, "thickness": 10.0} | kwargs
    with pytest.raises(ValueError, match=name):
        build_support(args.pop("element"), args.pop("width_x"), args.pop("width_y"), args.pop("thickness"),
                      np.random.default_rng(0), **args)
