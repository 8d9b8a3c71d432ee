"""Image formation: vacuum, focal averaging, the envelope model, batching, and abTEM on the same exit wave."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from datagen.simulate import imaging
from datagen.simulate.grid import resample
from datagen.simulate.imaging import band_limited_shape, focal_quadrature, form_images, work_shape
from datagen.simulate.params import Optics



def phase_object(shape=(64, 64), sampling=0.2, strength=0.02, seed=0, dtype=torch.complex128):
    """exp(i·φ) with φ a smooth random field of RMS ``strength`` [rad]: a weak phase object."""
    rng = np.random.default_rng(seed)
    noise = np.fft.fft2(rng.standard_normal(shape))
    k = np.hypot(*np.meshgrid(np.fft.fftfreq(shape[0], sampling), np.fft.fftfreq(shape[1], sampling), indexing="ij"))
    phase = np.fft.ifft2(noise * np.exp(-((k / 0.8) ** 2))).real
    phase *= strength / phase.std()
    return torch.as_tensor(np.exp(1j * phase), dtype=dtype)


def contrast_error(ours, reference):
    """RMS difference relative to the RMS contrast of the reference (stricter than relative to 1)."""
    ours, reference = np.asarray(ours, float), np.asarray(reference, float)
    return np.sqrt(np.mean((ours - reference) ** 2)) / reference.std()


def correlation(a, b):
    return np.corrcoef(np.ravel(a), np.ravel(b))[0, 1]


def test_quadrature_weights_sum_to_one_and_reproduce_the_focus_distribution():
    offsets, weights = focal_quadrature(7, 5.0)
    assert weights.sum() == pytest.approx(1.0)
    assert np.sum(weights * offsets) == pytest.approx(0.0, abs=1e-12)
    assert np.sum(weights * offsets**2) == pytest.approx(5.0**2 / 2)  # σ² = Δ²/2 for exp(−f²/Δ²)
    assert np.sum(weights * offsets**4) == pytest.approx(3 * (5.0**2 / 2) ** 2)
    assert focal_quadrature(7, 0.0) == (np.zeros(1), np.ones(1))
    with pytest.raises(ValueError, match="n_focal"):
        focal_quadrature(0, 5.0)


def test_vacuum_stays_one(device):
    vacuum = torch.ones((2, 3, 32, 48), dtype=torch.complex64, device=device)
    optics = [Optics(defocus_nm=-5, astig_x_nm=2, cs_um=1000, aperture_mrad=20, convergence_mrad=0.5,
                     focal_spread_nm=5, temporal_model=model) for model in ("focal_average", "envelope")]
    optics.append(Optics())
    images = form_images(vacuum, (0.1, 0.1), optics)
    assert images.shape == (3, 32, 48) and images.dtype == torch.float32 and images.device.type == device
    torch.testing.assert_close(images, torch.ones_like(images))


def test_defocus_sign_underfocus_shows_atoms_dark():
    """C1 < 0 (underfocus), Cs = 0: a positive phase bump (an atom) images darker than vacuum."""
    y, x = np.indices((64, 64)) - 32
    wave = torch.as_tensor(np.exp(0.05j * np.exp(-(x**2 + y**2) / (2 * 3.0**2))))
    under, over = form_images(wave.expand(1, 2, -1, -1), (0.2, 0.2), [Optics(defocus_nm=-5.0), Optics(defocus_nm=5.0)])
    assert under[32, 32] < 1 < over[32, 32]


@pytest.mark.parametrize("aperture_mrad, n_focal, tolerance", [(25.0, (3, 7, 11, 15), 1e-5),
                                                                (None, (3, 7, 15, 31), 0.03)])
def test_focal_average_converges_with_the_number_of_planes(aperture_mrad, n_focal, tolerance):
    """Gauss–Hermite focal averages approach a dense trapezoid average over exp(−f²/Δ²): fast where
    πλΔk² is moderate (here inside a 25 mrad aperture), slowly without an aperture."""
    wave = phase_object(strength=0.5)[None]
    spread, defocus = 5.0, -8.0
    f = np.linspace(-5 * spread, 5 * spread, 401)
    w = np.exp(-((f / spread) ** 2))
    dense = form_images(wave.expand(len(f), -1, -1), 0.2,
                        [Optics(defocus_nm=defocus + fi, aperture_mrad=aperture_mrad) for fi in f])
    reference = (torch.as_tensor(w / w.sum())[:, None, None] * dense).sum(0).numpy()
    errors = [contrast_error(form_images(wave, 0.2, [Optics(defocus_nm=defocus, focal_spread_nm=spread, n_focal=n,
                                                              aperture_mrad=aperture_mrad)])[0], reference)
              for n in n_focal]
    assert all(b < a for a, b in zip(errors, errors[1:])), errors
    assert errors[-1] < tolerance, errors


def test_envelope_equals_focal_average_in_the_weak_phase_limit():
    wave = phase_object(strength=0.01)[None]
    kwargs = dict(defocus_nm=-6.0, focal_spread_nm=4.0, astig_x_nm=1.0, cs_um=50.0)
    average = form_images(wave, 0.2, [Optics(**kwargs, n_focal=31)])[0].numpy()
    envelope = form_images(wave, 0.2, [Optics(**kwargs, temporal_model="envelope")])[0].numpy()
    assert contrast_error(envelope, average) < 0.02
    strong = phase_object(strength=1.0)[None]
    average = form_images(strong, 0.2, [Optics(**kwargs, n_focal=31)])[0].numpy()
    envelope = form_images(strong, 0.2, [Optics(**kwargs, temporal_model="envelope")])[0].numpy()
    assert contrast_error(envelope, average) > 0.05, "the two models should differ for a strong object"


def test_batch_chunks_and_frozen_phonons_equal_one_by_one():
    waves = torch.stack([torch.stack([phase_object(strength=0.3, seed=10 * f + b) for b in range(3)])
                         for f in range(2)])
    optics = [Optics(defocus_nm=-4, focal_spread_nm=3, n_focal=5), Optics(defocus_nm=2, astig_y_nm=1.5),
              Optics(defocus_nm=-1, focal_spread_nm=4, temporal_model="envelope", convergence_mrad=0.4)]
    batched = form_images(waves, 0.2, optics)
    chunked = form_images(waves, 0.2, optics, max_batch_bytes=1)
    torch.testing.assert_close(batched, chunked)
    for b in range(3):
        single = torch.stack([form_images(waves[f, b][None], 0.2, [optics[b]])[0] for f in range(2)]).mean(0)
        torch.testing.assert_close(batched[b], single)


def strong_object(shape, sampling, seed=0):
    """A strong phase-and-amplitude object with structure up to the 2/3 band limit (like an exit wave)."""
    rng = np.random.default_rng(seed)
    k = np.hypot(*np.meshgrid(np.fft.fftfreq(shape[0], sampling), np.fft.fftfreq(shape[1], sampling), indexing="ij"))
    field = np.fft.ifft2(np.fft.fft2(rng.standard_normal(shape) + 1j * rng.standard_normal(shape))
                         * (k < 2 / 3 / (2 * sampling)))
    return torch.as_tensor(np.exp(1j * 0.8 * field.real / field.real.std()) * (1 + 0.1 * field.imag / field.imag.std()),
                           dtype=torch.complex64)


def test_images_formed_on_a_coarser_grid_equal_the_full_grid_image_resampled(device, monkeypatch):
    """With an objective aperture the image is formed on a grid of 2m + n_out/2 + 1 points (m: the
    aperture's largest index) instead of the wave's: the result must equal the full-grid image
    Fourier-resampled, for every optics (astigmatism, both temporal models, spatial coherence,
    two voltages, frozen-phonon configurations), at the detector grid and at ``band_limited_shape``."""
    shape, sampling = (300, 280), (0.05, 0.05)
    waves = torch.stack([torch.stack([strong_object(shape, 0.05, seed=2 * f + b) for b in range(4)]) for f in range(2)])
    waves = waves.to(device)
    optics = [Optics(defocus_nm=-6.0, aperture_mrad=30.0),
              Optics(defocus_nm=4.0, astig_x_nm=2.5, astig_y_nm=-1.5, focal_spread_nm=5.0, n_focal=7,
                     aperture_mrad=25.0, convergence_mrad=0.3),
              Optics(defocus_nm=-2.0, focal_spread_nm=4.0, temporal_model="envelope", aperture_mrad=30.0),
              Optics(voltage_kv=80, defocus_nm=-3.0, cs_um=-15.0, aperture_mrad=20.0)]
    with monkeypatch.context() as m:  # the reference: every image formed on the wave's own grid
        m.setattr(imaging, "work_shape", lambda shape, *args: tuple(shape))
        full = form_images(waves, sampling, optics)
    spectrum = torch.fft.fft2(full[0]).abs().cpu()
    assert spectrum[31:-31, :].max() > 1e-3 * spectrum[1:].max()  # image frequencies beyond the output band
    for shape_out in [(60, 56), band_limited_shape(shape, sampling, optics)]:
        work = work_shape(shape, sampling, optics, shape_out)
        assert work[0] < shape[0] / 2 and work[1] < shape[1] / 2  # the coarse path is taken
        coarse = form_images(waves, sampling, optics, shape=shape_out)
        reference = resample(full, shape_out)
        assert coarse.shape == (4, *shape_out)
        assert torch.allclose(coarse, reference, rtol=0, atol=2e-5 * float(reference.abs().max())), shape_out
    # the band-limited grid holds the whole image: resampled on to the detector it gives the same
    limited = form_images(waves, sampling, optics, shape=band_limited_shape(shape, sampling, optics))
    assert torch.allclose(resample(limited, shape), full, rtol=0, atol=2e-5 * float(full.max()))  # nothing lost
    assert torch.allclose(resample(limited, (60, 56)), resample(full, (60, 56)), rtol=0, atol=2e-5 * float(full.max()))
    # a grid too small for the image's band: still the resampled full image, no alias
    small = form_images(waves, sampling, optics, shape=(24, 24))
    assert torch.allclose(small, resample(full, (24, 24)), rtol=0, atol=2e-5 * float(full.max()))
    # without an aperture nothing is cut
    no_aperture = [Optics(defocus_nm=-6.0)] * 4
    assert work_shape(shape, sampling, no_aperture, (60, 56)) == shape
    assert band_limited_shape(shape, sampling, no_aperture) == shape


def test_invalid_arguments_raise_naming_the_parameter():
    wave = torch.ones((1, 1, 8, 8), dtype=torch.complex64)
    with pytest.raises(ValueError, match="exit_waves"):
        form_images(torch.ones((1, 1, 8, 8)), 0.1, [Optics()])
    with pytest.raises(ValueError, match="optics"):
        form_images(torch.ones((1, 2, 8, 8), dtype=torch.complex64), 0.1, [Optics()] * 3)
    with pytest.raises(ValueError, match="sampling"):
        form_images(wave, (0.1, -0.1), [Optics()])
    with pytest.raises(ValueError, match="max_batch_bytes"):
        form_images(wave, 0.1, [Optics()], max_batch_bytes=0)


# --- the same exit wave through abTEM's CTF and ours ------------------------------------------------

ABTEM_CASES = [
    Optics(defocus_nm=-3.0),
    Optics(defocus_nm=2.0, astig_x_nm=2.0, astig_y_nm=-1.5),
    Optics(defocus_nm=-4.0, focal_spread_nm=5.0, temporal_model="envelope"),
    Optics(defocus_nm=-4.0, focal_spread_nm=5.0, astig_x_nm=1.0, astig_y_nm=2.0, temporal_model="envelope"),
    Optics(defocus_nm=-4.0, focal_spread_nm=5.0, n_focal=7, astig_x_nm=-1.0, astig_y_nm=2.5),
    Optics(defocus_nm=3.0, focal_spread_nm=4.5, n_focal=5, cs_um=10.0, convergence_mrad=0.3, aperture_mrad=30.0),
]


@pytest.fixture(scope="module")
def au_on_carbon_exit_wave():
    """abTEM exit wave (400 × 400 at 0.05 Å, 300 kV) of an Au octahedron on amorphous carbon."""
    abtem = pytest.importorskip("abtem", reason="abTEM not installed (pip install .[abtem]): no comparison")
    from ase import Atoms
    from ase.cluster import Octahedron

    abtem.config.set({"fftw.threads": 1})
    rng = np.random.default_rng(1)
    side = 20.0
    particle = Octahedron("Au", 4)
    particle.positions += np.array([side / 2, side / 2, 12.0]) - particle.positions.mean(0)
    carbon = Atoms("C300", positions=rng.uniform((0, 0, 0), (side, side, 8), (300, 3)))
    atoms = particle + carbon
    atoms.cell, atoms.pbc = (side, side, 25.0), True
    potential = abtem.Potential(atoms, sampling=0.05, slice_thickness=2.0, parametrization="lobato",
                                projection="infinite")
    return abtem.PlaneWave(energy=300e3).multislice(potential).compute()


def _abtem_image(abtem, waves, optics: Optics) -> np.ndarray:
    ax, ay = optics.astig_x_nm, optics.astig_y_nm
    kwargs = dict(Cs=optics.cs_um * 1e4, astigmatism=10 * math.hypot(ax, ay), astigmatism_angle=math.atan2(ay, ax) / 2,
                  angular_spread=optics.convergence_mrad,
                  semiangle_cutoff=np.inf if optics.aperture_mrad is None else optics.aperture_mrad)
    if optics.temporal_model == "envelope":
        ctf = abtem.CTF(defocus=-10 * optics.defocus_nm, focal_spread=10 * optics.focal_spread_nm, **kwargs)
    else:  # abTEM's ensemble average over the same focus planes and weights
        offsets, weights = focal_quadrature(optics.n_focal, optics.focal_spread_nm)
        defocus = abtem.distributions.from_values(-10 * (optics.defocus_nm + offsets), weights, ensemble_mean=True)
        ctf = abtem.CTF(defocus=defocus, **kwargs)
    return waves.apply_ctf(ctf).intensity().reduce_ensemble().compute().array.T  # abTEM is (x, y)


@pytest.mark.parametrize("optics", ABTEM_CASES, ids=lambda o: f"C1={o.defocus_nm},Δ={o.focal_spread_nm},"
                         f"A1=({o.astig_x_nm},{o.astig_y_nm}),{o.temporal_model}")
def test_image_equals_abtem_on_the_same_exit_wave(au_on_carbon_exit_wave, optics):
    import abtem

    waves = au_on_carbon_exit_wave
    reference = _abtem_image(abtem, waves, optics)
    exit_wave = torch.as_tensor(waves.array.T.copy())[None, None]
    ours = form_images(exit_wave, (waves.sampling[1], waves.sampling[0]), [optics])[0].numpy()
    assert correlation(ours, reference) >= 0.999
    assert contrast_error(ours, reference) <= 0.02
    assert reference.std() > 0.01, "the test image should have contrast"
