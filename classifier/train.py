"""Training: cut-outs of the datasets' train splits, augmented on the device, into a ResNet; the
weights of the epoch with the best validation accuracy go into the model file.

``train`` runs the steps below in this order, which fixes the random numbers drawn: the initial
weights from torch's global generator (seeded with ``seed``), the shuffles from a CPU generator
(``seed``), the augmentation from a generator on the device (``seed + 1``).
"""

from __future__ import annotations

import copy
import math
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from torch import nn

from classifier.augment import Augmentation
from classifier.classes import AMORPHOUS, class_names
from classifier.data import Preprocessing, concatenate, load_cutouts
from classifier.errors import ClassifierError, refuse_existing
from classifier.history import plot_history
from classifier.model import ARCHITECTURES, build_model
from classifier.modelfile import ModelInfo, check_threshold, save_model
from classifier.predict import autocast, batches, predict_proba
from datagen.files import atomic_path
from datagen.device import resolve_device

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from classifier.data import CutoutSet


@dataclass
class TrainConfig:
    """Training settings; every one is recorded in the model file."""

    arch: str = "resnet18"
    mode: str = "three"
    size: int = 224  # input side [pixel]
    margin: float = 0.1
    epochs: int = 30
    batch_size: int = 64
    lr: float = 1e-3  # initial (step) or peak (cosine) learning rate of AdamW
    weight_decay: float = 1e-4
    schedule: str = "cosine"  # "cosine": one warm-up epoch, then cosine decay; "step": lr x step_factor every step_epochs
    step_epochs: int = 20
    step_factor: float = 0.62
    patience: int | None = None  # stop when the validation loss has not improved for this many epochs (None: never)
    class_weights: str = "balanced"  # "balanced" (inverse class frequency) or "none"
    seed: int = 0
    threshold: float = 0.8
    augment: Augmentation = field(default_factory=Augmentation)
    #: crystalline training samples with a lattice visibility below this are left out (None: all are used)
    min_visibility: float | None = None
    half: bool = False  # the model file's weights in half precision (the shipped model's)

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
        if self.schedule not in SCHEDULES:
            raise ClassifierError(f"schedule: use {' or '.join(map(repr, SCHEDULES))}, got {self.schedule!r}")
        if not isinstance(self.step_epochs, int) or self.step_epochs < 1 or not 0 < self.step_factor <= 1:
            raise ClassifierError(f"step_epochs, step_factor: need a positive integer and a factor in (0, 1], got "
                                  f"{self.step_epochs!r} and {self.step_factor!r}")
        if self.patience is not None and (not isinstance(self.patience, int) or self.patience < 1):
            raise ClassifierError(f"patience: must be a positive number of epochs or None, got {self.patience!r}")
        if self.class_weights not in ("balanced", "none"):
            raise ClassifierError(f"class_weights: use 'balanced' or 'none', got {self.class_weights!r}")
        check_threshold(self.threshold)
        if self.min_visibility is not None and not (isinstance(self.min_visibility, (int, float))
                                                    and 0 <= self.min_visibility < 1e6):
            raise ClassifierError(f"min_visibility: a lattice visibility >= 0 or None, got {self.min_visibility!r}")
        Preprocessing(self.size, self.margin)

    def as_dict(self) -> dict:
        return asdict(self)  # the augmentation too, as a nested dict


SCHEDULES = ("cosine", "step")

#: The paper's schedule (Gumbiowski et al. 2024): initial learning rate 0.0085, times 0.62 every 20 epochs,
#: at most 80 epochs, stopped when the validation loss has not improved for 5 epochs.
PAPER_SCHEDULE = {"lr": 0.0085, "schedule": "step", "step_epochs": 20, "step_factor": 0.62, "epochs": 80, "patience": 5}


def stalled(history: list[dict], patience: int | None) -> bool:
    """Whether the validation loss has not improved for ``patience`` epochs (never with None)."""
    if patience is None or not history:
        return False
    losses = [h["val_loss"] for h in history]
    return len(losses) - 1 - losses.index(min(losses)) >= patience


@dataclass
class TrainResult:
    """The model file written, its description, the epoch whose weights it holds, and the time taken [s]."""

    path: Path
    info: ModelInfo
    best_epoch: int
    seconds: float


