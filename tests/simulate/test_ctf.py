"""The CTF: analytic zeros, Scherzer, neutral parts, and the sign conventions against abTEM."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from datagen.simulate import ctf as C
from datagen.simulate.energy import electron_wavelength

LAMBDA = electron_wavelength(300.0)
SHAPE, SAMPLING = (96, 128), (0.11, 0.09)  # (ny, nx), (sy, sx) [Å]: deliberately non-square


def grid(device="cpu", dtype=torch.float64):
    return C.frequency_grid(SHAPE, SAMPLING, device=device, dtype=dtype)


def test_ctf_zeros_underfocus_without_cs(device):
    defocus_nm = -100.0
    zeros = C.ctf_zeros(300.0, defocus_nm, cs_um=0.0, k_max=1.0)
    n = np.arange(1, len(zeros) + 1)
    np.testing.assert_allclose(zeros, np.sqrt(n / (LAMBDA * abs(defocus_nm) * 10)), rtol=1e-12)
    k = torch.as_tensor(zeros, device=device, dtype=torch.float64)
    chi = C.aberration_phase(k, torch.zeros_like(k), LAMBDA, defocus_nm=defocus_nm)
    np.testing.assert_allclose(torch.sin(chi).cpu().numpy(), 0, atol=1e-9)
    assert (chi < 0).all(), "underfocus (C1 < 0) gives a negative phase at small k"


def test_ctf_zeros_with_cs_and_amplitude_contrast():
    zeros = C.ctf_zeros(200.0, -50.0, cs_um=1000.0, k_max=0.8, phase_shift=0.07)
    k = torch.as_tensor(zeros, dtype=torch.float64)
    chi = C.aberration_phase(k, 0 * k, electron_wavelength(200.0), defocus_nm=-50.0, cs_um=1000.0)
    np.testing.assert_allclose(torch.sin(chi - 0.07).numpy(), 0, atol=1e-8)
    assert len(zeros) > 10 and np.all(np.diff(zeros) > 0)


def test_scherzer_defocus_matches_abtem_and_phase_minimum():
    abtem = pytest.importorskip("abtem", reason="abTEM not installed: pip install .[abtem]")
    cs_um = 1200.0
    c1 = C.scherzer_defocus(300.0, cs_um)
    assert c1 < 0, "Scherzer is underfocus for positive Cs"
    assert c1 == pytest.approx(-abtem.CTF(Cs=cs_um * 1e4, energy=300e3).scherzer_defocus / 10, rel=1e-6)
    k = torch.linspace(0, 0.6, 20001, dtype=torch.float64)
    chi = C.aberration_phase(k, 0 * k, LAMBDA, defocus_nm=c1, cs_um=cs_um)
    assert chi.min().item() == pytest.approx(-3 * math.pi / 4, rel=1e-6)


def test_parts_are_one_at_zero_frequency_and_neutral_parameters(device):
    kx, ky = grid(device)
    kwargs = dict(defocus_nm=-7.0, astig_x_nm=2.0, astig_y_nm=-1.0, cs_um=30.0)
    at_zero = C.ctf(kx[:, :1], ky[:1], LAMBDA, **kwargs, aperture_mrad=10.0, convergence_mrad=1.0,
                    focal_spread_nm=5.0, aperture_edge_dk=(0.1, 0.1))
    assert at_zero.item() == pytest.approx(1.0)
    assert torch.equal(C.spatial_envelope(kx, ky, LAMBDA, 0.0, **kwargs), torch.ones_like(kx * ky))
    assert torch.equal(C.temporal_envelope(kx, ky, LAMBDA, 0.0), torch.ones_like(kx * ky))
    assert torch.equal(C.aperture(kx, ky, LAMBDA, None), torch.ones_like(kx * ky))
    assert torch.equal(C.aperture(kx, ky, LAMBDA, math.inf), torch.ones_like(kx * ky))
    assert torch.allclose(C.ctf(kx, ky, LAMBDA).real, torch.ones_like(kx * ky))


def test_per_sample_parameters_broadcast_to_a_stack():
    kx, ky = grid()
    defocus = torch.tensor([-5.0, 0.0, 5.0], dtype=torch.float64)[:, None, None]
    spread = torch.tensor([0.0, 3.0, 6.0], dtype=torch.float64)[:, None, None]
    stack = C.ctf(kx, ky, LAMBDA, defocus_nm=defocus, focal_spread_nm=spread)
    assert stack.shape == (3, *SHAPE)
    for i in range(3):
        single = C.ctf(kx, ky, LAMBDA, defocus_nm=defocus[i].item(), focal_spread_nm=spread[i].item())
        torch.testing.assert_close(stack[i], single)


def test_gradient_is_the_derivative_of_chi():
    kx, ky = grid()
    kwargs = dict(defocus_nm=-7.0, astig_x_nm=2.0, astig_y_nm=-1.0, cs_um=300.0)
    gx, gy = C.aberration_gradient(kx, ky, LAMBDA, **kwargs)
    h = 1e-5
    fx = (C.aberration_phase(kx + h, ky, LAMBDA, **kwargs) - C.aberration_phase(kx - h, ky, LAMBDA, **kwargs)) / (2 * h)
    fy = (C.aberration_phase(kx, ky + h, LAMBDA, **kwargs) - C.aberration_phase(kx, ky - h, LAMBDA, **kwargs)) / (2 * h)
    torch.testing.assert_close(gx, fx, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(gy, fy, rtol=1e-6, atol=1e-6)


def test_astigmatism_components_match_the_documented_formula():
    kx, ky = grid()
    chi = C.aberration_phase(kx, ky, LAMBDA, astig_x_nm=1.5, astig_y_nm=-0.5)
    expected = math.pi * LAMBDA * 10 * (1.5 * (kx**2 - ky**2) + 2 * -0.5 * kx * ky)
    torch.testing.assert_close(chi, expected)


def test_focal_spread_is_the_gaussian_average_of_the_defocus_phase():
    kx, ky = grid()
    spread = 4.0  # 1/e half-width Δ [nm]: focus distribution exp(−f²/Δ²)
    f = torch.linspace(-6 * spread, 6 * spread, 4001, dtype=torch.float64)
    weights = torch.exp(-(f / spread) ** 2)
    k = torch.linspace(0, 1.5, 50, dtype=torch.float64)
    phases = torch.polar(torch.ones(len(f), len(k), dtype=torch.float64),
                         -C.aberration_phase(k[None], 0 * k[None], LAMBDA, defocus_nm=f[:, None]))
    average = (weights[:, None] * phases).sum(0) / weights.sum()
    envelope = C.temporal_envelope(k, 0 * k, LAMBDA, spread)
    torch.testing.assert_close(average.real, envelope, atol=1e-9, rtol=0)


def _abtem_ctf(abtem, **kwargs):
    """abTEM's CTF on our grid, through its public API: applied to a delta function, (ny, nx)."""
    (ny, nx), (sy, sx) = SHAPE, SAMPLING
    delta = np.zeros((nx, ny), complex)  # abTEM arrays are indexed (x, y)
    delta[0, 0] = 1
    waves = abtem.Waves(delta, energy=300e3, sampling=(sx, sy))
    return np.fft.fft2(waves.apply_ctf(abtem.CTF(**kwargs)).compute().array).T


