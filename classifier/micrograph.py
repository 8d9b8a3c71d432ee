"""Whole micrographs: find the particles, cut each out, classify it, report size, shape and class.

Detection looks for what makes a metal particle stand out in an HRTEM image of a thin amorphous
support: strong local contrast (lattice fringes, or the speckle of an amorphous particle, of much
larger amplitude than the support's). The image is standardised, slow background variations are removed
(Gaussian high-pass at ``background_nm``), the local power of what remains is averaged over
``window_nm`` and thresholded (Otsu on its logarithm, or a given value). Regions are cleaned (opening,
holes filled) and kept when their equivalent diameter lies within ``diameter_nm``. Each region is a
particle mask; the particle is cut out with ``datagen.cutout.cutout``, as the training images were.
"""

from __future__ import annotations

import csv
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from scipy import ndimage as ndi
from skimage.filters import gaussian, threshold_otsu
from skimage.measure import find_contours, label, regionprops
from skimage.morphology import disk, opening

from classifier.classes import AMORPHOUS, CRYSTALLINE, MONOCRYSTALLINE, POLYCRYSTALLINE, UNKNOWN
from classifier.errors import ClassifierError, refuse_existing
from classifier.predict import predict_proba
from classifier.readers import check_pixel_size
from datagen.device import resolve_device
from datagen.files import atomic_path, atomic_paths

if TYPE_CHECKING:
    from torch import nn

    from classifier.modelfile import ModelInfo

@dataclass(frozen=True)
class DetectionSettings:
    """How particles are found; lengths in nm."""

    diameter_nm: tuple[float, float] = (0.8, 6.0)  # equivalent diameters kept
    window_nm: float = 0.2  # averaging window of the local contrast (Gaussian sigma)
    background_nm: float = 1.0  # Gaussian sigma of the slow background removed first
    threshold: float | None = None  # on log local power; None: Otsu
    exclude_border: bool = False  # drop particles touching the image edge

    def __post_init__(self):
        lo, hi = self.diameter_nm
        if not 0 < lo < hi:
            raise ClassifierError(f"diameter_nm: need 0 < min < max, got {self.diameter_nm}")
        if self.window_nm <= 0 or self.background_nm <= 0:
            raise ClassifierError("window_nm and background_nm must be positive")


def contrast_map(image: np.ndarray, pixel_size_nm: float, settings: DetectionSettings = DetectionSettings()) -> np.ndarray:
    """log of the local power of the high-passed, standardised image (the detector's feature)."""
    img = np.asarray(image, np.float64)
    img = (img - img.mean()) / (img.std() or 1.0)
    high = img - gaussian(img, settings.background_nm / pixel_size_nm)
    return np.log(gaussian(high * high, settings.window_nm / pixel_size_nm) + 1e-6)


def detect_particles(image: np.ndarray, pixel_size_nm: float,
                     settings: DetectionSettings = DetectionSettings()) -> np.ndarray:
    """Label image (int32): 0 background, 1..N one particle each, ordered top to bottom."""
    check_pixel_size(pixel_size_nm)
    feature = contrast_map(image, pixel_size_nm, settings)
    threshold = threshold_otsu(feature) if settings.threshold is None else settings.threshold
    binary = opening(feature > threshold, disk(max(1, round(0.1 / pixel_size_nm))))
    binary = ndi.binary_fill_holes(binary)
    labels = label(binary)
    lo, hi = settings.diameter_nm
    renumber = np.zeros(labels.max() + 1, np.int32)  # old label -> new (0: dropped), applied in one pass
    for region in regionprops(labels):
        d = region.equivalent_diameter_area * pixel_size_nm
        if lo <= d <= hi and not (settings.exclude_border and _touches_border(region.bbox, labels.shape)):
            renumber[region.label] = renumber.max() + 1
    return renumber[labels]


def _touches_border(bbox: tuple[int, int, int, int], shape: tuple[int, int]) -> bool:
    y0, x0, y1, x1 = bbox
    return y0 == 0 or x0 == 0 or y1 == shape[0] or x1 == shape[1]


