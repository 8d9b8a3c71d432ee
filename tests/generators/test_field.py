"""The field generator: many particles on one film, with an instance image and a table per particle."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import zarr

from datagen.errors import StoreError
from datagen.generators import field as field_gen
from datagen.plan import sample_rng
from datagen.recipe import parse_recipe
from datagen.run import generate
from datagen.simulate.detector import gaussian_blur, quantize_8bit
from datagen.store import Store, open_samples
from datagen.structures.field import FieldLayout, place_particles
from datagen.structures.particles import build_particle
from tests.conftest import FIELD_TINY

FIELD = FIELD_TINY


@pytest.fixture(scope="module")
def fields(tmp_path_factory):
    out = tmp_path_factory.mktemp("fields") / "f.zarr"
    generate(parse_recipe(FIELD), out, workers=0)
    return out


def test_instances_match_the_particle_table(fields):
    ds = open_samples(fields)
    assert ds.sizes["sample"] == 4 and ds.sizes["particle"] == field_gen.capacity(parse_recipe(FIELD))
    assert (ds.label.values == -1).all() and ds.label.attrs["flag_meanings"].startswith("mixed")
    for i in range(4):
        inst = ds.instances[i].values
        n = int(ds.n_particles[i])
        assert n >= 3
        classes = ds.particle_class[i].values
        assert (classes[:n] >= 0).all() and (classes[n:] == -1).all()  # slots beyond n are unused, and say so
        assert set(np.unique(inst)) - {0} <= set(range(1, n + 1))
        assert np.array_equal(ds["mask"][i].values, (inst > 0).astype(np.uint8))
        area = np.bincount(inst.ravel(), minlength=n + 1)[1:]
        assert np.array_equal(area[:n], ds.particle_area_px[i].values[:n])
        px = float(ds.pixel_size_nm[i])
        edge = set(np.unique(np.concatenate([inst[0], inst[-1], inst[:, 0], inst[:, -1]]))) - {0}
        for k in range(n):
            cut = bool(ds.particle_cut[i, k])
            assert cut == (k + 1 in edge)
            if not cut and area[k] > 0:  # the footprint is centred on the recorded centroid
                yy, xx = np.nonzero(inst == k + 1)
                assert abs(xx.mean() * px - float(ds.particle_x_nm[i, k])) < 0.15
                assert abs(yy.mean() * px - float(ds.particle_y_nm[i, k])) < 0.15
                d_mask = 2 * np.sqrt(area[k] / np.pi) * px
                assert 0.8 < d_mask / float(ds.particle_diameter_nm[i, k]) < 1.5  # atoms' radii widen it


def test_fields_hold_touching_and_cut_particles(fields):
    ds = open_samples(fields)
    used = ds.particle_class.values >= 0
    assert ds.particle_touching.values[used].sum() >= 2
    assert ds.particle_cut.values[used].sum() >= 1
    assert len(set(ds.particle_class.values[used].tolist())) == 3


def test_recording_varies_per_field_and_8bit_images_are_grey_levels(fields):
    ds = open_samples(fields)
    assert len(set(ds.pixel_size_nm.values.tolist())) == 4
    for i in range(4):
        img = ds.image[i].values
        if int(ds.eight_bit[i]):
            assert img.min() >= 0 and img.max() <= 255 and np.array_equal(img, np.rint(img))
        else:
            assert 0.3 < img.mean() < 1.5  # in units of the vacuum intensity


def test_a_field_does_not_depend_on_chunking(fields, tmp_path):
    data = copy.deepcopy(FIELD)
    data["chunk_size"] = 3
    out = tmp_path / "g.zarr"
    generate(parse_recipe(data), out, workers=0)
    a, b = open_samples(fields), open_samples(out)
    for name in ("image", "instances", "particle_class", "particle_x_nm", "dose_e_per_A2"):
        np.testing.assert_array_equal(a[name].values, b[name].values)


def test_a_deleted_field_chunk_is_refused_and_repaired(fields, tmp_path):
    import shutil

    copy_path = tmp_path / "f.zarr"
    shutil.copytree(fields, copy_path)
    before = Store.open(copy_path).content_sha256()
    chunk = next((copy_path / "samples" / "instances" / "c").rglob("*"))
    while chunk.is_dir():
        chunk = next(chunk.iterdir())
    chunk.unlink()
    with pytest.raises(StoreError, match=r"chunk 0 is corrupt .*rewrites it"):
        open_samples(copy_path).instances.values
    generate(parse_recipe(FIELD), copy_path, workers=0)
    assert Store.open(copy_path).content_sha256() == before


def test_placement_alone_keeps_spacing_and_touching_touches():
    rng = np.random.default_rng(3)
    parts = [build_particle("sphere", "Au", d, rng) for d in rng.uniform(10, 20, 12)]
    radius = [float(np.hypot(*(p.positions[:, :2] - p.positions[:, :2].mean(0)).T).max()) for p in parts]
    alone = place_particles(parts, FieldLayout(field=(200.0, 200.0), guard=12.0, spacing=4.0,
                                               touching_probability=0.0), rng)
    pts = [(c, r) for c, r in zip(alone, radius) if c is not None]
    assert len(pts) == 12
    gaps = [np.hypot(*(a - b)) - ra - rb for i, (a, ra) in enumerate(pts) for b, rb in pts[i + 1:]]
    assert min(gaps) >= 4.0 - 1e-9
    touching = place_particles(parts, FieldLayout(field=(200.0, 200.0), guard=12.0, contact=(0.0, 1.0),
                                                  touching_probability=1.0), rng)
    pts = [(c, r) for c, r in zip(touching, radius) if c is not None]
    for i, (a, ra) in enumerate(pts[1:], start=1):  # each after the first touches one placed before it
        nearest = min(np.hypot(*(a - b)) - ra - rb for b, rb in pts[:i])
        assert -1e-9 <= nearest <= 1.0 + 1e-9
    # centres stay in the field; none wraps across the box
    assert all(12.0 <= c[0] <= 212.0 and 12.0 <= c[1] <= 212.0 for c, _ in pts)


def test_draws_follow_the_recipe():
    recipe = parse_recipe(FIELD)
    draws = [field_gen.draw_field(recipe.field, sample_rng(recipe.seed, i)) for i in range(40)]
    px = np.array([d.pixel_size_nm for d in draws])
    assert px.min() >= 0.06 and px.max() <= 0.08
    for d in draws:
        area = (72 * d.pixel_size_nm) ** 2 / 100
        assert 20 * area - 1 <= len(d.particles) <= 30 * area + 1
        assert d.guard_px * d.pixel_size_nm >= 1.0
    assert 0 < sum(d.eight_bit for d in draws) < 40 and 0 < sum(d.blur_px > 0 for d in draws) < 40
    doses = [d.detector.dose_e_per_A2 for d in draws if d.detector.dose_e_per_A2 is not None]
    assert min(doses) >= 20 and max(doses) <= 5000


def test_blur_and_8bit_saving():
    rng = np.random.default_rng(0)
    noise = rng.normal(size=(256, 256))
    for sigma in (1.0, 2.0):  # white noise through a Gaussian of sigma px: variance 1/(4 pi sigma^2)
        assert gaussian_blur(noise, sigma).var() == pytest.approx(1 / (4 * np.pi * sigma**2), rel=0.1)
    assert np.array_equal(gaussian_blur(noise, 0.0), noise.astype(np.float32))
    q = quantize_8bit(noise, 1.0)
    assert set(np.unique(q)) <= set(range(256)) and q.min() == 0 and q.max() == 255
    assert (q == 0).mean() == pytest.approx(0.01, abs=0.002) and (q == 255).mean() == pytest.approx(0.01, abs=0.002)


def test_field_recipes_refuse_class_counts():
    data = copy.deepcopy(FIELD)
    data["classes"] = {"amorphous": 3}
    from datagen.errors import RecipeError

    with pytest.raises(RecipeError, match="counts fields"):
        parse_recipe(data)
    data = copy.deepcopy(FIELD)
    data["field"]["guard_nm"] = 0.5
    with pytest.raises(RecipeError, match="guard_nm: must hold the widest particle"):
        parse_recipe(data)


def test_classifier_refuses_a_field_store(fields):
    from classifier.data import Preprocessing, load_cutouts
    from classifier.errors import ClassifierError

    with pytest.raises(ClassifierError, match="a dataset of fields"):
        load_cutouts(fields, "all", "three", Preprocessing())


def test_zarr_sees_the_per_particle_dimension(fields):
    g = zarr.open_group(fields / "samples", mode="r")
    assert g["particle_class"].metadata.dimension_names == ("sample", "particle")


def test_a_rough_film_keeps_its_mean_thickness_and_varies_by_its_rms():
    from datagen.structures.support import build_support, roughen

    rng = np.random.default_rng(4)
    film = build_support("C", 100.0, 100.0, 40.0 + 2.5 * 5.0, rng)
    rough = roughen(film, 5.0, 15.0, rng)
    assert rough.info["mean_thickness"] == pytest.approx(40.0, abs=3.0)
    # the local top surface (highest atom per 10 x 10 Å column) varies with about the rms asked for
    cols = (rough.positions[:, 0] // 10).astype(int) * 10 + (rough.positions[:, 1] // 10).astype(int)
    tops = np.array([rough.positions[cols == c, 2].max() for c in np.unique(cols)])
    assert 2.5 < tops.std() < 7.5
    assert len(rough) < len(film) and rough.positions[:, 2].min() == film.positions[:, 2].min()
