"""Whole micrographs: detect the particles, measure them, cut each out, classify it, and report.

``analyse`` runs a detector (``classifier.detection.DETECTORS``), measures every region
(``classifier.measure``), and with a model cuts each particle out exactly as the training images were
(``datagen.cutout.cutout``, on the particle's own box: the cost does not grow with the image) and
classifies it. ``Analysis.write`` puts, per micrograph: the table (``NAME.csv`` and ``NAME.json``), the
instance label image (``NAME.labels.tif``: 16-bit, the input's size, 0 background, id = the table's
id, with the pixel size for ImageJ and napari) and the overlay (``NAME.png``, at the input's size, each
particle outlined in its class's colour and numbered, a scale bar where there are no particles).
``write_summary`` adds the folder's summary: counts per class and a size histogram.
"""

from __future__ import annotations

import csv
import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from classifier.classes import CRYSTALLINE, UNKNOWN, predicted_labels
from classifier.detection import get_detector
from classifier.errors import ClassifierError, refuse_existing
from classifier.measure import Particle, measure
from classifier.predict import predict_proba
from classifier.readers import check_pixel_size
from datagen.classes import CLASS_COLOURS
from datagen.device import resolve_device
from datagen.files import atomic_path, atomic_paths

if TYPE_CHECKING:
    from torch import nn

    from classifier.modelfile import ModelInfo

#: Colours of the overlay: the classes' (as in dataset pictures), the two-class mode's, unknown and unclassified.
COLOURS = {**CLASS_COLOURS, CRYSTALLINE: CLASS_COLOURS["monocrystalline"], UNKNOWN: "tab:gray", "": "tab:red"}

TABLE_FIELDS = ("id", "x_px", "y_px", "bbox_row0", "bbox_col0", "bbox_row1", "bbox_col1", "area_px", "area_nm2",
                "diameter_nm", "feret_max_nm", "feret_min_nm", "major_nm", "minor_nm", "aspect_ratio", "circularity",
                "solidity", "touches_border", "class", "confidence")