@dataclass(frozen=True)
class BestEpoch:
    """The epoch of the best validation accuracy so far (ties: the lower validation loss) and a copy
    of its weights; epoch 0 and no weights before the first."""

    epoch: int = 0
    accuracy: float = -1.0
    loss: float = math.inf
    state: dict[str, torch.Tensor] | None = None

    def update(self, epoch: int, accuracy: float, loss: float, model: nn.Module) -> BestEpoch:
        """This, or the epoch just validated with a copy of ``model``'s weights where it does better."""
        if (accuracy, -loss) > (self.accuracy, -self.loss):
            return BestEpoch(epoch, accuracy, loss, copy.deepcopy(model.state_dict()))
        return self


@dataclass(frozen=True)
class _Tensors:
    """What the epochs read: the training cut-outs staged for the device, the validation cut-outs, and
    the labels and class weights as tensors."""

    x_train: torch.Tensor  # (N, S, S) on the device or in pinned host memory
    y_train: torch.Tensor  # (N,) int64, CPU
    x_val: np.ndarray  # (M, S, S) float32
    y_val: torch.Tensor  # (M,) int64, CPU
    val_weight: torch.Tensor  # class weights of the validation loss, CPU


@dataclass(frozen=True)
class _Optimisation:
    """Loss, optimiser and learning-rate schedule of one training run."""

    loss_fn: nn.CrossEntropyLoss
    opt: torch.optim.AdamW
    sched: torch.optim.lr_scheduler.LambdaLR
    steps_per_epoch: int


def checkpoint_path(out: str | Path) -> Path:
    """Where a training run that writes ``out`` keeps its checkpoint until it ends."""
    out = Path(out)
    return out.with_name(out.name + ".checkpoint")


def train(datasets: list[str | Path], out: str | Path, config: TrainConfig | None = None, *,
          weights: str | Path | None = None, device: str | None = None, overwrite: bool = False,
          resume: bool = False, progress: bool = True) -> TrainResult:
    """Train a classifier on the train splits of ``datasets`` (the best epoch chosen on their val
    splits) and write the model file ``out``, with the training curves beside it (``.history.png``).

    After every epoch the whole state of the run (weights, optimiser, schedule, random generators,
    history, best epoch) is written atomically to ``checkpoint_path(out)``, so a crash or a full disk
    loses at most the epoch under way; ``resume`` continues from it, to the same weights an
    uninterrupted run reaches. The checkpoint is removed when the model file is written. Interrupted
    (Ctrl-C) after an epoch, it also writes the best epoch so far, marked as interrupted, and re-raises
    ``KeyboardInterrupt``.
    """
    config = config or TrainConfig()
    out = Path(out)
    ckpt = checkpoint_path(out)
    if resume and not ckpt.is_file():
        raise ClassifierError(f"--resume: no checkpoint {ckpt} (a run writes it after every epoch and removes it "
                              f"when it ends)")
    if not (overwrite or resume):  # before any work, not after hours of it
        if ckpt.exists():
            raise ClassifierError(f"{ckpt} exists: an unfinished run; pass --resume to continue it or --force to "
                                  f"start again")
        refuse_existing([out])
    try:  # the checkpoint is written there after the first epoch
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ClassifierError(f"--out {out}: cannot create its folder ({err.strerror})") from None
    if not datasets:
        raise ClassifierError("datasets: give at least one dataset to train on")
    dev = resolve_device(device)
    prep = Preprocessing(config.size, config.margin)
    train_set, val_set = _load_sets(datasets, config.mode, prep, progress, config.min_visibility)
    class_w = _class_weights(train_set, config.class_weights)

    torch.manual_seed(config.seed)  # the initial weights
    model = build_model(config.arch, len(train_set.classes), weights=weights).to(dev).to(memory_format=torch.channels_last)
    optim = _optimisation(model, config, len(train_set), class_w, dev)
    gen = torch.Generator().manual_seed(config.seed)  # the shuffles
    aug_gen = torch.Generator(device=dev).manual_seed(config.seed + 1)  # the augmentation
    data = _tensors(train_set, val_set, class_w, dev)
    info = _model_info(config, prep, train_set, val_set, class_w, dev, weights)
    best = BestEpoch()
    start = 1
    if resume:
        best, start = _restore(ckpt, config, info, model, optim, gen, aug_gen)
    t0 = time.perf_counter()
    try:
        with _progress(config, progress, done=start - 1) as report:
            for epoch in range(start, config.epochs + 1):
                te = time.perf_counter()
                train_loss, train_acc = _train_epoch(model, data, optim, config, gen, aug_gen, dev)
                val_acc, val_loss = _validate(model, data, dev)
                record = {"epoch": epoch, "train_loss": round(train_loss, 6), "train_accuracy": round(train_acc, 6),
                          "val_loss": round(val_loss, 6), "val_accuracy": round(val_acc, 6),
                          "lr": float(optim.sched.get_last_lr()[0]), "seconds": round(time.perf_counter() - te, 2)}
                info.history.append(record)
                best = best.update(epoch, val_acc, val_loss, model)
                _checkpoint(ckpt, epoch, config, info, model, optim, gen, aug_gen, best)
                report(record, val_acc)
                if stalled(info.history, config.patience):
                    info.training["stopped_early_after_epoch"] = epoch
                    break
    except KeyboardInterrupt:
        if best.state is not None:  # keep what was learnt: the best epoch so far, marked as interrupted
            info.training["interrupted_after_epoch"] = len(info.history)
            _save_best(model, best, info, out, True)
        raise
    path = _save_best(model, best, info, out, True)
    ckpt.unlink(missing_ok=True)
    return TrainResult(path, info, best.epoch, time.perf_counter() - t0)


