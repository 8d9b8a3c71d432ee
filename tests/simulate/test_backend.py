"""Backends: the registry, the built-in multislice backend, and its agreement with the abTEM backend."""

from __future__ import annotations

import dataclasses

import sys

import numpy as np
import pytest
import torch
from ase import Atoms
from ase.cluster import Octahedron

from datagen.errors import DatagenError
from datagen.simulate.grid import resample
from datagen.simulate.imaging import band_limited_shape
from datagen.simulate.backends import get_backend
from datagen.simulate.backends.base import SimulationBackend
from datagen.simulate.backends.multislice import MultisliceBackend
from datagen.simulate.params import Optics, SimulationSettings

SMALL = SimulationSettings(sampling_A=0.2, slice_thickness_A=2.0, device="cpu")


def au_on_carbon(seed: int, side: float = 20.0) -> Atoms:
    """An Au octahedron (44 atoms) over 8 Å of random carbon, in a (side, side, 25) Å cell."""
    rng = np.random.default_rng(seed)
    particle = Octahedron("Au", 4)
    particle.rotate(rng.uniform(0, 360), "z")
    particle.positions += np.array([side / 2, side / 2, 12.0]) - particle.positions.mean(0)
    carbon = Atoms("C300", positions=rng.uniform((0, 0, 0), (side, side, 8.0), (300, 3)))
    atoms = Atoms(particle.numbers, positions=particle.positions) + carbon  # plain Atoms, not an ase Cluster
    atoms.cell, atoms.pbc = (side, side, 25.0), True
    return atoms


def test_registry_default_and_unknown_names():
    backend = get_backend()
    assert isinstance(backend, MultisliceBackend) and isinstance(backend, SimulationBackend)
    assert backend.name == "multislice" and "torch" in backend.version()
    with pytest.raises(DatagenError, match="known backends: abtem, drprobe, multislice"):
        get_backend("prism")


def test_abtem_backend_without_abtem_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "abtem", None)  # makes `import abtem` raise ImportError
    with pytest.raises(DatagenError, match=r"pip install \.\[abtem\]"):
        get_backend("abtem")


def test_multislice_backend_returns_float32_images_at_the_grid_sampling():
    carbon = Atoms("C", positions=[(3.0, 2.0, 5.0)], cell=(6.0, 4.0, 10.0), pbc=True)
    images, sampling = get_backend().simulate([carbon, carbon], [Optics(defocus_nm=-5, focal_spread_nm=4)], SMALL)
    assert images.dtype == np.float32 and images.shape == (2, 20, 30) and sampling == pytest.approx((0.2, 0.2))
    np.testing.assert_allclose(images.mean(axis=(1, 2)), 1.0, atol=1e-3)
    np.testing.assert_array_equal(images[0], images[1])


def test_multislice_backend_groups_by_voltage_and_splits_batches():
    models = [au_on_carbon(seed) for seed in range(3)]
    optics = [Optics(defocus_nm=-4.0), Optics(voltage_kv=200.0, defocus_nm=3.0, astig_x_nm=1.0),
              Optics(defocus_nm=-2.0, focal_spread_nm=5.0, n_focal=5)]
    together, _ = get_backend(batch_size=3).simulate(models, optics, SMALL)
    split, _ = get_backend(max_batch_bytes=2**21, batch_size=3).simulate(models, optics, SMALL)
    np.testing.assert_allclose(split, together, atol=1e-5)
    one_by_one, _ = get_backend().simulate(models, optics, SMALL)  # the CPU default: batch_size 1
    np.testing.assert_allclose(one_by_one, together, atol=1e-5)
    for i in range(3):
        alone, _ = get_backend().simulate([models[i]], [optics[i]], SMALL)
        np.testing.assert_allclose(alone[0], together[i], atol=1e-5)
    with pytest.raises(ValueError, match="batch_size"):
        get_backend(batch_size=0)


def test_frozen_phonon_images_do_not_depend_on_the_batching():
    """Each sample draws its displacements from its own generator spawned from the caller's rng: the
    same images in one batch and one by one, different from a static lattice and from another seed."""
    models = [au_on_carbon(seed) for seed in range(3)]
    optics = [Optics(defocus_nm=-4.0)] * 3
    phonons = dataclasses.replace(SMALL, frozen_phonons=2)
    batched, _ = get_backend(batch_size=3).simulate(models, optics, phonons, rng=np.random.default_rng(1))
    single, _ = get_backend(batch_size=1).simulate(models, optics, phonons, rng=np.random.default_rng(1))
    np.testing.assert_allclose(single, batched, atol=1e-5)
    other, _ = get_backend(batch_size=1).simulate(models, optics, phonons, rng=np.random.default_rng(2))
    static, _ = get_backend().simulate(models, optics, SMALL)
    for image in (other, static):
        assert np.abs(image - batched).max() > 1e-3


