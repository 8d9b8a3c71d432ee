"""Training: cut-outs of the datasets' train splits, augmented on the device, into a ResNet; the
weights of the epoch with the best validation accuracy go into the model file."""

from __future__ import annotations

import copy
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from classifier.augment import Augmentation
from classifier.classes import class_names
from classifier.data import CutoutSet, Preprocessing, concatenate, load_cutouts
from classifier.errors import ClassifierError, refuse_existing
from classifier.model import ARCHITECTURES, build_model
from classifier.modelfile import ModelInfo, check_threshold, save_model
from datagen.device import resolve_device


@dataclass
class TrainConfig:
    """Training settings; every one is recorded in the model file."""

    arch: str = "resnet18"
    mode: str = "three"
    size: int = 224  # input side [pixel]
    margin: float = 0.1
    epochs: int = 30
    batch_size: int = 64
    lr: float = 1e-3  # peak learning rate of AdamW (cosine decay, one warm-up epoch)
    weight_decay: float = 1e-4
    class_weights: str = "balanced"  # "balanced" (inverse class frequency) or "none"
    seed: int = 0
    threshold: float = 0.8
    augment: Augmentation = field(default_factory=Augmentation)

    def __post_init__(self):
        if self.arch not in ARCHITECTURES:
            raise ClassifierError(f"arch: unknown architecture {self.arch!r} (use {', '.join(ARCHITECTURES)})")
        class_names(self.mode)
        for name in ("epochs", "batch_size"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise ClassifierError(f"{name}: must be a positive integer, got {getattr(self, name)!r}")
        if self.batch_size < 2:
            raise ClassifierError("batch_size: must be at least 2 (batch normalisation)")
        if not 0 < self.lr < 1:
            raise ClassifierError(f"lr: learning rate must be in (0, 1), got {self.lr!r}")
        if self.class_weights not in ("balanced", "none"):
            raise ClassifierError(f"class_weights: use 'balanced' or 'none', got {self.class_weights!r}")
        check_threshold(self.threshold)
        Preprocessing(self.size, self.margin)

    def as_dict(self) -> dict:
        d = asdict(self)
        d["augment"] = self.augment.as_dict()
        return d


@dataclass
class TrainResult:
    path: Path
    info: ModelInfo
    best_epoch: int
    seconds: float


def _batches(x: torch.Tensor, idx: torch.Tensor, batch_size: int, device: torch.device):
    for start in range(0, len(idx), batch_size):
        sel = idx[start:start + batch_size]
        yield x[sel].to(device, non_blocking=True).unsqueeze(1), sel


def predict_proba(model: nn.Module, x: np.ndarray | torch.Tensor, device: torch.device, *,
                  batch_size: int = 256) -> np.ndarray:
    """Softmax outputs (N, C) of ``model`` for cut-outs ``x`` (N, S, S)."""
    x = torch.as_tensor(x)
    model.eval()
    out = []
    with torch.inference_mode(), _autocast(device):
        for xb, _ in _batches(x, torch.arange(len(x)), batch_size, device):
            out.append(torch.softmax(model(xb.contiguous(memory_format=torch.channels_last)).float(), 1).cpu())
    return torch.cat(out).numpy() if out else np.zeros((0, 0), np.float32)


def _autocast(device: torch.device):
    """bfloat16 mixed precision on CUDA; full float32 on the CPU."""
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda")


def train(datasets: list[str | Path], out: str | Path, config: TrainConfig | None = None, *,
          weights: str | Path | None = None, device: str | None = None, overwrite: bool = False,
          progress: bool = True) -> TrainResult:
    """Train a classifier on the train splits of ``datasets`` (selected on their val splits) and write
    the model file ``out``."""
    config = config or TrainConfig()
    out = Path(out)
    if not overwrite:  # before any work, not after hours of it
        refuse_existing([out])
    if not datasets:
        raise ClassifierError("datasets: give at least one dataset to train on")
    dev = resolve_device(device)
    prep = Preprocessing(config.size, config.margin)
    train_set = concatenate([load_cutouts(p, "train", config.mode, prep, progress=progress) for p in datasets])
    val_set = concatenate([load_cutouts(p, "val", config.mode, prep, progress=progress) for p in datasets])
    if len(train_set) < 2:
        raise ClassifierError(f"datasets: {len(train_set)} training sample(s); batch normalisation needs at least 2")
    n_classes = len(train_set.classes)
    counts = np.bincount(train_set.y, minlength=n_classes)
    if (counts == 0).any():
        missing = [c for c, n in zip(train_set.classes, counts) if n == 0]
        raise ClassifierError(f"datasets: no training samples of class {', '.join(missing)}")

    torch.manual_seed(config.seed)
    model = build_model(config.arch, n_classes, weights=weights).to(dev).to(memory_format=torch.channels_last)
    class_w = (counts.sum() / (n_classes * counts)) if config.class_weights == "balanced" else np.ones(n_classes)
    loss_fn = nn.CrossEntropyLoss(weight=torch.as_tensor(class_w, dtype=torch.float32, device=dev))
    opt = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    steps_per_epoch = max(1, len(train_set) // config.batch_size)
    total = steps_per_epoch * config.epochs
    warm = min(steps_per_epoch, total // 2) or 1
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: (s + 1) / warm if s < warm else 0.5 * (1 + np.cos(np.pi * (s - warm) / max(1, total - warm))))
    gen = torch.Generator().manual_seed(config.seed)
    aug_gen = torch.Generator(device=dev).manual_seed(config.seed + 1)
    x_train = _stage(train_set, dev)
    y_train = torch.as_tensor(train_set.y)
    y_val, val_weight = torch.as_tensor(val_set.y), torch.as_tensor(class_w, dtype=torch.float32)

    info = ModelInfo(arch=config.arch, classes=train_set.classes, mode=config.mode, preprocessing=prep,
                     threshold=config.threshold, datasets=list(train_set.sources),
                     training={**config.as_dict(), "device": str(dev), "weights": str(weights) if weights else None,
                               "n_train": len(train_set), "n_val": len(val_set),
                               "train_counts": train_set.counts(), "val_counts": val_set.counts(),
                               "class_weight": [round(float(w), 6) for w in class_w]})
    best = (-1.0, np.inf, 0, None)  # val accuracy, val loss, epoch, weights
    t0 = time.perf_counter()
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    columns = (TextColumn("[progress.description]{task.description}"), BarColumn(), MofNCompleteColumn(),
               TimeRemainingColumn(), TextColumn("{task.fields[status]}"))
    try:
        with Progress(*columns, disable=not progress) as bar:
            task = bar.add_task(f"training {config.arch}", total=config.epochs, status="")
            for epoch in range(1, config.epochs + 1):
                te = time.perf_counter()
                model.train()
                order = torch.randperm(len(train_set), generator=gen)[:steps_per_epoch * config.batch_size]
                loss_sum = right = seen = 0
                for xb, sel in _batches(x_train, order, config.batch_size, dev):
                    yb = y_train[sel].to(dev)
                    xb = config.augment(xb, aug_gen)
                    with _autocast(dev):
                        logits = model(xb.contiguous(memory_format=torch.channels_last))
                        loss = loss_fn(logits.float(), yb)
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                    opt.step()
                    sched.step()
                    loss_sum += float(loss.detach()) * len(sel)
                    right += int((logits.argmax(1) == yb).sum())
                    seen += len(sel)
                probs = predict_proba(model, val_set.x, dev)
                val_loss = float(nn.functional.nll_loss(torch.log(torch.as_tensor(probs).clamp_min(1e-12)), y_val,
                                                        weight=val_weight))
                val_acc = float((probs.argmax(1) == val_set.y).mean())
                record = {"epoch": epoch, "train_loss": round(loss_sum / seen, 6), "train_accuracy": round(right / seen, 6),
                          "val_loss": round(val_loss, 6), "val_accuracy": round(val_acc, 6),
                          "lr": float(sched.get_last_lr()[0]), "seconds": round(time.perf_counter() - te, 2)}
                info.history.append(record)
                if (val_acc, -val_loss) > (best[0], -best[1]):
                    best = (val_acc, val_loss, epoch, copy.deepcopy(model.state_dict()))
                status = f"loss {record['train_loss']:.3f}  val acc {val_acc:.1%}"
                bar.update(task, advance=1, status=status)
                if progress:  # one line per epoch, kept above the bar (and in logs, where the bar is not drawn)
                    bar.console.print(f"epoch {epoch}/{config.epochs}: {status}  ({record['seconds']:.0f} s)",
                                      highlight=False)
    except KeyboardInterrupt:
        if best[3] is not None:  # keep what was learnt: the best epoch so far, marked as interrupted
            info.training["interrupted_after_epoch"] = len(info.history)
            _finish(model, best, info, out, overwrite)
        raise
    return TrainResult(_finish(model, best, info, out, overwrite), info, best[2], time.perf_counter() - t0)


def _finish(model, best, info: ModelInfo, out: Path, overwrite: bool) -> Path:
    model.load_state_dict(best[3])
    info.training["best_epoch"] = best[2]
    path = save_model(out, model, info, overwrite=overwrite)
    plot_history(info.history, path.with_suffix(".history.png"), best_epoch=best[2])
    return path


def _stage(cutouts: CutoutSet, dev: torch.device) -> torch.Tensor:
    """The training cut-outs as one tensor: on the GPU when they take less than a quarter of its free
    memory, else in pinned host memory."""
    x = torch.from_numpy(cutouts.x)
    if dev.type == "cuda":
        free, _ = torch.cuda.mem_get_info(dev)
        return x.to(dev) if x.nbytes < free / 4 else x.pin_memory()
    return x


def plot_history(history: list[dict], path: Path, best_epoch: int | None = None) -> Path:
    """Loss and accuracy per epoch, training and validation."""
    import matplotlib

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
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
