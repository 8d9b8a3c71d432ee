"""Each physical parameter is declared once (``datagen.simulate.params.param``); the recipe fields and
the store's provenance variables are made from the declarations. These tests fail when a recipe
field, a provenance variable and the engine's parameter class disagree on a name, unit, bound or
default, and when a registry (particle kinds, backends, generators) and what reads it drift apart."""

from __future__ import annotations

import typing
from dataclasses import fields

import numpy as np
import pytest

from datagen.errors import DatagenError
from datagen.generators import GENERATORS, Generator
from datagen.generators.simulated import RECORDED_PARAMETERS, draw_sample, provenance_variables, settings_for
from datagen.recipe import PAPER_OPTICS, DetectorParams, NumericsParams, OpticsParams, SimulationParams, parse_recipe
from datagen.recipe.models import Recipe
from datagen.simulate.backends import BACKENDS, backend_class, get_backend
from datagen.simulate.params import Detector, Optics, SimulationSettings, declaration
from datagen.structures import build_particle
from datagen.structures.kinds import KINDS, ParticleKind, default_kind_weights

#: (recipe model, engine class, the engine fields the recipe sets through fields of the same name)
PAIRS = [
    (OpticsParams, Optics, [f.name for f in fields(Optics)]),
    (DetectorParams, Detector, ["pixel_size_nm", "dose_e_per_A2"]),
    (NumericsParams, SimulationSettings, list(NumericsParams.model_fields)),
]


@pytest.mark.parametrize("model, engine, names", PAIRS, ids=lambda x: getattr(x, "__name__", ""))
def test_recipe_fields_carry_the_engines_units_bounds_and_defaults(model, engine, names):
    for name in names:
        field = model.model_fields[name]
        d = declaration(engine, name)
        assert field.json_schema_extra["units"] == d["units"], name
        assert d["description"] in field.description, name
        expected = PAPER_OPTICS.get(name, d["default"]) if model is OpticsParams else d["default"]
        assert field.get_default(call_default_factory=True) == expected, name
        bounds = field.json_schema_extra.get("bounds")
        if bounds is None:  # pydantic's own constraints (annotated_types.Ge, Le, Gt)
            bounds = {k: getattr(m, k) for m in field.metadata for k in ("ge", "le", "gt") if hasattr(m, k)}
        for key in ("ge", "le", "gt"):
            assert bounds.get(key) == d.get(key), (name, key)


def test_a_paper_choice_lies_within_the_declared_bounds():
    for name, value in PAPER_OPTICS.items():
        d = declaration(Optics, name)
        for v in value if isinstance(value, tuple) else (value,):
            assert (d["ge"] is None or v >= d["ge"]) and (d["le"] is None or v <= d["le"]), name
            assert d["gt"] is None or v > d["gt"], name


def test_every_engine_optics_field_has_a_recipe_field_and_no_recipe_field_is_unused():
    assert set(OpticsParams.model_fields) == {f.name for f in fields(Optics)}
    assert set(NumericsParams.model_fields) <= {f.name for f in fields(SimulationSettings)}


def test_provenance_variables_carry_the_declared_units_and_names():
    by_name = {v.name: v for v in provenance_variables()}
    for cls, name, _ in RECORDED_PARAMETERS:
        d = declaration(cls, name)
        assert by_name[name].units == d["units"] and by_name[name].long_name == d["description"], name
    # the same unit on the recipe side, where the recipe has the field
    for model, engine, names in PAIRS:
        for name in set(names) & set(by_name):
            assert model.model_fields[name].json_schema_extra["units"] == by_name[name].units, name


def test_engine_defaults_are_the_recipes_where_the_recipe_does_not_choose():
    recipe = SimulationParams()
    for f in fields(Optics):
        if f.name not in PAPER_OPTICS:
            assert getattr(recipe.optics, f.name) == getattr(Optics(), f.name), f.name
    assert Optics().n_focal == recipe.optics.n_focal == 15
    assert Detector().pixel_size_nm == recipe.detector.pixel_size_nm == 0.025
    assert settings_for(recipe) == SimulationSettings()


