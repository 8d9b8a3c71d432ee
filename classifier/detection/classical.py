"""The classical particle detector: band-pass darkness and local contrast, hysteresis, watershed.

What makes a 1-3 nm metal particle on a thin amorphous film stand out in an HRTEM image, whatever the
optics: it is darker than the film around it (it scatters far more, and the objective aperture removes
what it scatters), and, where the lattice is resolved, its fringes give it a local contrast far above
the film's speckle. Two features, each a z-score against the image's own support (median and MAD over
the image; particles are a minority of pixels):

- darkness: the image band-passed between ``smooth_nm`` (below the film's finest speckle and the lattice
  fringes) and ``background_nm`` (above the largest particle), negated;
- contrast: the log of the local power of what lies above ``background_nm``, averaged over ``window_nm``
  (the detector of earlier versions, right for fringes, wrong for the dark discs of filtered images).

A particle is a connected region where the larger z-score passes ``threshold_low`` and that holds a pixel
above ``threshold``; the defaults make the chance of a false region on pure noise or on bare film
negligible (a Gaussian field's maximum over a 4k x 4k image stays below 6). Each region's outline is cut
at half its peak darkness, where the band-passed profile of a disc crosses its edge. Touching particles
are split by a watershed on the distance transform, from markers that stand ``split_nm`` above their
saddle (as ANTEMA does). Regions are kept when their equivalent diameter lies within ``diameter_nm``;
those touching the image border or a burned-in annotation are dropped unless asked otherwise.

All filters are Gaussian, applied in Fourier space in one transform (cost O(N log N) in the pixels).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.fft as sfft
from scipy import ndimage as ndi
from skimage.morphology import h_maxima
from skimage.segmentation import expand_labels, watershed

from classifier.detection.annotations import find_annotations
from classifier.errors import ClassifierError


@dataclass(frozen=True)
class ClassicalSettings:
    """How the classical detector finds particles; lengths in nm, thresholds in robust standard deviations."""

    diameter_nm: tuple[float, float] = (0.8, 6.0)  # equivalent diameters kept
    smooth_nm: tuple[float, ...] = (0.15, 0.3, 0.5)  # Gaussian sigmas of the darkness's smoothing scales
    outline_scale: int = 1  # which of them draws the outline
    outline_fraction: float = 0.2  # the outline where that darkness passes this share of its peak
    grow_nm: float = 0.1  # dark outlines then grown outwards by this much (smoothing and the edge's Fresnel fringe pull them in)
    background_nm: float = 2.5  # Gaussian sigma of the slow background removed
    window_nm: float = 0.3  # averaging window of the local contrast
    thresholds: tuple[float, ...] = (6.5, 8.0, 10.5)  # a region must reach one scale's threshold somewhere
    threshold_low: float = 2.5  # and extends where it stays above this one
    contrast_threshold: float | None = 9.0  # the local contrast's own seed threshold; None: darkness only
    split_nm: float = 0.05  # depth of the distance-transform saddle that splits two touching particles
    exclude_border: bool = True  # drop particles touching the image edge (as ANTEMA does)
    ignore_annotations: bool = True  # find burned-in scale bars and labels and drop particles on them

    def __post_init__(self):
        lo, hi = self.diameter_nm
        if not 0 < lo < hi:
            raise ClassifierError(f"diameter_nm: need 0 < min < max, got {self.diameter_nm}")
        if not self.smooth_nm or min(self.smooth_nm) <= 0:
            raise ClassifierError(f"smooth_nm: need one or more positive scales, got {self.smooth_nm!r}")
        for name in ("background_nm", "window_nm", "split_nm"):
            if not getattr(self, name) > 0:
                raise ClassifierError(f"{name}: must be positive, got {getattr(self, name)!r}")
        if len(self.thresholds) != len(self.smooth_nm):
            raise ClassifierError(f"thresholds: one per smoothing scale ({len(self.smooth_nm)}), got {self.thresholds!r}")
        if not 0 < self.threshold_low <= min(self.thresholds):
            raise ClassifierError(f"threshold_low: need 0 < threshold_low <= the thresholds, got "
                                  f"{self.threshold_low!r} and {self.thresholds!r}")


def _gaussians(image: np.ndarray, sigmas_px: list[float]) -> list[np.ndarray]:
    """``image`` filtered with Gaussians of each sigma [px], through one forward FFT (periodic edges,
    after the image is padded by reflection so nothing wraps)."""
    pad = int(min(3 * max(sigmas_px), max(image.shape) - 1))
    shape = [sfft.next_fast_len(n + 2 * pad, real=True) for n in image.shape]
    a = np.pad(image, [(pad, m - n - pad) for n, m in zip(image.shape, shape)], mode="reflect")
    f = sfft.rfft2(a, workers=-1)
    ky = sfft.fftfreq(a.shape[0])[:, None]
    kx = sfft.rfftfreq(a.shape[1])[None, :]
    k2 = (ky * ky + kx * kx) * (2 * np.pi) ** 2
    out = []
    for s in sigmas_px:
        g = sfft.irfft2(f * np.exp(-0.5 * s * s * k2), s=a.shape, workers=-1)
        out.append(g[pad:pad + image.shape[0], pad:pad + image.shape[1]])
    return out


def robust_z(feature: np.ndarray, valid: np.ndarray | None = None, *, clip: float = 2.5) -> np.ndarray:
    """(feature - centre) / scale, centre and scale of the support alone: the median and 1.4826 MAD of
    the ``valid`` pixels, recomputed (three times) without those above ``clip`` scales, which are where
    the particles are (they only raise the features), so that dense fields do not inflate the scale."""
    step = max(1, feature.size // 250_000)  # the statistics of a large image from a regular subsample
    values = feature.ravel()[::step]
    if valid is not None:
        values = values[valid.ravel()[::step]]
    sample = values
    for _ in range(3):
        med = np.median(sample)
        mad = 1.4826 * np.median(np.abs(sample - med))
        if not mad > 0:
            break
        sample = values[values < med + clip * mad]
    med = np.median(sample)
    # the scale from the support's lower half (never touched by particles), as a one-sided MAD
    below = med - sample[sample <= med]
    scale = 1.4826 * np.median(below) if below.size else 0.0
    return (feature - med) / (scale if scale > 0 else (values.std() or 1.0))


def features(image: np.ndarray, pixel_size_nm: float, settings: ClassicalSettings,
             valid: np.ndarray | None = None, *, with_contrast: bool = True):
    """The detector's features: the darkness at each smoothing scale of ``settings.smooth_nm`` (finest
    first) and the local contrast (None unless ``with_contrast``), both standardised robustly.

    The background is the support's alone: a first pass finds what is clearly darker than its
    surroundings, and the background is then a normalised convolution (Gaussian average of the other
    pixels, divided by the Gaussian average of their indicator), so that dense particles do not darken
    it and shrink their own outlines."""
    img = np.asarray(image, np.float64)
    valid = np.ones(img.shape, bool) if valid is None else valid
    if not valid.all():  # annotations replaced by the median: no edges from them
        img = np.where(valid, img, np.median(img[valid]) if valid.any() else 0.0)
    scales = [v / pixel_size_nm for v in settings.smooth_nm]
    b, w = settings.background_nm / pixel_size_nm, settings.window_nm / pixel_size_nm
    smooth = _gaussians(img, scales)
    # the background varies slowly: worked out on a grid coarser by ``f`` (block means), then interpolated
    f = max(1, int(b // 6))
    (background_c,) = _gaussians(_block_mean(img, f), [b / f])
    background = _upsample(background_c, f, img.shape)
    for _ in range(2):
        dark = [robust_z(background - sm, valid) for sm in smooth]
        particles = np.max(dark, axis=0) > settings.threshold_low
        weight = valid & ~ndi.binary_dilation(particles, iterations=max(1, round(0.2 / pixel_size_nm)))
        num, den = _gaussians(_block_mean(img * weight, f), [b / f]) + _gaussians(_block_mean(weight.astype(float), f), [b / f])
        background_c = np.where(den > 1e-3, num / np.maximum(den, 1e-3), background_c)
        background = _upsample(background_c, f, img.shape)
    dark = [robust_z(background - sm, valid) for sm in smooth]
    if not with_contrast:
        return dark, None
    high = img - background
    (power,) = _gaussians(high * high, [w])
    contrast = robust_z(np.log(np.maximum(power, 1e-12 * (power.max() or 1.0))), valid)
    return dark, contrast


def _block_mean(a: np.ndarray, f: int) -> np.ndarray:
    """Means over f x f blocks (the last partial blocks included)."""
    if f == 1:
        return a
    ny, nx = -(-a.shape[0] // f) * f, -(-a.shape[1] // f) * f
    p = np.pad(a, ((0, ny - a.shape[0]), (0, nx - a.shape[1])), mode="edge")
    return p.reshape(ny // f, f, nx // f, f).mean(axis=(1, 3))


def _interpolation(n_out: int, n_in: int, f: int):
    """Sparse (n_out, n_in) matrix of linear interpolation from block centres ((k + 1/2) f - 1/2) to pixels."""
    from scipy import sparse

    pos = np.clip((np.arange(n_out) + 0.5) / f - 0.5, 0, n_in - 1)
    i0 = np.floor(pos).astype(int)
    i1 = np.minimum(i0 + 1, n_in - 1)
    w = pos - i0
    rows = np.repeat(np.arange(n_out), 2)
    return sparse.csr_matrix((np.stack([1 - w, w], 1).ravel(), (rows, np.stack([i0, i1], 1).ravel())), shape=(n_out, n_in))


def _upsample(a: np.ndarray, f: int, shape: tuple[int, int]) -> np.ndarray:
    """Linear interpolation of block means back onto the pixels (separable: two sparse products)."""
    if f == 1:
        return a
    ay, ax = _interpolation(shape[0], a.shape[0], f), _interpolation(shape[1], a.shape[1], f)
    return np.asarray(ay @ np.asarray(ax @ a.T).T)


def label_max(values: np.ndarray, labels: np.ndarray, n: int) -> np.ndarray:
    """(n + 1,) maximum of ``values`` over each label 1..n (index 0 unused; -inf where a label is empty),
    over the labelled pixels only (``ndimage.maximum`` sorts every pixel)."""
    sel = labels > 0
    out = np.full(n + 1, -np.inf)
    np.maximum.at(out, labels[sel], values[sel])
    return out


def detect(image: np.ndarray, pixel_size_nm: float, settings: ClassicalSettings = ClassicalSettings()
           ) -> tuple[np.ndarray, np.ndarray]:
    """Label image (int32: 0 background, 1..N one particle each, ordered top to bottom) and the mask of
    burned-in annotations found (bool)."""
    image = np.asarray(image, np.float32)
    annotations = find_annotations(image, pixel_size_nm) if settings.ignore_annotations else np.zeros(image.shape, bool)
    valid = ~annotations
    dark, contrast = features(image, pixel_size_nm, settings, valid,
                                     with_contrast=settings.contrast_threshold is not None)
    # seeds: where the darkness at some scale passes that scale's threshold, or the local contrast its own
    seed = np.max([d / t for d, t in zip(dark, settings.thresholds)], axis=0)
    extent = np.max(dark, axis=0)
    if contrast is not None:
        seed = np.maximum(seed, contrast / settings.contrast_threshold)
        extent = np.maximum(extent, contrast)
    extent[annotations] = 0.0
    regions, n = ndi.label(extent > settings.threshold_low)
    if n == 0:
        return np.zeros(image.shape, np.int32), annotations
    keep = np.zeros(n + 1, bool)
    keep[1:] = label_max(seed, regions, n)[1:] >= 1.0
    # the outline, from the feature that found the region: where the darkness at the outline scale passes
    # a share of its peak (a band-passed disc crosses its edge there), or, for a region found by its
    # fringes rather than its darkness, where the contrast passes half its peak (fringes fill the particle)
    outline = dark[min(settings.outline_scale, len(dark) - 1)]
    level = np.zeros(n + 1)
    level[1:] = np.maximum(settings.threshold_low, settings.outline_fraction * label_max(outline, regions, n)[1:])
    inside = outline >= level[regions]
    fringes = np.zeros(n + 1, bool)
    if contrast is not None:
        by_dark = np.zeros(n + 1)
        by_dark[1:] = label_max(np.max([d / t for d, t in zip(dark, settings.thresholds)], axis=0), regions, n)[1:]
        by_contrast = np.zeros(n + 1)
        by_contrast[1:] = label_max(contrast, regions, n)[1:] / settings.contrast_threshold
        fringes = by_contrast > by_dark
        level_c = np.zeros(n + 1)
        level_c[1:] = np.maximum(settings.threshold_low, 0.5 * by_contrast[1:] * settings.contrast_threshold)
        inside = np.where(fringes[regions], inside | (contrast >= level_c[regions]), inside)
    inside &= keep[regions]
    inside = ndi.binary_opening(inside, _disk(max(1, round(0.1 / pixel_size_nm))))
    inside = ndi.binary_fill_holes(inside)
    labels = split_touching(inside, pixel_size_nm, settings.split_nm, settings.diameter_nm[0])
    if settings.grow_nm > 0 and labels.max():  # dark outlines outward to the edge, never into a neighbour
        grown = expand_labels(labels, settings.grow_nm / pixel_size_nm)
        by_fringes = np.zeros(labels.max() + 1, bool)
        by_fringes[1:] = fringes[np.maximum(label_max(regions, labels, int(labels.max()))[1:], 0).astype(int)]
        labels = np.where((labels == 0) & by_fringes[grown], 0, grown)
    return filter_regions(labels, pixel_size_nm, settings, annotations), annotations


def _disk(radius: int) -> np.ndarray:
    y, x = np.ogrid[-radius:radius + 1, -radius:radius + 1]
    return x * x + y * y <= radius * radius


def split_touching(mask: np.ndarray, pixel_size_nm: float, split_nm: float, min_diameter_nm: float) -> np.ndarray:
    """Label ``mask``, splitting touching blobs by a watershed on the distance transform from markers
    that stand ``split_nm`` above their saddle (h-maxima), each at least ``min_diameter_nm``/4 deep."""
    regions, n = ndi.label(mask)
    if n == 0:
        return regions.astype(np.int32)
    out = np.zeros(mask.shape, np.int32)
    next_id = 1
    for i, box in enumerate(ndi.find_objects(regions), start=1):
        # work in each region's own box, padded by one pixel: cost stays linear in the image
        y0, x0 = max(box[0].start - 1, 0), max(box[1].start - 1, 0)
        y1, x1 = min(box[0].stop + 1, mask.shape[0]), min(box[1].stop + 1, mask.shape[1])
        part = regions[y0:y1, x0:x1] == i
        dist = ndi.distance_transform_edt(part) * pixel_size_nm
        markers = h_maxima(dist, split_nm) & (dist >= min_diameter_nm / 4)
        marker_labels, m = ndi.label(markers)
        if m <= 1:
            out[y0:y1, x0:x1][part] = next_id
            next_id += 1
            continue
        ws = watershed(-dist, marker_labels, mask=part)
        view = out[y0:y1, x0:x1]
        view[part] = ws[part] + next_id - 1
        next_id += m
    return out


def filter_regions(labels: np.ndarray, pixel_size_nm: float, settings: ClassicalSettings,
                   annotations: np.ndarray | None = None) -> np.ndarray:
    """Keep regions whose equivalent diameter lies within ``settings.diameter_nm``, not on the border (if
    ``exclude_border``) nor on an annotation; renumber 1..N top to bottom, left to right."""
    n = int(labels.max())
    if n == 0:
        return labels.astype(np.int32)
    idx = np.arange(1, n + 1)
    where = np.flatnonzero(labels)  # the labelled pixels only: cost follows the particles' area
    lab = labels.ravel()[where]
    area = np.bincount(lab, minlength=n + 1)[1:]
    d = 2 * np.sqrt(area / np.pi) * pixel_size_nm
    keep = (d >= settings.diameter_nm[0]) & (d <= settings.diameter_nm[1])  # (empty labels too: d = 0)
    if settings.exclude_border:
        edge = np.unique(np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]]))
        keep &= ~np.isin(idx, edge)
    if annotations is not None and annotations.any():
        near = ndi.binary_dilation(annotations, iterations=2)
        keep &= ~np.isin(idx, np.unique(labels[near]))
    w = labels.shape[1]
    cy = np.bincount(lab, weights=where // w, minlength=n + 1)[1:] / np.maximum(area, 1)
    cx = np.bincount(lab, weights=where % w, minlength=n + 1)[1:] / np.maximum(area, 1)
    order = sorted(zip(idx[keep], zip(cy[keep], cx[keep])), key=lambda t: (t[1][0], t[1][1]))
    lut = np.zeros(n + 1, np.int32)
    for new, (old, _) in enumerate(order, start=1):
        lut[old] = new
    return lut[labels]
