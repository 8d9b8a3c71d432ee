"""The training curves: loss and accuracy per epoch, training and validation, as a picture."""

from __future__ import annotations

from typing import TYPE_CHECKING

from datagen.files import atomic_path

if TYPE_CHECKING:
    from pathlib import Path


def plot_history(history: list[dict], path: Path, best_epoch: int | None = None) -> Path:
    """Loss and accuracy per epoch of ``history`` (the model file's per-epoch records), training and
    validation, with the best epoch marked; written to ``path`` (PNG)."""
    import matplotlib  # lazy: heavy, and needed only for the picture

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ep = [h["epoch"] for h in history]
    fig, (a, b) = plt.subplots(1, 2, figsize=(9, 3.4))
    a.plot(ep, [h["train_loss"] for h in history], label="train")
    a.plot(ep, [h["val_loss"] for h in history], label="val")
    a.set_xlabel("epoch")
    a.set_ylabel("cross-entropy loss")
    b.plot(ep, [h["train_accuracy"] for h in history], label="train (augmented)")
    b.plot(ep, [h["val_accuracy"] for h in history], label="val")
    b.set_xlabel("epoch")
    b.set_ylabel("accuracy")
    b.set_ylim(0, 1.02)
    for ax in (a, b):
        if best_epoch:
            ax.axvline(best_epoch, color="gray", ls="--", lw=1)
        ax.legend(fontsize=8)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110)
    plt.close(fig)
    return path