def test_a_drawn_sample_uses_each_recipe_value_and_checks_it_against_the_declaration():
    sim = parse_recipe({"format": 1, "name": "d", "version": "1.0.0", "description": "d", "seed": 1,
                        "generator": "simulation", "classes": {"amorphous": 1},
                        "simulation": {"optics": {"cs_um": [-5, 5], "n_focal": 9, "voltage_kv": 200,
                                                  "aperture_mrad": 25}}}).simulation
    draw = draw_sample(sim, "amorphous", np.random.default_rng(0))
    o = draw.optics
    assert (o.voltage_kv, o.n_focal, o.aperture_mrad) == (200, 9, 25) and -5 <= o.cs_um <= 5 and o.cs_um != 0
    assert isinstance(o.n_focal, int) and -4 <= o.defocus_nm <= 5
    with pytest.raises(ValueError, match=r"n_focal must be an integer >= 1 and <= 64, got 0"):
        Optics(n_focal=0)
    with pytest.raises(ValueError, match=r"defocus_nm must be a finite number \[nm\] >= -10000 and <= 10000"):
        Optics(defocus_nm=2e4)
    with pytest.raises(ValueError, match=r"aperture_mrad must be .* or None, got -1"):
        Optics(aperture_mrad=-1)


def test_a_ranged_recipe_field_is_held_to_the_declared_bounds():
    with pytest.raises(ValueError, match=r"focal_spread_nm: -1.0 is outside \[0, 100\]"):
        OpticsParams(focal_spread_nm=(-1.0, 2.0))
    with pytest.raises(ValueError, match=r"dose_e_per_A2: 0.0 is outside"):
        DetectorParams(dose_e_per_A2=0.0)


def test_particle_kinds_registry_feeds_the_recipe_defaults_and_checks():
    weights = default_kind_weights()
    assert list(weights) == ["amorphous", "monocrystalline", "polycrystalline"]
    assert {k for w in weights.values() for k in w} == {k for k in KINDS if KINDS[k].default_weight > 0}
    assert SimulationParams().particle.kinds == weights
    with pytest.raises(ValueError, match="kind .* label must be one of"):
        ParticleKind("cube", "nanocrystalline", KINDS["sphere"].positions, 1.2, 0.0)


def test_a_kind_added_to_the_registry_is_built_and_accepted_by_recipes(monkeypatch):
    """A new kind is one entry in KINDS: build_particle and the recipes' checks pick it up."""
    big = ParticleKind("big_sphere", "monocrystalline", KINDS["sphere"].positions, 1.15, 0.0)
    monkeypatch.setitem(KINDS, "big_sphere", big)
    atoms = build_particle("big_sphere", "Au", 20.0, np.random.default_rng(0))
    assert atoms.info["kind"] == "big_sphere" and atoms.info["label"] == "monocrystalline"
    assert len(atoms) == len(build_particle("sphere", "Au", 20.0, np.random.default_rng(0)))
    params = SimulationParams(particle={"kinds": {"monocrystalline": {"big_sphere": 1.0}}})
    assert params.particle.kinds["monocrystalline"] == {"big_sphere": 1.0}
    with pytest.raises(ValueError, match="'big_sphere' is not a polycrystalline kind"):
        SimulationParams(particle={"kinds": {"polycrystalline": {"big_sphere": 1.0}}})


def test_generators_registry_matches_the_recipe_models():
    tags = set()
    for member in typing.get_args(typing.get_args(Recipe)[0]):
        tags |= set(typing.get_args(member.model_fields["generator"].annotation))
    assert tags == set(GENERATORS)
    for name, module in GENERATORS.items():
        assert isinstance(module, Generator), name


def test_backends_registry_answers_what_the_orchestration_asks():
    assert set(typing.get_args(SimulationParams.model_fields["backend"].annotation)) == set(BACKENDS)
    for name in BACKENDS:
        cls = backend_class(name)
        assert cls.name == name
        assert all(callable(getattr(cls, m, None)) for m in ("version", "device", "image_shape", "simulate"))
        assert len(cls.image_shape((600, 600), (0.1, 0.1), [Optics(aperture_mrad=30.0)])) == 2
    backend = get_backend("multislice", device="cpu")
    assert backend.device() == "cpu"
    assert backend_class("multislice").image_shape((600, 600), (0.1, 0.1), [Optics(aperture_mrad=30.0)]) < (600, 600)
    with pytest.raises(DatagenError, match=r"backend multislice: no option bin_dir \(its options: device, "):
        get_backend("multislice", bin_dir="/opt")