CASES = [
    dict(defocus_nm=-5.0),
    dict(defocus_nm=3.0, astig_x_nm=2.0, astig_y_nm=-1.5),
    dict(defocus_nm=-2.0, astig_x_nm=-1.0, astig_y_nm=2.5, cs_um=-15.0),
    dict(defocus_nm=-4.0, focal_spread_nm=5.0),
    dict(defocus_nm=-4.0, astig_x_nm=1.0, astig_y_nm=0.5, cs_um=20.0, convergence_mrad=0.5),
    dict(defocus_nm=4.0, aperture_mrad=25.0),
]


@pytest.mark.parametrize("params", CASES, ids=lambda p: ",".join(f"{k}={v}" for k, v in p.items()))
def test_ctf_equals_abtem(params):
    """Defocus sign (abTEM defocus = −10·C1 [Å]), focal spread (same 1/e width), astigmatism
    (C12 = |A1|, phi12 = atan2(a1y, a1x)/2), angular spread and soft aperture, on one k grid."""
    abtem = pytest.importorskip("abtem", reason="abTEM not installed: pip install .[abtem]")
    ax, ay = params.get("astig_x_nm", 0.0), params.get("astig_y_nm", 0.0)
    reference = _abtem_ctf(
        abtem, defocus=-10 * params["defocus_nm"], Cs=params.get("cs_um", 0.0) * 1e4,
        astigmatism=10 * math.hypot(ax, ay), astigmatism_angle=math.atan2(ay, ax) / 2,
        focal_spread=10 * params.get("focal_spread_nm", 0.0), angular_spread=params.get("convergence_mrad", 0.0),
        semiangle_cutoff=params.get("aperture_mrad", np.inf))
    (ny, nx), (sy, sx) = SHAPE, SAMPLING
    kx, ky = grid()
    ours = C.ctf(kx, ky, LAMBDA, **params, aperture_edge_dk=(1 / (ny * sy), 1 / (nx * sx))).numpy()
    np.testing.assert_allclose(ours, reference, atol=3e-3)  # abTEM evaluates in float32
    if params["defocus_nm"] != 0:
        flipped = dict(params, defocus_nm=-params["defocus_nm"])
        assert np.abs(C.ctf(kx, ky, LAMBDA, **flipped).numpy() - reference).max() > 0.5


def test_hard_aperture_matches_abtem():
    abtem = pytest.importorskip("abtem", reason="abTEM not installed: pip install .[abtem]")
    reference = _abtem_ctf(abtem, semiangle_cutoff=20.0, soft=False)
    kx, ky = grid()
    np.testing.assert_allclose(C.ctf(kx, ky, LAMBDA, aperture_mrad=20.0).numpy(), reference, atol=1e-6)


def test_invalid_grid_arguments_raise_naming_the_parameter():
    with pytest.raises(ValueError, match="sampling"):
        C.frequency_grid((4, 4), (0.0, 0.1))
    with pytest.raises(ValueError, match="shape"):
        C.frequency_grid((0, 4), (0.1, 0.1))
    with pytest.raises(ValueError, match="cs_um"):
        C.scherzer_defocus(300.0, 0.0)
