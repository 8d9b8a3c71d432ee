"""Projected potentials, the grid and slicing rules, and thermal displacements: physics checks."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from ase import Atoms
from scipy import constants as _c
from scipy.integrate import quad
from scipy.special import j0

from datagen.simulate import phonons
from datagen.simulate.grid import Grid, common_cell, grid_for_cell, slice_count, slice_index
from datagen.simulate.potentials import (SCATTERING_TO_POTENTIAL, frequency_extent, spectrum_frequencies, band_limit,
                                         form_factors, gridded_structure_factors, parameters, projected_form_factor,
                                         projected_potential, scattering_factor, slice_potentials, structure_factors)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_tables_cite_their_source_and_hold_all_elements():
    from importlib.resources import files

    for name, shape, author in (("lobato", (2, 5), "Lobato"), ("kirkland", (4, 3), "Kirkland")):
        raw = json.loads((files("datagen.simulate") / "data" / f"{name}.json").read_text(encoding="utf-8"))
        assert author in raw["source"] and "units" in raw
        table = parameters(name)
        assert len(table) == 103 and table["Au"].shape == shape


def test_conversion_constant_is_h2_over_2pi_m0_e():
    # 2π a0 e/(4πε0) = 2π · 0.529177 Å · 14.39964 V·Å = 47.878 V·Å² (Kirkland 2010, eq. 5.8 ff.)
    assert SCATTERING_TO_POTENTIAL == pytest.approx(2 * math.pi * _c.physical_constants["Bohr radius"][0] * 1e10
                                                    * _c.e / (4 * math.pi * _c.epsilon_0) * 1e10, rel=1e-9)
    assert SCATTERING_TO_POTENTIAL == pytest.approx(47.878, abs=2e-3)


@pytest.mark.parametrize("element", ["C", "Si", "Au"])
def test_two_parametrizations_fit_the_same_scattering_factor(element):
    k = np.array([0.0, 0.25, 0.5, 1.0, 2.0, 4.0])
    lob, kirk = scattering_factor(element, k, "lobato"), scattering_factor(element, k, "kirkland")
    np.testing.assert_allclose(lob, kirk, rtol=0.01)
    assert np.all(np.diff(lob) < 0)


@pytest.mark.parametrize("parametrization", ["lobato", "kirkland"])
@pytest.mark.parametrize("element", ["C", "Au"])
def test_real_space_projection_is_the_hankel_transform_of_the_form_factor(parametrization, element):
    def hankel(k):
        def integrand(r):
            v = projected_potential(element, np.array([r]), parametrization)[0]
            return 2 * math.pi * r * v * j0(2 * math.pi * k * r)
        return quad(integrand, 0, 40, limit=800, points=[0.01, 0.1, 1.0])[0]

    for k in (0.0, 0.5, 1.5):
        assert hankel(k) == pytest.approx(projected_form_factor(element, np.array([k]), parametrization)[0], rel=2e-4)


def test_single_atom_through_the_wave_band_limit_matches_the_hankel_transform():
    atoms = Atoms("Au", positions=[[10.013, 9.987, 0.7]], cell=[20.0, 20.0, 2.0])
    v = slice_potentials(atoms, 0.05, 2.0, dtype=torch.float64)[0].numpy()
    grid = grid_for_cell((20.0, 20.0), 0.05)
    kmax = band_limit(grid)
    k = np.hypot(np.fft.fftfreq(400, 0.05)[:, None], np.fft.fftfreq(400, 0.05)[None])
    seen = np.fft.ifft2(np.fft.fft2(v) * (k <= kmax)).real  # what the wave's aperture lets through

    def band_limited(r):  # V(r) = 2π ∫_0^kmax F(k) J0(2πkr) k dk: the analytic atom through the same aperture
        return quad(lambda k: 2 * math.pi * k * projected_form_factor("Au", np.array([k]))[0] * j0(2 * math.pi * k * r),
                    0, kmax, limit=500)[0]

    y, x = np.meshgrid(np.arange(400) * 0.05, np.arange(400) * 0.05, indexing="ij")
    r = np.hypot(x - 10.013, y - 9.987)
    for i, j in np.argwhere((r > 0.1) & (r < 1.2))[::151]:
        assert seen[i, j] == pytest.approx(band_limited(r[i, j]), rel=0.01, abs=0.3)
    assert np.unravel_index(np.argmax(v), v.shape) == (200, 200)
    # the slice's integral is the form factor at k = 0 (an exact Fourier component)
    assert v.sum() * 0.05**2 == pytest.approx(projected_form_factor("Au", np.array([0.0]))[0], rel=1e-9)


def test_slice_potential_is_the_exact_fourier_sum_up_to_nyquist():
    rng = np.random.default_rng(3)
    cell = [6.4, 4.9, 3.0]
    atoms = Atoms("CCAuSiC", positions=rng.random((5, 3)) * [6.4, 4.9, 1.4], cell=cell)
    v = slice_potentials(atoms, 0.2, 2.0, parametrization="kirkland", dtype=torch.float64)
    grid = grid_for_cell(cell[:2], 0.2)
    assert v.shape == (2,) + grid.gpts and grid.gpts == (25, 32)
    ky = np.fft.fftfreq(grid.gpts[0], grid.sampling[0])[:, None]
    kx = np.fft.fftfreq(grid.gpts[1], grid.sampling[1])[None, :]
    k = np.hypot(ky, kx)
    inside = (np.abs(ky) < 0.5 / grid.sampling[0] - 1e-9) & (np.abs(kx) < 0.5 / grid.sampling[1] - 1e-9)
    y, x = np.meshgrid(np.arange(25) * grid.sampling[0], np.arange(32) * grid.sampling[1], indexing="ij")
    expected = np.zeros(grid.gpts)
    for (px, py, _), z in zip(atoms.positions, atoms.numbers):
        f = projected_form_factor(int(z), k, "kirkland") * inside
        spectrum = f * np.exp(-2j * np.pi * (ky * py + kx * px))
        expected += np.fft.ifft2(spectrum).real / (grid.sampling[0] * grid.sampling[1])
    np.testing.assert_allclose(v[0].numpy(), expected, atol=1e-9 * np.abs(expected).max())
    assert np.all(v[1].numpy() == 0)


def test_structure_factors_of_padding_are_zero_and_of_one_atom_are_a_phase_ramp():
    grid = Grid.from_any(extent=(8.0, 8.0), sampling=0.25)
    band = frequency_extent(grid)
    fy = torch.tensor([[0.3, 0.9]], dtype=torch.float64)
    fx = torch.tensor([[0.7, 0.1]], dtype=torch.float64)
    s = structure_factors(fy, fx, torch.tensor([[1.0, 0.0]], dtype=torch.float64), band)
    ky, kx = spectrum_frequencies(grid)
    expected = np.exp(-2j * np.pi * (ky[:, None] * 0.3 * 8 + kx[None] * 0.7 * 8))
    np.testing.assert_allclose(s[0].numpy(), expected, atol=1e-12)


def test_debye_waller_damping_is_the_average_over_gaussian_displacements():
    grid = Grid.from_any(extent=(10.0, 10.0), sampling=0.1)
    sigma = 0.09
    damped = form_factors((79,), grid, sigmas=(sigma,), dtype=torch.float64)[0].numpy()
    static = form_factors((79,), grid, dtype=torch.float64)[0].numpy()
    rng = np.random.default_rng(0)
    u = rng.normal(scale=sigma, size=(1, 20000, 2)) / 10.0
    mean_sf = structure_factors(torch.tensor(0.5 + u[..., 1]), torch.tensor(0.5 + u[..., 0]),
                                torch.full((1, 20000), 1 / 20000, dtype=torch.float64), frequency_extent(grid))[0]
    ky, kx = spectrum_frequencies(grid)
    centre = np.exp(-2j * np.pi * (ky[:, None] * 5.0 + kx[None] * 5.0))
    np.testing.assert_allclose((static * mean_sf.numpy() / centre).real, damped, atol=0.004 * static.max())


def test_form_factors_cover_the_grid_up_to_nyquist():
    grid = Grid.from_any(extent=(12.0, 9.0), sampling=(0.1, 0.15))
    f = form_factors((6,), grid, dtype=torch.float64)[0].numpy()
    ky, kx = spectrum_frequencies(grid)
    assert f.shape == (119, 30) and ky.max() == pytest.approx(59 / 12.0) and kx.max() == pytest.approx(29 / 9.0)
    np.testing.assert_allclose(f, projected_form_factor("C", np.hypot(ky[:, None], kx[None])), rtol=1e-12)
    assert band_limit(grid) == pytest.approx(2 / 3 * 0.5 / 0.15)


def test_grid_any_two_fix_the_third_with_abtems_ceil_rule():
    g = Grid.from_any(extent=61.23, sampling=0.07)
    assert g.gpts == (875, 875) and g.sampling[0] == pytest.approx(61.23 / 875) and g.sampling[0] <= 0.07
    assert Grid.from_any(gpts=(100, 50), sampling=(0.1, 0.2)).extent == pytest.approx((10.0, 10.0))
    assert Grid.from_any(extent=(10.0, 5.0), gpts=(200, 100)).sampling == pytest.approx((0.05, 0.05))
    assert grid_for_cell((30.0, 20.0), 0.1).gpts == (200, 300)
    with pytest.raises(ValueError, match="two of extent, gpts and sampling"):
        Grid.from_any(extent=10.0)
    with pytest.raises(ValueError, match="sampling"):
        Grid.from_any(extent=10.0, sampling=-0.1)


def test_slicing_rule_and_boundaries():
    n, dz = slice_count(60.0, 2.0)
    assert (n, dz) == (30, 2.0)
    assert slice_count(61.0, 2.0) == (31, pytest.approx(61.0 / 31))
    z = np.array([0.0, 1.999, 2.0, 59.999, 60.0, -0.5, 61.0])
    np.testing.assert_array_equal(slice_index(z, 60.0, 30), [0, 0, 1, 29, 0, 29, 0])
    with pytest.raises(ValueError, match="slice_thickness_A"):
        slice_count(10.0, 0.0)


def test_cells_must_agree_and_be_orthogonal():
    a = Atoms("C", positions=[[1, 1, 1]], cell=[10, 10, 10])
    assert common_cell([a, a.copy()]) == (10.0, 10.0, 10.0)
    with pytest.raises(ValueError, match=r"models\[1\]"):
        common_cell([a, Atoms("C", cell=[10, 11, 10])])
    with pytest.raises(ValueError, match="orthogonal"):
        common_cell([Atoms("C", cell=[[10, 0, 0], [1, 10, 0], [0, 0, 10]])])


def test_unknown_parametrization_or_element_names_the_culprit():
    with pytest.raises(ValueError, match="parametrization"):
        scattering_factor("C", np.array([0.0]), "peng")
    with pytest.raises(ValueError, match="'Xx'"):
        scattering_factor("Xx", np.array([0.0]))


def test_debye_model_limits_and_gold_at_room_temperature():
    hbar, kb = _c.hbar, _c.k
    m = 196.96657 * _c.atomic_mass
    theta = phonons.DEBYE_TEMPERATURE_K["Au"]
    zero_point = math.sqrt(3 * hbar**2 / (4 * m * kb * theta)) * 1e10
    assert phonons.rms_displacement("Au", 0.5) == pytest.approx(zero_point, rel=1e-3)
    classical = math.sqrt(3 * hbar**2 * 3000 / (m * kb * theta**2)) * 1e10
    assert phonons.rms_displacement("Au", 3000) == pytest.approx(classical, rel=2e-3)
    u = phonons.rms_displacement("Au")
    assert 0.085 < u < 0.095 and 8 * math.pi**2 * u**2 == pytest.approx(0.63, abs=0.02)
    assert phonons.rms_displacement("C") < phonons.rms_displacement("Si") < u
    with pytest.raises(ValueError, match="'Xe'"):
        phonons.rms_displacement("Xe")


def test_displaced_positions_have_the_tabulated_spread():
    rng = np.random.default_rng(5)
    table = phonons.displacement_table([79, 6], sigmas={"C": 0.05})
    assert table[6] == 0.05 and table[79] == pytest.approx(phonons.rms_displacement("Au"))
    numbers = np.array([79] * 4000 + [6] * 4000)
    d = phonons.displaced_positions(np.zeros((8000, 3)), numbers, table, rng)
    assert d[:4000].std() == pytest.approx(table[79], rel=0.03)
    assert d[4000:].std() == pytest.approx(0.05, rel=0.03)


def test_gaussian_gridding_equals_the_exact_structure_factors():
    grid = Grid.from_any(extent=(24.0, 30.0), sampling=(0.08, 0.1))
    extent = frequency_extent(grid)
    rng = np.random.default_rng(9)
    fy, fx = torch.tensor(rng.random((2, 300))), torch.tensor(rng.random((2, 300)))
    weight = torch.ones((2, 300), dtype=torch.float64)
    weight[1, 250:] = 0.0
    exact = structure_factors(fy, fx, weight, extent)
    gridded = gridded_structure_factors(fy, fx, weight, grid, extent, block=128)
    ky, kx = spectrum_frequencies(grid)
    error = torch.abs(gridded - exact) / 300
    inside = np.hypot(ky[:, None], kx[None]) <= band_limit(grid)
    assert error[:, inside].max() < 3e-5
    below = (np.abs(ky[:, None]) * 0.08 <= 0.4) & (np.abs(kx[None]) * 0.1 <= 0.4)  # 0.8 Nyquist
    assert error[:, below].max() < 2e-3
    assert torch.allclose(exact[1, 0, 0], torch.tensor(250.0, dtype=torch.complex128))
