"""The paper's baseline "pattern" images, with every drawn parameter kept as provenance.

A particle is a disk on a noisy background (mean 1). Inside it:

- amorphous: random Gaussian dots and salt-and-pepper noise;
- monocrystalline: two crossed sinusoids of one angular frequency (paper: 0.05–0.55 rad/pixel)
  at random angles and phases;
- polycrystalline: 2 or 3 patches of crossed sinusoids of the same frequency, each patch with its
  own angles, separated by straight cuts at a random distance of 0 to r/2 from the centre (the
  third cut, with probability ``third_domain_probability``, is not parallel to the first).

Lengths in [pixel], angles in [rad], intensities in units of the mean background.
"""

from __future__ import annotations

import numpy as np
from scipy.ndimage import gaussian_filter

from datagen import __version__
from datagen.classes import CLASS_NAMES
from datagen.plan import sample_rng
from datagen.store.schema import Layout, Variable

MAX_DOMAINS = 3


def provenance_variables() -> tuple[Variable, ...]:
    f = "float32"
    return (
        Variable("diameter_px", ("sample",), f, "pixel", "particle disk diameter"),
        Variable("center_y_px", ("sample",), f, "pixel", "particle centre, row"),
        Variable("center_x_px", ("sample",), f, "pixel", "particle centre, column"),
        Variable("contrast", ("sample",), f, "1", "amplitude of the particle's pattern"),
        Variable("background_noise", ("sample",), f, "1", "standard deviation of the Gaussian background noise"),
        Variable("frequency", ("sample",), f, "rad/pixel", "angular frequency of the sinusoids (NaN: amorphous)"),
        Variable("n_domains", ("sample",), "int8", "1", "number of crystalline domains (0: amorphous)"),
        Variable("wave_angle", ("sample", "domain", "wave"), f, "rad",
                 "direction of each sinusoid's wave vector, per domain (NaN: unused)"),
        Variable("wave_phase", ("sample", "domain", "wave"), f, "rad", "phase of each sinusoid, per domain"),
        Variable("cut_angle", ("sample", "cut"), f, "rad", "direction of each domain boundary's normal"),
        Variable("cut_offset_px", ("sample", "cut"), f, "pixel", "distance of each domain boundary from the centre"),
        Variable("n_dots", ("sample",), "int32", "1", "number of random dots (amorphous)"),
        Variable("dot_sigma_px", ("sample",), f, "pixel", "Gaussian width of the dots (amorphous)"),
        Variable("salt_pepper", ("sample",), f, "1", "fraction of particle pixels set to salt or pepper (amorphous)"),
    )


def layout(recipe) -> Layout:
    n = recipe.pattern.image_size
    return Layout(recipe.n_samples, recipe.chunk_size, (n, n), provenance_variables(),
                  {"domain": MAX_DOMAINS, "wave": 2, "cut": MAX_DOMAINS - 1}, atoms_per_sample=0)


def backend_info(recipe, backend_options: dict | None = None) -> tuple[str, str, str]:
    """(name, version, device): patterns are drawn by datagen itself, on the CPU."""
    return "pattern", __version__, "cpu"


def describe(recipe) -> dict:
    """What ``recipe check`` shows of a pattern recipe."""
    return {"image_shape": [recipe.pattern.image_size] * 2, "warnings": []}


def _crossed_waves(yy, xx, freq, angles, phases):
    out = np.zeros_like(yy)
    for a, p in zip(angles, phases):
        out += np.sin(freq * (xx * np.cos(a) + yy * np.sin(a)) + p)
    return out / 2


