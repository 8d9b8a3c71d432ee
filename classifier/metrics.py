"""Metrics as in the paper: accuracy, per-class precision and recall, the confusion matrix, and the
reject rule (a prediction below the confidence threshold is "unknown"; accuracy is then reported on the
predictions kept, with the coverage, the fraction kept)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from classifier.classes import AMORPHOUS, predicted_labels
from classifier.errors import ClassifierError
from datagen.files import atomic_path
from datagen.visibility import bin_index, bin_names


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> np.ndarray:
    """Counts (n_classes, n_classes): row = true class, column = predicted class."""
    y_true, y_pred = np.asarray(y_true, np.int64), np.asarray(y_pred, np.int64)
    if y_true.shape != y_pred.shape:
        raise ClassifierError(f"labels and predictions differ in shape: {y_true.shape} and {y_pred.shape}")
    return np.bincount(y_true * n_classes + y_pred, minlength=n_classes * n_classes).reshape(n_classes, n_classes)


@dataclass
class Report:
    """Predictions of a set of labelled particles, and the metrics derived from them."""

    classes: tuple[str, ...]
    y_true: np.ndarray  # (N,) int64
    probs: np.ndarray  # (N, C) softmax outputs
    threshold: float
    visibility: np.ndarray | None = None  # (N,) lattice visibility (``datagen.visibility``), NaN: not measured

    def __post_init__(self):
        self.y_true = np.asarray(self.y_true, np.int64)
        self.probs = np.asarray(self.probs, np.float64)
        if self.probs.ndim != 2 or self.probs.shape != (len(self.y_true), len(self.classes)):
            raise ClassifierError(f"probabilities of shape {self.probs.shape} do not fit {len(self.y_true)} "
                                  f"labels and {len(self.classes)} classes")
        if self.visibility is not None:
            self.visibility = np.asarray(self.visibility, np.float64)
            if self.visibility.shape != self.y_true.shape:
                raise ClassifierError(f"visibility of shape {self.visibility.shape} does not fit {len(self.y_true)} labels")

    @property
    def y_pred(self) -> np.ndarray:
        return self.probs.argmax(axis=1)

    @property
    def confidence(self) -> np.ndarray:
        return self.probs.max(axis=1)

    @property
    def kept(self) -> np.ndarray:
        """Predictions at or above the threshold (the others are "unknown")."""
        return self.confidence >= self.threshold

    def labels(self) -> list[str]:
        """The predicted class names, "unknown" below the threshold."""
        return predicted_labels(self.probs, self.classes, self.threshold)

    def confusion(self, *, kept_only: bool = False) -> np.ndarray:
        sel = self.kept if kept_only else slice(None)
        return confusion_matrix(self.y_true[sel], self.y_pred[sel], len(self.classes))

    def summary(self) -> dict:
        """Accuracy, per-class precision and recall, the confusion matrix, and the same with the reject rule."""
        n = len(self.y_true)
        cm = self.confusion()
        kept = self.kept
        cm_kept = self.confusion(kept_only=True)
        with np.errstate(invalid="ignore", divide="ignore"):
            precision = np.diag(cm) / cm.sum(axis=0)
            recall = np.diag(cm) / cm.sum(axis=1)
        def nan_none(v):
            return None if not np.isfinite(v) else round(float(v), 6)
        return {
            "n": n, "classes": list(self.classes), "threshold": self.threshold,
            "accuracy": nan_none(np.trace(cm) / n) if n else None,
            "precision": {c: nan_none(v) for c, v in zip(self.classes, precision)},
            "recall": {c: nan_none(v) for c, v in zip(self.classes, recall)},
            "confusion": cm.tolist(),
            "coverage": nan_none(kept.mean()) if n else None,
            "accuracy_kept": nan_none(np.trace(cm_kept) / kept.sum()) if kept.any() else None,
            "confusion_kept": cm_kept.tolist(),
            "support": {c: int(v) for c, v in zip(self.classes, cm.sum(axis=1))},
            **self.visibility_summary(),
        }

    def visibility_summary(self) -> dict:
        """Accuracy per lattice-visibility bin (``datagen.visibility.BINS``) with each bin's count per true
        class, and the accuracy on the clear particles: the amorphous ones and the crystalline ones whose
        lattice shows (visibility >= 1). Empty where no sample's visibility was measured."""
        if self.visibility is None or not np.isfinite(self.visibility).any():
            return {}
        right = self.y_pred == self.y_true
        idx = bin_index(self.visibility)
        bins = {}
        for b, name in enumerate(bin_names()):
            sel = idx == b
            bins[name] = {"n": int(sel.sum()), "accuracy": round(float(right[sel].mean()), 6) if sel.any() else None,
                          "support": {c: int((self.y_true[sel] == k).sum()) for k, c in enumerate(self.classes)}}
        measured = np.isfinite(self.visibility)
        clear = measured & ((self.y_true == self.classes.index(AMORPHOUS)) | (self.visibility >= 1))
        return {"by_visibility": bins, "visibility_measured": int(measured.sum()),
                "n_clear": int(clear.sum()),
                "accuracy_clear": round(float(right[clear].mean()), 6) if clear.any() else None}

    def coverage_curve(self, thresholds: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(thresholds, coverage, accuracy of the kept predictions) for a range of thresholds."""
        t = np.linspace(0, 0.99, 100) if thresholds is None else np.asarray(thresholds, float)
        conf, right = self.confidence, self.y_pred == self.y_true
        kept = conf[None, :] >= t[:, None]
        cov = kept.mean(axis=1)
        with np.errstate(invalid="ignore"):
            acc = (kept & right[None, :]).sum(axis=1) / kept.sum(axis=1)
        return t, cov, acc

    def plot(self, path: str | Path, title: str = "") -> Path:
        """Confusion matrix (all predictions), and accuracy and coverage against the threshold."""
        import matplotlib  # lazy: heavy, and needed only for the picture

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        s = self.summary()
        cm = np.asarray(s["confusion"])
        by_vis = s.get("by_visibility")
        if by_vis:
            fig, (ax, ax2, ax3) = plt.subplots(1, 3, figsize=(14.5, 4.3), gridspec_kw={"width_ratios": [1, 1.1, 0.9]})
        else:
            fig, (ax, ax2) = plt.subplots(1, 2, figsize=(10, 4.3), gridspec_kw={"width_ratios": [1, 1.1]})
        rows = cm.sum(axis=1, keepdims=True)
        frac = np.divide(cm, rows, out=np.zeros(cm.shape), where=rows > 0)
        ax.imshow(frac, cmap="Blues", vmin=0, vmax=1)
        for i in range(cm.shape[0]):
            for j in range(cm.shape[1]):
                ax.text(j, i, f"{cm[i, j]}\n{frac[i, j]:.0%}", ha="center", va="center",
                        color="white" if frac[i, j] > 0.6 else "black", fontsize=9)
        short = [c[:5] + "." if len(c) > 8 else c for c in self.classes]
        ax.set_xticks(range(len(short)), short)
        ax.set_yticks(range(len(short)), short)
        ax.set_xlabel("predicted")
        ax.set_ylabel("true")
        ax.set_title(f"accuracy {s['accuracy']:.1%} (n = {s['n']})" if s["accuracy"] is not None else "no samples")
        t, cov, acc = self.coverage_curve()
        ax2.plot(t, acc, label="accuracy of kept predictions")
        ax2.plot(t, cov, label="coverage (fraction kept)")
        ax2.axvline(self.threshold, color="gray", ls="--", lw=1)
        if s["accuracy_kept"] is not None:
            ax2.set_title(f"threshold {self.threshold:.2f}: accuracy {s['accuracy_kept']:.1%}, "
                          f"coverage {s['coverage']:.1%}", fontsize=10)
        ax2.set_xlabel("confidence threshold")
        ax2.set_ylim(0, 1.02)
        ax2.set_xlim(0, 1)
        ax2.legend(loc="lower left", fontsize=8)
        if by_vis:
            names = list(by_vis)
            acc = [b["accuracy"] if b["accuracy"] is not None else 0.0 for b in by_vis.values()]
            ax3.bar(range(len(names)), acc, color="tab:blue")
            for i, b in enumerate(by_vis.values()):
                ax3.text(i, acc[i] + 0.02, f"n={b['n']}", ha="center", fontsize=8)
            ax3.set_xticks(range(len(names)), names)
            ax3.set_ylim(0, 1.1)
            ax3.set_xlabel("lattice visibility (peak ratio / amorphous 99th pct.)")
            ax3.set_ylabel("accuracy")
            clear = s.get("accuracy_clear")
            ax3.set_title(f"clear particles: {clear:.1%}" if clear is not None else "by lattice visibility", fontsize=10)
        if title:
            fig.suptitle(title, fontsize=10)
        fig.tight_layout()
        path = Path(path)
        with atomic_path(path) as tmp:
            fig.savefig(tmp, dpi=120)
        plt.close(fig)
        return path