def test_multislice_backend_rejects_mismatched_optics():
    with pytest.raises(ValueError, match="optics"):
        get_backend().simulate([au_on_carbon(0)] * 3, [Optics()] * 2, SMALL)
    with pytest.raises(ValueError, match="models"):
        get_backend().simulate([], [Optics()], SMALL)


CASES = [
    Optics(defocus_nm=-3.0),
    Optics(defocus_nm=-4.0, focal_spread_nm=5.0, astig_x_nm=-1.0, astig_y_nm=2.5, n_focal=15),
    Optics(defocus_nm=2.0, focal_spread_nm=5.0, astig_x_nm=2.0, astig_y_nm=1.0, temporal_model="envelope"),
]
SETTINGS_005 = SimulationSettings(sampling_A=0.05, slice_thickness_A=2.0, parametrization="lobato", device="cpu")


def _compare(ours, reference):
    """(correlation, relative RMS ||a - b|| / ||b||) of two images."""
    correlation = np.corrcoef(ours.ravel(), reference.ravel())[0, 1]
    return correlation, float(np.linalg.norm(ours - reference) / np.linalg.norm(reference))


def test_multislice_and_abtem_backends_agree_end_to_end():
    """Au particle on carbon at 0.05 Å, with the catalogs' 30 mrad objective aperture: correlation
    >= 0.999 and relative RMS <= 2 %, coherent and with focal spread (both temporal models) and
    astigmatism. Measured: correlation >= 0.9998, relative RMS <= 0.31 %.

    Without an aperture the coherent image reaches only 0.997: abTEM deposits atoms bilinearly on
    pixels, which loses up to 40 % of an atom's spectrum near the 6.7 1/Å band limit, while we sum
    exact structure factors (closer to a 4x finer reference: tests/test_abtem_exitwave.py). The next
    test shows that with abTEM's deposition every other step agrees exactly, aperture or not."""
    pytest.importorskip("abtem", reason="abTEM not installed (pip install .[abtem]): end-to-end comparison skipped")
    cases = [dataclasses.replace(o, aperture_mrad=30.0) for o in CASES]
    models = [au_on_carbon(seed) for seed in range(len(cases))]
    ours, sampling = get_backend("multislice").simulate(models, cases, SETTINGS_005)
    reference, reference_sampling = get_backend("abtem").simulate(models, cases, SETTINGS_005)
    # ours come on the coarsest grid that holds the aperture-limited image (imaging.band_limited_shape)
    limited = band_limited_shape((400, 400), reference_sampling, cases)
    assert reference.shape == (len(cases), 400, 400) and ours.shape == (len(cases), *limited) and max(limited) < 200
    assert np.multiply(sampling, limited) == pytest.approx(np.multiply(reference_sampling, 400))
    reference = resample(torch.as_tensor(reference), limited).numpy()
    for optics, image, ref in zip(cases, ours, reference):
        correlation, error = _compare(image, ref)
        assert correlation >= 0.999 and error <= 0.02, (optics, correlation, error)


def test_with_abtems_atom_deposition_the_backends_agree_exactly():
    """No aperture, coherent and partially coherent: with abTEM's potential discretisation our
    propagation, CTF, focal averaging and envelopes reproduce abTEM's images to float32 precision."""
    pytest.importorskip("abtem", reason="abTEM not installed (pip install .[abtem]): end-to-end comparison skipped")
    models = [au_on_carbon(seed) for seed in range(len(CASES))]
    compatible = get_backend("multislice", potential="abtem", bandlimit_transmission=True)
    ours, _ = compatible.simulate(models, CASES, SETTINGS_005)
    reference, _ = get_backend("abtem").simulate(models, CASES, SETTINGS_005)
    for optics, image, ref in zip(CASES, ours, reference):
        correlation, error = _compare(image, ref)
        assert correlation >= 0.99999 and error <= 1e-4, (optics, correlation, error)