def _checkpoint(path: Path, epoch: int, config: TrainConfig, info: ModelInfo, model: nn.Module,
                optim: _Optimisation, gen: torch.Generator, aug_gen: torch.Generator, best: BestEpoch) -> None:
    """Everything the run needs to go on after ``epoch``, written atomically (plain tensors and
    containers: read back with ``weights_only=True``)."""
    state = {"format": 1, "epoch": epoch, "config": config.as_dict(),
             "datasets": [d.as_dict() for d in info.datasets], "history": info.history,
             "model": model.state_dict(), "opt": optim.opt.state_dict(), "sched": optim.sched.state_dict(),
             "gen": gen.get_state(), "aug_gen": aug_gen.get_state(), "torch_rng": torch.get_rng_state(),
             "best": {"epoch": best.epoch, "accuracy": best.accuracy, "loss": best.loss, "state": best.state}}
    with atomic_path(path) as tmp:
        torch.save(_plain(state), tmp)


def _plain(obj):
    """``obj`` with numpy scalars (the schedule's learning rates) as Python numbers, so that the
    checkpoint holds only what ``torch.load(weights_only=True)`` reads."""
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, dict):
        return {k: _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_plain(v) for v in obj)
    return obj


def _restore(path: Path, config: TrainConfig, info: ModelInfo, model: nn.Module, optim: _Optimisation,
             gen: torch.Generator, aug_gen: torch.Generator) -> tuple[BestEpoch, int]:
    """Load the checkpoint of a run with the same settings and datasets; (best epoch, next epoch)."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
        saved, now = state["config"], config.as_dict()
    except Exception as err:  # truncated, foreign or from another format
        raise ClassifierError(f"{path}: not a readable training checkpoint ({type(err).__name__})") from None
    differing = [k for k in now if saved.get(k) != now[k]]
    if differing:
        k = differing[0]
        raise ClassifierError(f"--resume: {path} is a run with {k} = {saved.get(k)!r}, not {now[k]!r}")
    if state["datasets"] != [d.as_dict() for d in info.datasets]:
        raise ClassifierError(f"--resume: {path} was trained on other datasets (or other versions of them)")
    model.load_state_dict(state["model"])
    optim.opt.load_state_dict(state["opt"])
    optim.sched.load_state_dict(state["sched"])
    gen.set_state(state["gen"])
    aug_gen.set_state(state["aug_gen"])  # a CPU byte tensor, for CPU and CUDA generators alike
    torch.set_rng_state(state["torch_rng"])
    info.history[:] = state["history"]
    b = state["best"]
    return BestEpoch(b["epoch"], b["accuracy"], b["loss"], b["state"]), state["epoch"] + 1


def _load_sets(datasets: list[str | Path], mode: str, prep: Preprocessing, progress: bool,
               min_visibility: float | None = None) -> tuple[CutoutSet, CutoutSet]:
    """The train and val cut-outs of all ``datasets``, the training set without the crystalline samples
    whose lattice visibility is below ``min_visibility``; refused when training could not work."""
    train_set = concatenate([load_cutouts(p, "train", mode, prep, progress=progress) for p in datasets])
    val_set = concatenate([load_cutouts(p, "val", mode, prep, progress=progress) for p in datasets])
    if min_visibility is not None:
        crystalline = train_set.y != train_set.classes.index(AMORPHOUS)
        vis = np.full(len(train_set), np.nan) if train_set.visibility is None else train_set.visibility
        unmeasured = crystalline & ~np.isfinite(vis)
        if unmeasured.any():
            names = sorted({train_set.sources[o].name for o in train_set.origin[unmeasured]})
            raise ClassifierError(f"--min-visibility: {', '.join(names)} has no lattice visibility (it needs "
                                  f"noise-free simulated images or a stored lattice_peak_ratio)")
        train_set = train_set.select(~crystalline | (vis >= min_visibility))
    if len(train_set) < 2:
        raise ClassifierError(f"datasets: {len(train_set)} training sample(s); batch normalisation needs at least 2")
    missing = [c for c, n in train_set.counts().items() if n == 0]
    if missing:
        raise ClassifierError(f"datasets: no training samples of class {', '.join(missing)}")
    return train_set, val_set


def _class_weights(train_set: CutoutSet, scheme: str) -> np.ndarray:
    """Loss weight per class: inverse class frequency ("balanced", mean 1 over the samples) or ones ("none")."""
    n_classes = len(train_set.classes)
    counts = np.bincount(train_set.y, minlength=n_classes)
    return (counts.sum() / (n_classes * counts)) if scheme == "balanced" else np.ones(n_classes)


def _optimisation(model: nn.Module, config: TrainConfig, n_train: int, class_w: np.ndarray,
                  dev: torch.device) -> _Optimisation:
    """Class-weighted cross-entropy; AdamW, its learning rate stepped once per batch: "cosine", a linear
    warm-up over the first epoch (at most half the steps) and cosine decay to zero over the rest; "step",
    the initial rate times ``step_factor`` after every ``step_epochs`` epochs."""
    loss_fn = nn.CrossEntropyLoss(weight=torch.as_tensor(class_w, dtype=torch.float32, device=dev))
    opt = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    steps_per_epoch = max(1, n_train // config.batch_size)
    total = steps_per_epoch * config.epochs
    warm = min(steps_per_epoch, total // 2) or 1
    if config.schedule == "step":
        factor = lambda s: config.step_factor ** (s // steps_per_epoch // config.step_epochs)  # noqa: E731
    else:
        factor = lambda s: (s + 1) / warm if s < warm else 0.5 * (1 + np.cos(np.pi * (s - warm) / max(1, total - warm)))  # noqa: E731
    sched = torch.optim.lr_scheduler.LambdaLR(opt, factor)
    return _Optimisation(loss_fn, opt, sched, steps_per_epoch)


def _tensors(train_set: CutoutSet, val_set: CutoutSet, class_w: np.ndarray, dev: torch.device) -> _Tensors:
    """The tensors the epochs read; built once, not every epoch."""
    return _Tensors(x_train=_stage(train_set, dev), y_train=torch.as_tensor(train_set.y), x_val=val_set.x,
                    y_val=torch.as_tensor(val_set.y), val_weight=torch.as_tensor(class_w, dtype=torch.float32))


def _stage(cutouts: CutoutSet, dev: torch.device) -> torch.Tensor:
    """The training cut-outs as one tensor: on the GPU when they take less than a quarter of its free
    memory, else in pinned host memory."""
    x = torch.from_numpy(cutouts.x)
    if dev.type == "cuda":
        free, _ = torch.cuda.mem_get_info(dev)
        return x.to(dev) if x.nbytes < free / 4 else x.pin_memory()
    return x


def _model_info(config: TrainConfig, prep: Preprocessing, train_set: CutoutSet, val_set: CutoutSet,
                class_w: np.ndarray, dev: torch.device, weights: str | Path | None) -> ModelInfo:
    """The model file's description, before the first epoch: settings, datasets and sample counts."""
    return ModelInfo(arch=config.arch, classes=train_set.classes, mode=config.mode, preprocessing=prep,
                     threshold=config.threshold, datasets=list(train_set.sources),
                     training={**config.as_dict(), "device": str(dev), "weights": str(weights) if weights else None,
                               "n_train": len(train_set), "n_val": len(val_set),
                               "train_counts": train_set.counts(), "val_counts": val_set.counts(),
                               "class_weight": [round(float(w), 6) for w in class_w]})


