"""Evaluation: a model file applied to a labelled dataset split, with the paper's metrics."""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from classifier.data import concatenate, load_cutouts
from classifier.errors import refuse_existing
from classifier.metrics import Report
from classifier.modelfile import check_threshold, load_model
from classifier.predict import predict_proba
from datagen.device import resolve_device
from datagen.files import atomic_paths

if TYPE_CHECKING:
    from classifier.data import CutoutSet
    from classifier.modelfile import ModelInfo


@dataclass
class Evaluation:
    """A model file's predictions on labelled cut-outs, and their metrics."""

    info: ModelInfo
    cutouts: CutoutSet
    report: Report

    def write(self, folder: str | Path, *, overwrite: bool = False) -> dict[str, Path]:
        """``report.json`` (metrics, model and datasets), ``predictions.csv`` (one row per particle) and
        ``confusion.png`` into ``folder``; existing files are replaced only with ``overwrite``."""
        paths = output_paths(folder)
        if not overwrite:
            refuse_existing(paths.values())
        Path(folder).mkdir(parents=True, exist_ok=True)
        with atomic_paths(paths) as tmp:
            summary = self.summary()
            tmp["report"].write_text(json.dumps(summary, indent=2) + "\n")
            labels = self.report.labels()
            with tmp["predictions"].open("w", newline="") as fh:
                w = csv.writer(fh)
                w.writerow(["dataset", "sample", "true", "predicted", "confidence",
                            *[f"p_{c}" for c in self.info.classes], "visibility"])
                for n in range(len(self.cutouts)):
                    src = self.cutouts.sources[self.cutouts.origin[n]]
                    sample = self.cutouts.names[n] if self.cutouts.names else int(self.cutouts.index[n])
                    w.writerow([src.name, sample, self.info.classes[self.cutouts.y[n]], labels[n],
                                f"{self.report.confidence[n]:.4f}", *[f"{p:.4f}" for p in self.report.probs[n]],
                                visibility_text(self.cutouts.visibility, n)])
            names = ", ".join(str(s) for s in self.cutouts.sources)
            self.report.plot(tmp["figure"], title=f"{self.info.arch} ({self.info.mode}-class) on {names}")
        return paths

    def summary(self) -> dict:
        return {**self.report.summary(),
                "model": {"arch": self.info.arch, "mode": self.info.mode, "created": self.info.created,
                          "trained_on": [d.as_dict() for d in self.info.datasets]},
                "datasets": [s.as_dict() for s in self.cutouts.sources]}


def visibility_text(visibility, n: int) -> str:
    """Sample ``n``'s lattice visibility for the predictions table ("" where not measured)."""
    if visibility is None or not np.isfinite(visibility[n]):
        return ""
    return f"{visibility[n]:.3g}"


def output_paths(folder: str | Path) -> dict[str, Path]:
    """The files ``Evaluation.write`` puts into ``folder``."""
    folder = Path(folder)
    return {"report": folder / "report.json", "predictions": folder / "predictions.csv",
            "figure": folder / "confusion.png"}


def evaluate(model_path: str | Path, datasets: list[str | Path], *, split: str = "test",
             threshold: float | None = None, device: str | None = None, batch_size: int = 256,
             progress: bool = False) -> Evaluation:
    """Apply the model file to ``split`` of ``datasets`` (labels mapped onto the model's classes by name)."""
    dev = resolve_device(device)
    model, info = load_model(model_path, dev)
    if threshold is not None:
        info.threshold = check_threshold(threshold)
    cut = concatenate([load_cutouts(p, split, info.mode, info.preprocessing, progress=progress) for p in datasets])
    probs = predict_proba(model, cut.x, dev, batch_size=batch_size)
    return Evaluation(info, cut, Report(info.classes, cut.y, probs, info.threshold, cut.visibility))