@dataclass
class Particle:
    """One detected particle: where, how large, what shape, which class."""

    id: int
    y_px: float
    x_px: float
    area_nm2: float
    diameter_nm: float  # of the circle of equal area
    major_nm: float
    minor_nm: float
    aspect_ratio: float
    circularity: float  # 4 pi area / perimeter^2 (1 for a disk)
    solidity: float
    touches_border: bool
    label: str = ""
    confidence: float = float("nan")
    probabilities: dict = field(default_factory=dict)


def measure(labels: np.ndarray, pixel_size_nm: float) -> list[Particle]:
    """Size and shape of every labelled region."""
    out = []
    for r in regionprops(labels):
        perimeter = r.perimeter or 1.0
        out.append(Particle(
            id=int(r.label), y_px=float(r.centroid[0]), x_px=float(r.centroid[1]),
            area_nm2=float(r.area * pixel_size_nm ** 2), diameter_nm=float(r.equivalent_diameter_area * pixel_size_nm),
            major_nm=float(r.axis_major_length * pixel_size_nm), minor_nm=float(r.axis_minor_length * pixel_size_nm),
            aspect_ratio=float(r.axis_major_length / max(r.axis_minor_length, 1e-9)),
            circularity=float(min(1.0, 4 * np.pi * r.area / perimeter ** 2)), solidity=float(r.solidity),
            touches_border=_touches_border(r.bbox, labels.shape)))
    return out


@dataclass
class Analysis:
    """The particles of one micrograph, and what is needed to draw them."""

    path: str
    image: np.ndarray
    pixel_size_nm: float
    labels: np.ndarray
    particles: list[Particle]
    classes: tuple[str, ...]
    threshold: float

    def counts(self) -> dict[str, int]:
        """Particles per class (and unknown); without a model, all are "detected"."""
        if not self.classes:
            return {"detected": len(self.particles)}
        names = [*self.classes, UNKNOWN]
        return {c: sum(p.label == c for p in self.particles) for c in names}

    def write(self, folder: str | Path, stem: str | None = None, *, overwrite: bool = False) -> dict[str, Path]:
        """``<stem>.csv`` (one row per particle), ``<stem>.json`` and ``<stem>.png`` (the overlay);
        existing files are replaced only with ``overwrite``."""
        folder = Path(folder)
        paths = output_paths(folder, stem or Path(self.path).stem)
        if not overwrite:
            refuse_existing(paths.values())
        folder.mkdir(parents=True, exist_ok=True)
        with atomic_paths(paths) as tmp:
            rows = [{**{k: v for k, v in asdict(p).items() if k != "probabilities"},
                     **{f"p_{c}": p.probabilities.get(c, float("nan")) for c in self.classes}} for p in self.particles]
            with tmp["table"].open("w", newline="") as fh:
                fields = list(rows[0]) if rows else [f.name for f in Particle.__dataclass_fields__.values()
                                                     if f.name != "probabilities"]
                w = csv.DictWriter(fh, fieldnames=fields)
                w.writeheader()
                for row in rows:
                    w.writerow({k: (f"{v:.4g}" if isinstance(v, float) else v) for k, v in row.items()})
            tmp["json"].write_text(json.dumps({
                "micrograph": self.path, "pixel_size_nm": self.pixel_size_nm, "threshold": self.threshold,
                "classes": list(self.classes), "counts": self.counts(),
                "particles": [asdict(p) for p in self.particles]}, indent=1) + "\n")
            self.plot(tmp["figure"])
        return paths

    def plot(self, path: str | Path) -> Path:
        """The micrograph with each particle outlined in its class's colour, numbered, with a legend."""
        import matplotlib  # lazy: heavy, and needed only for the picture

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from matplotlib import patheffects
        from matplotlib.lines import Line2D

        colours = {AMORPHOUS: "tab:orange", MONOCRYSTALLINE: "tab:blue", POLYCRYSTALLINE: "tab:green",
                   CRYSTALLINE: "tab:blue", UNKNOWN: "tab:gray", "": "tab:red", "detected": "tab:red"}
        h, w = self.image.shape
        fig, ax = plt.subplots(figsize=(8, 8 * h / w + 0.6))
        lo, hi = np.percentile(self.image, [1, 99])
        ax.imshow(self.image, cmap="gray", vmin=lo, vmax=hi)
        boxes = ndi.find_objects(self.labels)
        for p in self.particles:
            c = colours.get(p.label, "tab:red")
            ys, xs = boxes[p.id - 1]  # the outline from the particle's own box, padded: fast on large images
            y0, x0 = ys.start - 1, xs.start - 1
            region = np.pad(self.labels[ys, xs] == p.id, 1)
            for line in find_contours(region.astype(np.float32), 0.5):
                ax.plot(line[:, 1] + x0, line[:, 0] + y0, color=c, lw=1.2)
            text = f"{p.id}" + (f" {p.confidence:.2f}" if np.isfinite(p.confidence) else "")
            ax.text(p.x_px, p.y_px - p.diameter_nm / self.pixel_size_nm / 2 - 3, text, color=c, fontsize=8,
                    ha="center", va="bottom", path_effects=[patheffects.withStroke(linewidth=2, foreground="white")])
        bar_nm = _scale_bar_nm(w * self.pixel_size_nm)
        ax.plot([w * 0.05, w * 0.05 + bar_nm / self.pixel_size_nm], [h * 0.95] * 2, color="white", lw=3)
        ax.text(w * 0.05, h * 0.93, f"{bar_nm:g} nm", color="white", fontsize=9)
        counts = self.counts()
        handles = [Line2D([], [], color=colours.get(c, "tab:red"), label=f"{c}: {n}") for c, n in counts.items() if n]
        if handles:
            ax.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, 0.0), ncol=len(handles),
                      fontsize=9, frameon=False)  # below the image, never over a particle
        ax.set_title(f"{Path(self.path).name}: {len(self.particles)} particles "
                     f"(confidence < {self.threshold:.2f}: unknown)", fontsize=10)
        ax.set_axis_off()
        fig.tight_layout()
        with atomic_path(path) as tmp:
            fig.savefig(tmp, dpi=120)
        plt.close(fig)
        return Path(path)