def _train_epoch(model: nn.Module, data: _Tensors, optim: _Optimisation, config: TrainConfig,
                 gen: torch.Generator, aug_gen: torch.Generator, dev: torch.device) -> tuple[float, float]:
    """One pass over a new shuffle of the training cut-outs (``steps_per_epoch`` full batches),
    augmented on the device; the mean loss and accuracy of the augmented batches."""
    model.train()
    order = torch.randperm(len(data.y_train), generator=gen)[:optim.steps_per_epoch * config.batch_size]
    loss_sum = right = seen = 0
    for xb, sel in batches(data.x_train, order, config.batch_size, dev):
        yb = data.y_train[sel].to(dev)
        xb = config.augment(xb, aug_gen)
        with autocast(dev):
            logits = model(xb.contiguous(memory_format=torch.channels_last))
            loss = optim.loss_fn(logits.float(), yb)
        optim.opt.zero_grad(set_to_none=True)
        loss.backward()
        optim.opt.step()
        optim.sched.step()
        loss_sum += float(loss.detach()) * len(sel)
        right += int((logits.argmax(1) == yb).sum())
        seen += len(sel)
    return loss_sum / seen, right / seen


def _validate(model: nn.Module, data: _Tensors, dev: torch.device) -> tuple[float, float]:
    """Accuracy and class-weighted cross-entropy loss on the validation cut-outs (not augmented)."""
    probs = predict_proba(model, data.x_val, dev)
    loss = float(nn.functional.nll_loss(torch.log(torch.as_tensor(probs).clamp_min(1e-12)), data.y_val,
                                        weight=data.val_weight))
    accuracy = float((probs.argmax(1) == data.y_val.numpy()).mean())
    return accuracy, loss


