"""Assembly: particle on film in the box, geometry conventions, provenance, determinism, errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy.spatial import cKDTree

from datagen.structures import (DEFAULT_GAP, PARTICLE_KINDS, SampleSpec, assemble, build_particle, build_sample,
                                build_support, min_box_z)


@pytest.mark.parametrize("kind", list(PARTICLE_KINDS))
def test_particle_rests_on_the_film_beam_side(kind):
    atoms = build_sample({"kind": kind, "diameter": 25.0}, np.random.default_rng(4))
    part = atoms.arrays["part"]
    assert part.dtype == np.int8 and set(part) == {0, 1}
    p, s = atoms.positions[part == 1], atoms.positions[part == 0]
    assert np.allclose(atoms.cell.lengths(), 60.0) and tuple(atoms.pbc) == (True, True, False)
    assert p[:, 2].max() + DEFAULT_GAP == pytest.approx(s[:, 2].min())  # beam (+z) meets the particle first
    assert cKDTree(s).query(p)[0].min() >= DEFAULT_GAP
    assert (atoms.positions[:, 2] >= 0).all() and (atoms.positions[:, 2] <= 60.0).all()
    assert (p[:, :2] >= 5.0).all() and (p[:, :2] <= 55.0).all()
    assert atoms.info["label"] == PARTICLE_KINDS[kind] and atoms.info["support_element"] == "C"
    assert atoms.info["n_atoms"] == len(p) and atoms.info["support_n_atoms"] == len(s)
    assert (atoms.arrays["domain"][part == 0] == -1).all()
    json.dumps(atoms.info)


def test_lateral_position_is_random_within_the_margin():
    rng = np.random.default_rng(0)
    particle = build_particle("sphere", "Au", 20.0, rng)
    xs = np.array([assemble(particle, None, (60.0, 60.0, 60.0), rng).info["particle_position"][:2]
                   for _ in range(200)])
    radius = np.hypot(*(particle.positions[:, :2] - particle.positions[:, :2].mean(0)).T).max()
    assert xs.min() >= radius + 5.0 - 1e-9 and xs.max() <= 60.0 - radius - 5.0 + 1e-9
    assert xs.std(axis=0).min() > 3.0


def test_info_merges_and_is_deep_copied():
    rng = np.random.default_rng(1)
    particle = build_particle("stitched", "Au", 20.0, rng)
    film = build_support("C", 60.0, 60.0, 20.0, rng)
    atoms = assemble(particle, film, (60.0, 60.0, 60.0), rng)
    assert atoms.info["support_thickness"] == 20.0 and atoms.info["support_min_distance"] == 1.60
    assert atoms.info["kind"] == "stitched" and atoms.info["box"] == [60.0, 60.0, 60.0]
    atoms.info["orientation"][0][0] = 42.0
    atoms.info["domain_orientations"][0][0][0] = 42.0
    assert particle.info["orientation"][0][0] != 42.0
    assert particle.info["domain_orientations"][0][0][0] != 42.0
    assert np.array_equal(atoms.arrays["domain"][: len(particle)], particle.arrays["domain"])


def test_no_support():
    atoms = build_sample({"kind": "icosahedron", "support": None}, np.random.default_rng(0))
    assert set(atoms.arrays["part"]) == {1} and atoms.info["support_element"] == "none"


def test_same_seed_same_sample_and_si_film_has_the_carbon_positions():
    a = build_sample(SampleSpec(kind="amorphous"), np.random.default_rng(9))
    b = build_sample(SampleSpec(kind="amorphous"), np.random.default_rng(9))
    c = build_sample(SampleSpec(kind="amorphous"), np.random.default_rng(10))
    assert np.array_equal(a.positions, b.positions) and a.info == b.info
    assert len(a) != len(c) or not np.allclose(a.positions, c.positions)
    si = build_sample(SampleSpec(kind="amorphous", support_substitute="Si"), np.random.default_rng(9))
    assert np.array_equal(si.positions, a.positions)
    film = si.arrays["part"] == 0
    assert set(np.array(si.get_chemical_symbols())[film]) == {"Si"}
    assert si.info["support_element"] == "Si" and si.info["support_substituted_from"] == "C"


def test_spec_round_trip_and_unknown_keys():
    spec = SampleSpec(kind="wulff", element="Pt", diameter=22.0, box=(50.0, 50.0, 70.0))
    assert SampleSpec.from_mapping(json.loads(json.dumps(spec.to_dict()))) == spec
    with pytest.raises(ValueError, match="colour"):
        SampleSpec.from_mapping({"kind": "sphere", "colour": "gold"})


@pytest.mark.parametrize("spec,name", [
    ({"box": (60.0, 60.0, 30.0), "thickness": 20.0, "diameter": 25.0}, "box z"),
    ({"box": (20.0, 20.0, 60.0), "diameter": 25.0}, "box x"),
    ({"box": (60.0, 0.0, 60.0)}, "box y"),
    ({"box": (60.0, 60.0)}, "box"),
    ({"gap": -1.0}, "gap"),
])
def test_bad_box_names_the_parameter(spec, name):
    with pytest.raises(ValueError, match=name):
        build_sample(spec, np.random.default_rng(0))


def test_min_box_z_is_exactly_what_fits():
    rng = np.random.default_rng(0)
    particle = build_particle("octahedron", "Au", 30.0, rng)
    film = build_support("C", 60.0, 60.0, 20.0, rng)
    need = min_box_z(particle, 20.0)
    assert 20.0 + DEFAULT_GAP + 30.0 < need <= 20.0 + DEFAULT_GAP + particle.info["max_extent"] + 1e-9
    atoms = assemble(particle, film, (60.0, 60.0, need), rng)
    assert atoms.positions[:, 2].min() == pytest.approx(0.0, abs=1e-9)
    assert need - 1.6 < atoms.positions[:, 2].max() <= need
    with pytest.raises(ValueError, match="box z"):
        assemble(particle, film, (60.0, 60.0, need - 0.01), rng)


def test_film_width_must_match_box():
    rng = np.random.default_rng(0)
    film = build_support("C", 50.0, 60.0, 20.0, rng)
    with pytest.raises(ValueError, match="box x, y"):
        assemble(build_particle("sphere", "Au", 20.0, rng), film, (60.0, 60.0, 60.0), rng)