@dataclass
class Analysis:
    """The particles of one micrograph, and what is needed to draw them."""

    path: str
    image: np.ndarray
    pixel_size_nm: float
    labels: np.ndarray
    annotations: np.ndarray
    particles: list[Particle]
    classes: tuple[str, ...]
    threshold: float | None  # the reject rule's, when a model classified the particles
    detector: str
    seconds: dict = field(default_factory=dict)

    def counts(self) -> dict[str, int]:
        """Particles per class (and unknown); without a model, all are "detected"."""
        if not self.classes:
            return {"detected": len(self.particles)}
        return {c: sum(p.label == c for p in self.particles) for c in (*self.classes, UNKNOWN)}

    def rows(self) -> list[dict]:
        """The table: one dict per particle, the columns of ``TABLE_FIELDS`` then one probability per class."""
        out = []
        for p in self.particles:
            row = {"id": p.id, "x_px": p.x_px, "y_px": p.y_px, "bbox_row0": p.bbox[0], "bbox_col0": p.bbox[1],
                   "bbox_row1": p.bbox[2], "bbox_col1": p.bbox[3], "area_px": p.area_px, "area_nm2": p.area_nm2,
                   "diameter_nm": p.diameter_nm, "feret_max_nm": p.feret_max_nm, "feret_min_nm": p.feret_min_nm,
                   "major_nm": p.major_nm, "minor_nm": p.minor_nm, "aspect_ratio": p.aspect_ratio,
                   "circularity": p.circularity, "solidity": p.solidity, "touches_border": p.touches_border,
                   "class": p.label, "confidence": p.confidence}
            row.update({f"p_{c}": p.probabilities.get(c, float("nan")) for c in self.classes})
            out.append(row)
        return out

    def write(self, folder: str | Path, stem: str | None = None, *, overwrite: bool = False) -> dict[str, Path]:
        """The table (.csv, .json), the label image (.labels.tif) and the overlay (.png) of this micrograph;
        existing files are replaced only with ``overwrite``; all land together or none does."""
        import tifffile

        folder = Path(folder)
        paths = output_paths(folder, stem or Path(self.path).stem)
        if not overwrite:
            refuse_existing(paths.values())
        folder.mkdir(parents=True, exist_ok=True)
        rows = self.rows()
        with atomic_paths(paths) as tmp:
            with tmp["table"].open("w", newline="") as fh:
                fields = list(rows[0]) if rows else [*TABLE_FIELDS, *(f"p_{c}" for c in self.classes)]
                w = csv.DictWriter(fh, fieldnames=fields)
                w.writeheader()
                for row in rows:
                    w.writerow({k: (f"{v:.4g}" if isinstance(v, float) else v) for k, v in row.items()})
            tmp["json"].write_text(json.dumps({
                "micrograph": self.path, "pixel_size_nm": self.pixel_size_nm, "shape": list(self.image.shape),
                "detector": self.detector, "classes": list(self.classes), "threshold": self.threshold,
                "counts": self.counts(), "annotation_pixels": int(self.annotations.sum()),
                "seconds": self.seconds, "particles": rows}, indent=1, default=_json_default) + "\n")
            px_per_nm = 1.0 / self.pixel_size_nm
            tifffile.imwrite(tmp["labels"], self.labels.astype(np.uint16), imagej=True,
                             resolution=(px_per_nm, px_per_nm), metadata={"unit": "nm", "axes": "YX"})
            self.plot(tmp["figure"])
        return paths

    def plot(self, path: str | Path) -> Path:
        """The overlay, at the micrograph's own size: each particle outlined in its class's colour and
        numbered, a legend of the counts and a scale bar in the corners with the fewest particles."""
        from matplotlib import patheffects
        from matplotlib.figure import Figure
        from skimage.measure import find_contours

        h, w = self.image.shape
        dpi = 100
        fig = Figure(figsize=(w / dpi, h / dpi), dpi=dpi)
        ax = fig.add_axes((0, 0, 1, 1))
        ax.set_axis_off()
        lo, hi = np.percentile(self.image, [1, 99])
        ax.imshow(self.image, cmap="gray", vmin=lo, vmax=hi, interpolation="nearest", aspect="auto")
        ax.set_xlim(-0.5, w - 0.5)
        ax.set_ylim(h - 0.5, -0.5)
        font = max(6.0, min(h, w) / 70) * 72 / dpi  # text about 1/70 of the image, never below 6 pt
        halo = [patheffects.withStroke(linewidth=font / 4, foreground="black")]
        line = max(0.6, min(h, w) / 900)
        for p in self.particles:
            c = COLOURS.get(p.label, "tab:red")
            y0, x0, y1, x1 = p.bbox
            region = np.pad(self.labels[y0:y1, x0:x1] == p.id, 1)
            for contour in find_contours(region.astype(np.float32), 0.5):
                ax.plot(contour[:, 1] + x0 - 1, contour[:, 0] + y0 - 1, color=c, lw=line)
            text = f"{p.id}" + (f" {p.confidence:.2f}" if np.isfinite(p.confidence) else "")
            ax.text(p.x_px, y0 - 1, text, color="white", fontsize=font * 0.8, ha="center", va="bottom",
                    path_effects=halo)
        corners = free_corners(self.labels > 0, self.annotations)
        bar_nm = scale_bar_nm(w * self.pixel_size_nm)
        bar_px = bar_nm / self.pixel_size_nm
        cy, cx = corners[0]
        margin = 0.04
        xb = w * margin if cx == 0 else w * (1 - margin) - bar_px
        yb = h * (1 - margin) if cy == 1 else h * margin + font * dpi / 72 * 1.6
        ax.plot([xb, xb + bar_px], [yb, yb], color="white", lw=max(3.0, h / 150),
                solid_capstyle="butt", path_effects=[patheffects.withStroke(linewidth=max(3.0, h / 150) + 2, foreground="black")])
        ax.text(xb + bar_px / 2, yb - h * 0.01, f"{bar_nm:g} nm", color="white", fontsize=font, ha="center", va="bottom",
                path_effects=halo)
        counts = ", ".join(f"{c} {n}" for c, n in self.counts().items() if n) or "no particles"
        rule = f"; confidence < {self.threshold:.2f}: unknown" if self.threshold is not None and self.classes else ""
        ty, tx = corners[1]
        ax.text(w * margin if tx == 0 else w * (1 - margin), h * margin if ty == 0 else h * (1 - margin),
                f"{Path(self.path).name}: {len(self.particles)} particles ({counts}){rule}", color="white",
                fontsize=font, ha="left" if tx == 0 else "right", va="top" if ty == 0 else "bottom",
                path_effects=halo, bbox={"facecolor": "black", "alpha": 0.45, "edgecolor": "none", "pad": 2})
        with atomic_path(path) as tmp:
            fig.savefig(tmp, dpi=dpi)
        return Path(path)