@contextmanager
def _progress(config: TrainConfig, enabled: bool, done: int = 0) -> Iterator[Callable[[dict, float], None]]:
    """A progress bar over the epochs (drawn only when ``enabled``); yields the function that reports
    an epoch's record (and its unrounded validation accuracy)."""
    columns = (TextColumn("[progress.description]{task.description}"), BarColumn(), MofNCompleteColumn(),
               TimeRemainingColumn(), TextColumn("{task.fields[status]}"))
    with Progress(*columns, disable=not enabled) as bar:
        task = bar.add_task(f"training {config.arch}", total=config.epochs, completed=done, status="")

        def report(record: dict, val_acc: float) -> None:
            status = f"loss {record['train_loss']:.3f}  val acc {val_acc:.1%}"
            bar.update(task, advance=1, status=status)
            if enabled:  # one line per epoch, kept above the bar (and in logs, where the bar is not drawn)
                bar.console.print(f"epoch {record['epoch']}/{config.epochs}: {status}  ({record['seconds']:.0f} s)",
                                  highlight=False)

        yield report


def _save_best(model: nn.Module, best: BestEpoch, info: ModelInfo, out: Path, overwrite: bool) -> Path:
    """Load the best epoch's weights into ``model`` and write the model file and its training curves."""
    model.load_state_dict(best.state)
    info.training["best_epoch"] = best.epoch
    path = save_model(out, model, info, overwrite=overwrite, half=bool(info.training.get("half")))
    plot_history(info.history, path.with_suffix(".history.png"), best_epoch=best.epoch)
    return path