def pattern_sample(label: str, params, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, dict]:
    """One pattern image of class ``label`` -> (image float32 (n, n), mask uint8 (n, n), provenance)."""
    if label not in CLASS_NAMES:
        raise ValueError(f"label must be one of {CLASS_NAMES}, got {label!r}")
    n = params.image_size
    u = rng.uniform
    d = u(*params.diameter_px)
    r = d / 2
    cy, cx = u(r, n - r), u(r, n - r)
    yy, xx = np.mgrid[0:n, 0:n].astype(np.float64)
    yy -= cy
    xx -= cx
    mask = (yy**2 + xx**2) <= r**2
    contrast = u(*params.contrast)
    noise = u(*params.background_noise)
    prov = {"diameter_px": d, "center_y_px": cy, "center_x_px": cx, "contrast": contrast,
            "background_noise": noise, "frequency": np.nan, "n_domains": 0,
            "wave_angle": np.full((MAX_DOMAINS, 2), np.nan), "wave_phase": np.full((MAX_DOMAINS, 2), np.nan),
            "cut_angle": np.full(MAX_DOMAINS - 1, np.nan), "cut_offset_px": np.full(MAX_DOMAINS - 1, np.nan),
            "n_dots": 0, "dot_sigma_px": np.nan, "salt_pepper": np.nan}

    if label == "amorphous":
        n_dots = int(rng.poisson(u(*params.dot_density) * mask.sum()))
        sigma = u(*params.dot_sigma_px)
        iy, ix = np.nonzero(mask)
        pick = rng.integers(0, len(iy), n_dots)
        dots = np.zeros((n, n))
        np.add.at(dots, (iy[pick], ix[pick]), rng.choice([-1.0, 1.0], n_dots))
        signal = gaussian_filter(dots, sigma) * (2 * np.pi * sigma**2)
        frac = u(*params.salt_pepper)
        flips = rng.random((n, n)) < frac
        signal = np.where(flips, rng.choice([-1.0, 1.0], (n, n)), signal)
        prov.update(n_dots=n_dots, dot_sigma_px=sigma, salt_pepper=frac)
    else:
        freq = u(*params.frequency)
        n_dom = 1
        if label == "polycrystalline":
            n_dom = 3 if rng.random() < params.third_domain_probability else 2
        domain = np.zeros((n, n), dtype=np.int8)
        first = u(0, np.pi)
        for k in range(n_dom - 1):
            # Later cuts turn by 30–150° from the first, so no two boundaries are parallel.
            angle = first if k == 0 else first + u(np.pi / 6, 5 * np.pi / 6)
            offset = u(0, r / 2)
            side = (xx * np.cos(angle) + yy * np.sin(angle)) > offset
            domain[side] = k + 1
            prov["cut_angle"][k], prov["cut_offset_px"][k] = angle % (2 * np.pi), offset
        signal = np.zeros((n, n))
        for k in range(n_dom):
            angles, phases = u(0, np.pi, 2), u(0, 2 * np.pi, 2)
            prov["wave_angle"][k], prov["wave_phase"][k] = angles, phases
            sel = domain == k
            signal[sel] = _crossed_waves(yy[sel], xx[sel], freq, angles, phases)
        prov.update(frequency=freq, n_domains=n_dom)

    image = 1 + noise * rng.standard_normal((n, n)) + contrast * mask * signal
    return image.astype(np.float32), mask.astype(np.uint8), prov


def generate_chunk(recipe, indices: np.ndarray, plan, backend_options: dict | None = None
                   ) -> tuple[dict[str, np.ndarray], None]:
    """All stored variables for the samples ``indices`` (their plan given), without atomic models."""
    images, masks, provs = [], [], []
    for index, label in zip(indices, plan.labels):
        image, mask, prov = pattern_sample(CLASS_NAMES[label], recipe.pattern, sample_rng(recipe.seed, index))
        images.append(image)
        masks.append(mask)
        provs.append(prov)
    data = {"image": np.stack(images), "mask": np.stack(masks), "label": plan.labels.astype("int8"),
            "split": plan.splits, "structure_id": plan.structure_ids,
            "seed": np.full(len(indices), recipe.seed, "int64")}
    for var in provenance_variables():
        data[var.name] = np.asarray([p[var.name] for p in provs], dtype=var.dtype)
    return data, None
