"""Multislice physics: vacuum, weak-phase limit, Fresnel propagation, batching, chunking, frozen phonons.

Every test runs on the CPU and, where present, on CUDA (``device`` parameter).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from ase import Atoms
from ase.cluster import Octahedron
from scipy.integrate import quad
from scipy.special import j0

from datagen.simulate.energy import electron_wavelength, interaction_constant
from datagen.simulate.grid import Grid, grid_for_cell
from datagen.simulate.multislice import antialias_aperture, exit_waves, fresnel_propagator, transmission_function
from datagen.simulate.params import SimulationSettings
from datagen.simulate.potentials import band_limit, projected_form_factor



pytestmark = pytest.mark.usefixtures("one_torch_thread")


def settings(device, **kw) -> SimulationSettings:
    return SimulationSettings(**{"sampling_A": 0.1, "slice_thickness_A": 2.0, "device": device, **kw})


def gold_cluster(shift=(10.0, 10.0, 6.0), cell=(20.0, 20.0, 12.0)) -> Atoms:
    atoms = Octahedron("Au", 4, cutoff=1)
    atoms.positions += np.asarray(shift) - atoms.positions.mean(0)
    atoms.cell, atoms.pbc = cell, True
    return atoms


def carbon(n, rng, cell=(20.0, 20.0, 12.0)) -> Atoms:
    return Atoms(f"C{n}", positions=rng.random((n, 3)) * cell, cell=cell, pbc=True)


def test_wavelength_and_interaction_constant_at_300_kv():
    assert electron_wavelength(300.0) * 100 == pytest.approx(1.9687, abs=5e-5)  # [pm]
    assert interaction_constant(300.0) == pytest.approx(6.5262e-4, rel=1e-4)  # Kirkland (2010) table 5.2


def test_vacuum_exit_wave_is_the_unit_plane_wave(device):
    waves, sampling = exit_waves([Atoms(cell=[12.0, 8.0, 10.0])], settings(device), 300.0)
    assert waves.shape == (1, 1, 80, 120) and waves.dtype == torch.complex64
    assert waves.device.type == device and sampling == pytest.approx((0.1, 0.1))
    assert torch.all(waves == 1)


def test_propagation_keeps_the_norm_of_a_band_limited_wave(device):
    grid = Grid.from_any(extent=(16.0, 12.0), sampling=0.1)
    k = torch.sqrt(grid.k2(device=device))
    rng = torch.Generator(device="cpu").manual_seed(1)
    spectrum = torch.randn(grid.gpts, generator=rng, dtype=torch.complex128).to(device)
    spectrum *= k < 0.9 * band_limit(grid)
    psi = torch.fft.ifft2(spectrum)
    norm = torch.linalg.vector_norm(psi)
    p = fresnel_propagator(grid, 2.0, 300.0, device, torch.float64)
    for _ in range(50):
        psi = torch.fft.ifft2(torch.fft.fft2(psi) * p)
    assert torch.linalg.vector_norm(psi) == pytest.approx(norm.item(), rel=1e-10)
    assert not torch.allclose(psi, torch.fft.ifft2(spectrum))


def test_propagator_is_a_band_limited_unit_phase_and_composes(device):
    grid = Grid.from_any(extent=(10.0, 14.0), sampling=0.05)
    a = antialias_aperture(grid, device, torch.float64)
    p1 = fresnel_propagator(grid, 1.5, 300.0, device, torch.float64)
    p2 = fresnel_propagator(grid, 2.5, 300.0, device, torch.float64)
    p12 = fresnel_propagator(grid, 4.0, 300.0, device, torch.float64, aperture_power=2)
    torch.testing.assert_close(p1.abs(), a)
    torch.testing.assert_close(p1 * p2, p12)
    k2 = grid.k2(device=device)
    inside = a == 1
    phase = torch.angle(fresnel_propagator(grid, 1.5, 300.0, device, torch.float64, aperture_power=0))
    expected = torch.remainder(-math.pi * electron_wavelength(300.0) * 1.5 * k2 + math.pi, 2 * math.pi) - math.pi
    torch.testing.assert_close(phase[inside], expected[inside])
    k = torch.sqrt(k2)
    assert torch.all(a[k > band_limit(grid)] == 0) and torch.all(a[k < band_limit(grid) - 0.01 / 0.05] == 1)


def test_gaussian_beam_spreads_as_fresnel_diffraction_predicts(device):
    grid = Grid.from_any(extent=(48.0, 48.0), sampling=0.1)
    y = torch.arange(480, device=device, dtype=torch.float64) * 0.1 - 24.0
    s0, z = 0.5, 1000.0  # RMS width of |ψ|² per axis [Å], distance [Å]
    psi = torch.exp(-(y[:, None] ** 2 + y[None] ** 2) / (4 * s0**2)).to(torch.complex128)
    out = torch.fft.ifft2(torch.fft.fft2(psi) * fresnel_propagator(grid, z, 300.0, device, torch.float64))
    intensity = out.abs() ** 2
    variance = (intensity.sum(1) * y**2).sum() / intensity.sum()
    expected = s0**2 + (electron_wavelength(300.0) * z / (4 * math.pi * s0)) ** 2
    assert variance.item() == pytest.approx(expected, rel=1e-3)
    assert intensity.sum().item() == pytest.approx((psi.abs() ** 2).sum().item(), rel=1e-9)


def test_thin_single_atom_slice_is_in_the_weak_phase_limit(device):
    atoms = Atoms("C", positions=[[5.013, 4.971, 0.2]], cell=[10.0, 10.0, 0.5])
    waves, _ = exit_waves([atoms], settings(device, sampling_A=0.05, slice_thickness_A=0.5), 300.0)
    grid = grid_for_cell((10.0, 10.0), 0.05)
    back = fresnel_propagator(grid, -0.5, 300.0, device, torch.float64, aperture_power=0)
    psi = torch.fft.ifft2(torch.fft.fft2(waves[0, 0].to(torch.complex128)) * back).cpu().numpy()
    sigma, kmax = interaction_constant(300.0), band_limit(grid)

    def weak_phase(r):  # σ V_z(r) of the analytic atom (Lobato) through the band limit, V = 2π ∫ F(k) J0(2πkr) k dk
        return sigma * quad(lambda k: 2 * math.pi * k * projected_form_factor("C", np.array([k]))[0]
                            * j0(2 * math.pi * k * r), 0, kmax, limit=500)[0]

    y, x = np.meshgrid(np.arange(200) * 0.05, np.arange(200) * 0.05, indexing="ij")
    r = np.hypot(x - 5.013, y - 4.971)
    assert 0.05 < psi.imag.max() < 0.3
    for i, j in np.argwhere((r > 0.2) & (r < 1.5))[::61]:
        assert psi.imag[i, j] == pytest.approx(weak_phase(r[i, j]), abs=3e-4, rel=0.015)
    assert np.abs(psi.real - 1).max() < psi.imag.max() ** 2  # amplitude changes only at second order


def test_exit_wave_loses_norm_only_to_the_band_limit(device):
    rng = np.random.default_rng(2)
    model = gold_cluster() + carbon(300, rng)
    waves, _ = exit_waves([model], settings(device), 300.0)
    mean = (waves.abs() ** 2).mean().item()
    assert 0.99 < mean <= 1 + 1e-5


def test_atom_at_x_y_lands_at_row_y_column_x(device):
    atoms = Atoms("C", positions=[[15.0, 4.0, 1.0]], cell=[20.0, 10.0, 2.0])
    waves, _ = exit_waves([atoms], settings(device, sampling_A=0.05, slice_thickness_A=2.0), 300.0)
    assert waves.shape[-2:] == (200, 400)
    centred = torch.roll(waves[0, 0], shifts=(-80, -300), dims=(0, 1))
    mirrored = torch.roll(torch.flip(centred, dims=(0, 1)), shifts=(1, 1), dims=(0, 1))
    torch.testing.assert_close(centred, mirrored, atol=1e-6, rtol=0)
    assert (centred - 1).abs()[0, 0] > 0.01


def test_batch_of_different_structures_equals_one_by_one(device):
    rng = np.random.default_rng(3)
    models = [gold_cluster(), carbon(200, rng), gold_cluster((7.0, 12.0, 3.0)) + carbon(100, rng),
              Atoms(cell=[20.0, 20.0, 12.0])]
    st = settings(device)
    batch, _ = exit_waves(models, st, 300.0)
    for i, model in enumerate(models):
        single, _ = exit_waves([model], st, 300.0)
        torch.testing.assert_close(batch[0, i], single[0, 0], atol=2e-5, rtol=0)
    assert not torch.allclose(batch[0, 0], batch[0, 1], atol=1e-3)


def test_splitting_the_batch_to_bound_memory_gives_the_same_waves(device):
    rng = np.random.default_rng(4)
    models = [gold_cluster() + carbon(150, rng) for _ in range(3)]
    whole, _ = exit_waves(models, settings(device, max_batch_bytes=2**30), 300.0)
    split, _ = exit_waves(models, settings(device, max_batch_bytes=2**20 + 1), 300.0)
    torch.testing.assert_close(split, whole, atol=2e-6, rtol=0)


def test_vacuum_before_the_specimen_changes_nothing_and_after_it_only_propagates(device):
    model = gold_cluster(cell=(20.0, 20.0, 12.0))
    st = settings(device)
    ref, _ = exit_waves([model], st, 300.0)
    padded = model.copy()
    padded.positions[:, 2] += 6.0
    padded.cell = (20.0, 20.0, 24.0)
    waves, _ = exit_waves([padded], st, 300.0)
    grid = grid_for_cell((20.0, 20.0), 0.1)
    tail = fresnel_propagator(grid, 6.0, 300.0, device, torch.float32, aperture_power=3)
    expected = torch.fft.ifft2(torch.fft.fft2(ref[0, 0]) * tail)
    torch.testing.assert_close(waves[0, 0], expected, atol=2e-5, rtol=0)


def test_frozen_phonons_are_seeded_and_average_to_the_debye_waller_wave(device):
    atoms = Atoms("Si", positions=[[5.0, 5.0, 0.25]], cell=[10.0, 10.0, 0.5])
    st = settings(device, sampling_A=0.05, slice_thickness_A=0.5, frozen_phonons=64)
    a, _ = exit_waves([atoms], st, 300.0, np.random.default_rng(7))
    b, _ = exit_waves([atoms], st, 300.0, np.random.default_rng(7))
    c, _ = exit_waves([atoms], st, 300.0, np.random.default_rng(8))
    assert a.shape == (64, 1, 200, 200)
    torch.testing.assert_close(a, b, atol=1e-6, rtol=0)  # CUDA scatter-adds may reorder sums
    assert not torch.allclose(a, c, atol=1e-3)
    assert not torch.allclose(a[0], a[1])
    dw, _ = exit_waves([atoms], settings(device, sampling_A=0.05, slice_thickness_A=0.5, debye_waller=True), 300.0)
    static, _ = exit_waves([atoms], settings(device, sampling_A=0.05, slice_thickness_A=0.5), 300.0)
    mean, norm = a.mean(0), torch.linalg.vector_norm
    # thermal smearing moves the average from the static wave to about the Debye-Waller wave
    # (exactly so only to first order in σV, and within the sampling noise of 64 configurations)
    assert norm(mean - dw[0]) < 0.6 * norm(mean - static[0])
    assert norm(mean - static[0]) == pytest.approx(norm(dw[0] - static[0]).item(), rel=0.25)


def test_invalid_requests_name_the_parameter():
    atoms = Atoms("C", positions=[[1.0, 1.0, 1.0]], cell=[5.0, 5.0, 5.0])
    with pytest.raises(ValueError, match="rng"):
        exit_waves([atoms], settings("cpu", frozen_phonons=2), 300.0)
    with pytest.raises(ValueError, match="debye_waller"):
        exit_waves([atoms], settings("cpu", frozen_phonons=2, debye_waller=True), 300.0, np.random.default_rng(0))
    with pytest.raises(ValueError, match="share one cell"):
        exit_waves([atoms, Atoms("C", cell=[5.0, 6.0, 5.0])], settings("cpu"), 300.0)
    with pytest.raises(ValueError, match="voltage_kv"):
        exit_waves([atoms], settings("cpu"), -1.0)
    with pytest.raises(ValueError, match="potential"):
        exit_waves([atoms], settings("cpu"), 300.0, potential="bilinear")


def test_transmission_function_is_a_unit_phase():
    v = torch.linspace(0, 500, 64, dtype=torch.float64).reshape(8, 8)
    t = transmission_function(v, 300.0)
    torch.testing.assert_close(t.abs(), torch.ones_like(v))
    torch.testing.assert_close(torch.angle(t[0, 1]), torch.tensor(interaction_constant(300.0) * v[0, 1].item(),
                                                                    dtype=torch.float64))
