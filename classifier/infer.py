"""Inference on particle images: a model file applied to cut-out files, one row per file.

Each file is read and its particle found as in a labelled folder (``classifier.folders.read_particle``:
a mask beside it, or the support removed to a flat value, or the whole image), cut out with the model's
preprocessing and classified in batches; below the model's threshold (or ``threshold``) a prediction is
"unknown".
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from rich.progress import Progress

from classifier.classes import predicted_labels
from classifier.errors import ClassifierError, refuse_existing
from classifier.folders import is_mask_file, read_particle
from classifier.modelfile import check_threshold, load_model
from classifier.predict import predict_proba
from classifier.readers import IMAGE_SUFFIXES
from datagen.device import resolve_device
from datagen.files import atomic_path


@dataclass
class Predictions:
    files: list[str]
    classes: tuple[str, ...]
    probs: np.ndarray  # (N, C)
    threshold: float

    def labels(self) -> list[str]:
        return predicted_labels(self.probs, self.classes, self.threshold)

    def write_csv(self, path: str | Path, *, overwrite: bool = False) -> Path:
        """file, label ("unknown" under the threshold), confidence and one probability per class."""
        path = Path(path)
        if not overwrite:
            refuse_existing([path])
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path) as tmp, tmp.open("w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(["file", "label", "confidence", *[f"p_{c}" for c in self.classes]])
            for f, label, p in zip(self.files, self.labels(), self.probs):
                w.writerow([f, label, f"{p.max():.4f}", *[f"{v:.4f}" for v in p]])
        return path


def particle_files(inputs: list[str | Path]) -> list[Path]:
    """The particle images named or held (at any depth) by ``inputs``, masks beside them left out."""
    files: list[Path] = []
    for item in map(Path, inputs):
        if item.is_dir():
            found = sorted(p for p in item.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
                           and not is_mask_file(p))
            if not found:
                raise ClassifierError(f"{item}: no particle images in the folder ({', '.join(IMAGE_SUFFIXES)})")
            files += found
        elif item.is_file():
            files.append(item)
        else:
            raise ClassifierError(f"{item}: no such file or folder")
    return files


def infer(model_path: str | Path, inputs: list[str | Path], *, threshold: float | None = None,
          device: str | None = None, batch_size: int = 256, progress: bool = False) -> Predictions:
    """Class probabilities of every particle image in ``inputs`` (files, or folders searched at any depth)."""
    files = particle_files(inputs)
    if threshold is not None:
        check_threshold(threshold)
    dev = resolve_device(device)
    model, info = load_model(model_path, dev)
    x = np.empty((len(files), info.preprocessing.size, info.preprocessing.size), np.float32)
    with Progress(transient=True, disable=not progress) as bar:
        task = bar.add_task("cut-outs", total=len(files))
        for n, f in enumerate(files):
            image, mask = read_particle(f)
            try:
                x[n] = info.preprocessing.apply(image, mask)
            except ValueError as err:
                raise ClassifierError(f"{f}: {err}") from None
            bar.advance(task)
    probs = predict_proba(model, x, dev, batch_size=batch_size)
    return Predictions([str(f) for f in files], info.classes, probs,
                       info.threshold if threshold is None else threshold)