def output_paths(folder: Path, stem: str) -> dict[str, Path]:
    """The files ``Analysis.write`` puts into ``folder`` for the micrograph ``stem``."""
    return {"table": folder / f"{stem}.csv", "json": folder / f"{stem}.json", "figure": folder / f"{stem}.png"}


def output_stems(paths: list[Path]) -> list[str]:
    """File stems for each micrograph's outputs: the stem, or the whole name where two stems collide."""
    stems = [p.stem for p in paths]
    out = [p.stem if stems.count(p.stem) == 1 else p.name.replace(".", "_") for p in paths]
    if len(set(out)) != len(out):
        dup = next(p for p, o in zip(paths, out) if out.count(o) > 1)
        raise ClassifierError(f"{dup}: given twice (or two files of one name in different folders)")
    return out


def _scale_bar_nm(width_nm: float) -> float:
    target = width_nm / 5
    for v in (0.5, 1, 2, 5, 10, 20, 50, 100, 200, 500):
        if v >= target:
            return float(v)
    return 1000.0


def analyse(image: np.ndarray, pixel_size_nm: float, model: nn.Module | None = None, info: ModelInfo | None = None,
            *, path: str = "image", settings: DetectionSettings = DetectionSettings(), device: str | None = None,
            threshold: float | None = None) -> Analysis:
    """Detect, measure, and (with a model and its ``ModelInfo``) classify the particles of ``image``;
    below ``threshold`` (default: the model's, else 0.8) a particle is "unknown"."""
    labels = detect_particles(image, pixel_size_nm, settings)
    particles = measure(labels, pixel_size_nm)
    classes: tuple[str, ...] = tuple(info.classes) if info is not None else ()
    thr = float(threshold if threshold is not None else (info.threshold if info is not None else 0.8))
    if model is not None and particles:
        x = np.stack([info.preprocessing.apply(image, labels == p.id) for p in particles])
        probs = predict_proba(model, x, resolve_device(device))
        for p, pr in zip(particles, probs):
            k = int(pr.argmax())
            p.confidence = float(pr[k])
            p.label = classes[k] if pr[k] >= thr else UNKNOWN
            p.probabilities = {c: float(v) for c, v in zip(classes, pr)}
    return Analysis(path, np.asarray(image, np.float32), float(pixel_size_nm), labels, particles, classes, thr)
