"""Lattice visibility: how strongly a particle's crystal lattice shows in its (noise-free) image.

A 1 nm crystal far from any zone axis shows no fringes at all and looks amorphous, whatever its label;
the paper's human labellers set such particles aside. Two numbers measure it:

**Peak ratio** (:func:`lattice_peak_ratio`, per sample, dimensionless). The particle region of the
image (its mask grown by ``GROW_NM`` and given a Gaussian edge of ``EDGE_NM``) minus its weighted mean
is zero-padded to a power of two at least ``PAD`` times its box and Fourier transformed. In the band of
the element's lattice reflections (:func:`lattice_band`: from ``BAND[0]`` / the largest to ``BAND[1]``
/ the ``N_REFLECTIONS``-th largest plane spacing, below the image's Nyquist frequency) the ratio is the
power spectrum's maximum over its median. Lattice fringes are sharp peaks in that band; an amorphous
particle and the film give speckle, whose maximum over median grows only with the logarithm of the
band's speckle count (about 20-80 for 1-3 nm Au particles at 0.025 nm per pixel).

**Visibility** (:func:`visibility`, per sample). The peak ratio over the ``AMORPHOUS_QUANTILE`` quantile
of the peak ratios of the same dataset's amorphous particles of about that diameter (within
``DIAMETER_WINDOW_NM``, widened to the ``MIN_REFERENCE`` nearest where fewer are within) on the same
kind of film (where the dataset has ``MIN_REFERENCE`` such particles; a Si film speckles more than a C
one): the particles drawn from the same optics and films with no lattice at all. Above 1 the lattice shows more
strongly than in 99 % of amorphous particles of that size; below 1 a crystalline particle's image
carries no lattice evidence. Dose noise, blur and 8-bit storage hide fringes further; the measure is
taken on the noise-free image, so it says what the physics allows, not what a recording kept.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
from scipy import ndimage

from datagen.store.schema import label_names
from datagen.structures.lattice import crystal_lattice

GROW_NM = 0.2  # the particle mask grown by this much, so that fringes reaching the outline count [nm]
EDGE_NM = 0.1  # Gaussian edge (sigma) of the window, against the outline's own spectrum [nm]
PAD = 2  # zero padding: the transform's side is a power of two at least PAD times the region's box
N_REFLECTIONS = 3  # reflections in the band: the three largest plane spacings ({111}, {200}, {220} in fcc)
BAND = (0.9, 1.1)  # the band reaches from BAND[0]/d_max to BAND[1]/d_min
AMORPHOUS_QUANTILE = 0.99
DIAMETER_WINDOW_NM = 0.25  # amorphous particles within this much of the diameter are the reference [nm]
MIN_REFERENCE = 30  # the fewest amorphous particles a reference quantile is taken over

#: Visibility bins of the reports: lattice hidden (< 1), shown weakly (1-3), clearly (3-10), strongly.
BINS = (0.0, 1.0, 3.0, 10.0, math.inf)


@lru_cache(maxsize=None)
def lattice_band(element: str, lattice_constant_A: float | None = None) -> tuple[float, float]:
    """The spatial-frequency band [1/nm] that holds the element's ``N_REFLECTIONS`` strongest-spaced
    lattice reflections (``ValueError`` for an element without a known crystal structure)."""
    spacings = [d for _, d in crystal_lattice(element, lattice_constant_A).reflections()[:N_REFLECTIONS]]
    return BAND[0] / (max(spacings) / 10), BAND[1] / (min(spacings) / 10)


def lattice_peak_ratio(image: np.ndarray, mask: np.ndarray, pixel_size_nm: float,
                       band: tuple[float, float]) -> float:
    """The peak ratio of one particle (see the module's text): NaN where the mask is empty or the band
    lies above the image's Nyquist frequency."""
    region = np.asarray(mask) > 0
    if not region.any():
        return math.nan
    lo, hi = band[0], min(band[1], 0.5 / pixel_size_nm)
    if lo >= hi:
        return math.nan
    grow = max(1, round(GROW_NM / pixel_size_nm))
    region = ndimage.binary_dilation(region, iterations=grow)
    ys, xs = np.nonzero(region)
    box = (slice(ys.min(), ys.max() + 1), slice(xs.min(), xs.max() + 1))
    window = ndimage.gaussian_filter(np.pad(region, 2 * grow).astype(np.float64), EDGE_NM / pixel_size_nm)
    window = window[2 * grow:-2 * grow, 2 * grow:-2 * grow][box]
    values = np.asarray(image, np.float64)[box]
    values = (values - (values * window).sum() / window.sum()) * window
    n = 1 << math.ceil(math.log2(PAD * max(values.shape)))
    power = np.abs(np.fft.rfft2(values, (n, n))) ** 2
    fy, fx = np.fft.fftfreq(n, pixel_size_nm), np.fft.rfftfreq(n, pixel_size_nm)
    g = np.hypot(fy[:, None], fx[None, :])
    inside = power[(g >= lo) & (g <= hi)]
    median = float(np.median(inside))
    return float(inside.max() / median) if median > 0 else math.nan


def peak_ratios(images: np.ndarray, masks: np.ndarray, pixel_size_nm, element: str,
                lattice_constant_A: float | None = None) -> np.ndarray:
    """:func:`lattice_peak_ratio` of each image (N, H, W) with its mask; ``pixel_size_nm`` one value or
    one per image (float64, NaN where undefined)."""
    band = lattice_band(element, lattice_constant_A)
    pixels = np.broadcast_to(np.asarray(pixel_size_nm, np.float64), (len(images),))
    return np.array([lattice_peak_ratio(i, m, float(p), band) for i, m, p in zip(images, masks, pixels)])


def visibility(ratios: np.ndarray, diameters_nm: np.ndarray, reference_ratios: np.ndarray,
               reference_diameters_nm: np.ndarray, groups=None, reference_groups=None) -> np.ndarray:
    """Each particle's peak ratio over the ``AMORPHOUS_QUANTILE`` quantile of the amorphous reference
    particles' ratios of about its diameter (see the module's text); NaN where its ratio is NaN.
    ``groups`` and ``reference_groups`` (e.g. the film's element) restrict each particle's reference to
    its own group where that holds ``MIN_REFERENCE`` particles. ``ValueError`` where the reference holds
    fewer than ``MIN_REFERENCE`` amorphous particles."""
    ratios, diameters = np.asarray(ratios, np.float64), np.asarray(diameters_nm, np.float64)
    ref_r, ref_d = np.asarray(reference_ratios, np.float64), np.asarray(reference_diameters_nm, np.float64)
    keep = np.isfinite(ref_r) & np.isfinite(ref_d)
    ref_r, ref_d = ref_r[keep], ref_d[keep]
    if len(ref_r) < MIN_REFERENCE:
        raise ValueError(f"lattice visibility needs at least {MIN_REFERENCE} amorphous particles as its "
                         f"reference, the dataset has {len(ref_r)}")
    if groups is None or reference_groups is None:
        groups, ref_g = np.zeros(len(ratios), int), np.zeros(len(ref_r), int)
    else:
        groups, ref_g = np.asarray(groups), np.asarray(reference_groups)[keep]
    out = np.full(len(ratios), np.nan)
    for g in np.unique(groups):
        own = ref_g == g
        r_g, d_g = (ref_r[own], ref_d[own]) if own.sum() >= MIN_REFERENCE else (ref_r, ref_d)
        for i in np.flatnonzero(groups == g):
            r, d = ratios[i], diameters[i]
            if not (math.isfinite(r) and math.isfinite(d)):
                continue
            distance = np.abs(d_g - d)
            near = distance <= DIAMETER_WINDOW_NM
            if near.sum() < MIN_REFERENCE:
                near = np.argsort(distance, kind="stable")[:MIN_REFERENCE]
            out[i] = r / np.quantile(r_g[near], AMORPHOUS_QUANTILE)
    return out


def bin_names() -> list[str]:
    """The names of ``BINS``: "<1", "1-3", "3-10", ">=10"."""
    names = []
    for lo, hi in zip(BINS[:-1], BINS[1:]):
        names.append(f"<{hi:g}" if lo == 0 else f">={lo:g}" if math.isinf(hi) else f"{lo:g}-{hi:g}")
    return names


def bin_index(values: np.ndarray) -> np.ndarray:
    """The ``BINS`` index of each visibility (-1 for NaN)."""
    values = np.asarray(values, np.float64)
    idx = np.digitize(values, BINS[1:-1])
    return np.where(np.isfinite(values), idx, -1)


#: The variables of a store that measuring peak ratios on its images reads.
MEASURE_VARIABLES = ["image", "mask", "pixel_size_nm", "element"]


def visibility_source(ds) -> str | None:
    """Where a single-particle store's visibility comes from: "stored" (its ``lattice_peak_ratio``),
    "images" (noise-free simulated images, measured as they are read), or None (patterns, fields, or
    images recorded with noise and no stored ratio)."""
    if "instances" in ds or "element" not in ds or "diameter_nm" not in ds:
        return None
    if "lattice_peak_ratio" in ds:
        return "stored"
    if "dose_e_per_A2" in ds and np.isfinite(ds["dose_e_per_A2"].values).any():
        return None
    return "images"


def block_ratios(block, which: np.ndarray) -> np.ndarray:
    """The peak ratios of the samples ``which`` (indices into ``block``, a computed selection of
    ``MEASURE_VARIABLES``), element by element."""
    which = np.asarray(which, int)
    out = np.full(len(which), np.nan)
    if len(which) == 0:
        return out
    elements = block["element"].values[which]
    for element in np.unique(elements):
        own = elements == element
        j = which[own]
        out[own] = peak_ratios(block["image"].values[j], block["mask"].values[j], block["pixel_size_nm"].values[j],
                               str(element))
    return out


def amorphous_samples(ds) -> np.ndarray:
    """Which samples of ``ds`` are labelled amorphous (the visibility's reference)."""
    names = label_names(ds["label"])
    return np.array([names.get(int(v)) == "amorphous" for v in ds["label"].values], bool)


def store_visibility(ds, ratios: np.ndarray, chosen: np.ndarray) -> np.ndarray | None:
    """The visibility of the samples ``chosen`` of ``ds``, given ``ratios`` (one per sample of ``ds``; at
    least those chosen and every amorphous one), against the store's amorphous particles on the same
    film; None where there are too few of them."""
    amorphous = amorphous_samples(ds)
    films = ds["support_element"].values.astype(str) if "support_element" in ds else np.zeros(len(ratios), int)
    d = ds["diameter_nm"].values
    try:
        return visibility(ratios[chosen], d[chosen], ratios[amorphous], d[amorphous], films[chosen], films[amorphous])
    except ValueError:
        return None


def dataset_visibility(ds) -> np.ndarray | None:
    """The visibility of every sample of a single-particle dataset (an ``open_samples`` Dataset), from its
    ``lattice_peak_ratio`` or measured on its noise-free images, against its amorphous particles on the
    same film; None where it cannot be measured (``visibility_source`` is None, or too few amorphous
    particles)."""
    source = visibility_source(ds)
    if source is None:
        return None
    if source == "stored":
        ratios = ds["lattice_peak_ratio"].values.astype(np.float64)
    else:
        ratios = np.full(ds.sizes["sample"], np.nan)
        chunk = int(ds.attrs.get("chunk_size") or 64)
        for start in range(0, ds.sizes["sample"], chunk):
            block = ds[MEASURE_VARIABLES].isel(sample=slice(start, start + chunk)).compute()
            ratios[start:start + block.sizes["sample"]] = block_ratios(block, np.arange(block.sizes["sample"]))
    return store_visibility(ds, ratios, np.arange(len(ratios)))