def free_corners(occupied: np.ndarray, annotations: np.ndarray | None = None) -> list[tuple[int, int]]:
    """The four corners as (row side, column side) (0 top/left, 1 bottom/right), the emptiest first: by the
    share of particle or annotation pixels in a box of a quarter of the image's width and a tenth of its
    height at each corner."""
    h, w = occupied.shape
    busy = occupied | (annotations if annotations is not None else False)
    bh, bw = max(1, h // 10), max(1, w // 4)
    boxes = {(0, 0): busy[:bh, :bw], (0, 1): busy[:bh, -bw:], (1, 0): busy[-bh:, :bw], (1, 1): busy[-bh:, -bw:]}
    return sorted(boxes, key=lambda k: (boxes[k].mean(), -k[0], k[1]))  # ties: bottom left first


def _json_default(value):
    if isinstance(value, (np.integer, np.floating, np.bool_)):
        return value.item()
    raise TypeError(type(value).__name__)


def output_paths(folder: Path, stem: str) -> dict[str, Path]:
    """The files ``Analysis.write`` puts into ``folder`` for the micrograph ``stem``."""
    return {"table": folder / f"{stem}.csv", "json": folder / f"{stem}.json",
            "labels": folder / f"{stem}.labels.tif", "figure": folder / f"{stem}.png"}


def summary_paths(folder: Path) -> dict[str, Path]:
    return {"table": folder / "summary.csv", "json": folder / "summary.json", "figure": folder / "summary.png"}


def output_stems(paths: list[Path]) -> list[str]:
    """File stems for each micrograph's outputs: the stem, or the whole name where two stems collide."""
    stems = [p.stem for p in paths]
    out = [p.stem if stems.count(p.stem) == 1 else p.name.replace(".", "_") for p in paths]
    if len(set(out)) != len(out):
        dup = next(p for p, o in zip(paths, out) if out.count(o) > 1)
        raise ClassifierError(f"{dup}: given twice (or two files of one name in different folders)")
    if "summary" in out:
        raise ClassifierError("a micrograph named 'summary' would overwrite the folder's summary; rename it")
    return out


def scale_bar_nm(width_nm: float) -> float:
    """A round length near a fifth of ``width_nm`` (1, 2 or 5 times a power of ten)."""
    target = width_nm / 5
    exp = np.floor(np.log10(target))
    for m in (5, 2, 1):
        if m * 10 ** exp <= target:
            return float(m * 10 ** exp)
    return float(10 ** exp)


def classify(image: np.ndarray, labels: np.ndarray, particles: list[Particle], model: nn.Module, info: ModelInfo,
             device: str | None, threshold: float) -> None:
    """Cut each particle out (on its own box) and set its label, confidence and probabilities."""
    if not particles:
        return
    x = np.stack([info.preprocessing.apply(image[p.bbox[0]:p.bbox[2], p.bbox[1]:p.bbox[3]],
                                           labels[p.bbox[0]:p.bbox[2], p.bbox[1]:p.bbox[3]] == p.id)
                  for p in particles])
    probs = predict_proba(model, x, resolve_device(device))
    for p, pr, label in zip(particles, probs, predicted_labels(probs, info.classes, threshold)):
        p.confidence = float(pr.max())
        p.label = label
        p.probabilities = {c: float(v) for c, v in zip(info.classes, pr)}


def analyse(image: np.ndarray, pixel_size_nm: float, model: nn.Module | None = None, info: ModelInfo | None = None,
            *, path: str = "image", detector: str = "unet", settings=None, device: str | None = None,
            threshold: float | None = None) -> Analysis:
    """Detect, measure, and (with a model and its ``ModelInfo``) classify the particles of ``image``;
    below ``threshold`` (default: the model's) a particle is "unknown"."""
    check_pixel_size(pixel_size_nm)
    image = np.asarray(image, np.float32)
    detect = get_detector(detector)
    t0 = time.perf_counter()
    labels, annotations = detect(image, pixel_size_nm, settings) if settings is not None else detect(image, pixel_size_nm)
    t1 = time.perf_counter()
    particles = measure(labels, pixel_size_nm)
    t2 = time.perf_counter()
    classes: tuple[str, ...] = tuple(info.classes) if info is not None else ()
    thr = None
    if model is not None:
        thr = float(threshold if threshold is not None else info.threshold)
        classify(image, labels, particles, model, info, device, thr)
    t3 = time.perf_counter()
    seconds = {"detect": t1 - t0, "measure": t2 - t1, "classify": t3 - t2}
    return Analysis(path, image, float(pixel_size_nm), labels.astype(np.int32), annotations, particles, classes, thr,
                    detector, seconds)


@dataclass
class FolderSummary:
    """What ``write_summary`` reports of all micrographs analysed into one folder."""

    rows: list[dict] = field(default_factory=list)  # one per micrograph
    diameters: dict[str, list[float]] = field(default_factory=dict)  # per class (or "detected")

    def add(self, analysis: Analysis) -> None:
        counts = analysis.counts()
        d = [p.diameter_nm for p in analysis.particles]
        self.rows.append({"micrograph": analysis.path, "pixel_size_nm": analysis.pixel_size_nm,
                          "particles": len(analysis.particles), **counts,
                          "diameter_mean_nm": float(np.mean(d)) if d else float("nan"),
                          "diameter_std_nm": float(np.std(d)) if d else float("nan")})
        for p in analysis.particles:
            self.diameters.setdefault(p.label or "detected", []).append(p.diameter_nm)


def write_summary(summary: FolderSummary, folder: str | Path, *, overwrite: bool = False) -> dict[str, Path]:
    """``summary.csv`` (one row per micrograph), ``summary.json`` and ``summary.png`` (counts per class,
    size histogram per class) in ``folder``."""
    from matplotlib.figure import Figure

    folder = Path(folder)
    paths = summary_paths(folder)
    if not overwrite:
        refuse_existing(paths.values())
    columns: list[str] = []
    for row in summary.rows:
        columns += [k for k in row if k not in columns]
    totals = {c: len(v) for c, v in summary.diameters.items()}
    with atomic_paths(paths) as tmp:
        with tmp["table"].open("w", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=columns, restval=0)
            w.writeheader()
            for row in summary.rows:
                w.writerow({k: (f"{v:.4g}" if isinstance(v, float) else v) for k, v in row.items()})
        all_d = [d for v in summary.diameters.values() for d in v]
        tmp["json"].write_text(json.dumps({
            "micrographs": summary.rows, "counts": totals, "particles": len(all_d),
            "diameter_nm": {"mean": float(np.mean(all_d)) if all_d else None,
                            "std": float(np.std(all_d)) if all_d else None,
                            "per_class": {c: {"n": len(v), "mean": float(np.mean(v)), "std": float(np.std(v))}
                                          for c, v in summary.diameters.items() if v}}}, indent=1) + "\n")
        fig = Figure(figsize=(9, 3.6))
        a, b = fig.subplots(1, 2, width_ratios=(1, 2))
        names = list(totals)
        a.bar(names, [totals[c] for c in names], color=[COLOURS.get(c, "tab:red") for c in names])
        a.set_ylabel("particles")
        a.set_title(f"{len(summary.rows)} micrographs, {len(all_d)} particles", fontsize=10)
        a.tick_params(axis="x", labelrotation=30, labelsize=8)
        if all_d:
            bins = np.linspace(0, max(all_d) * 1.05, 30)
            b.hist([summary.diameters[c] for c in names], bins=bins, stacked=True, label=names,
                   color=[COLOURS.get(c, "tab:red") for c in names])
            b.legend(fontsize=8, frameon=False)
        b.set_xlabel("equivalent diameter [nm]")
        b.set_ylabel("particles")
        fig.tight_layout()
        fig.savefig(tmp["figure"], dpi=110)
    return paths
