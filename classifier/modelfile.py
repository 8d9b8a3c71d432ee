"""The model file: a trained network with everything needed to apply and trace it.

One ``torch.save`` of a plain dictionary (read back with ``weights_only=True``, so loading a model file
runs no code): the weights, the architecture, the classes in output order, the preprocessing (cut-out
size and margin), the reject threshold, and the training datasets' names, versions and content
checksums, with the training settings and per-epoch history.
"""

from __future__ import annotations

import datetime as _dt
import platform
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import torch
import torchvision

from classifier import __version__
from classifier.data import DatasetRef, Preprocessing
from classifier.errors import ClassifierError, refuse_existing
from classifier.model import build_model
from classifier.predict import for_inference
from datagen.files import atomic_path

if TYPE_CHECKING:
    from torch import nn

FORMAT = "hrtem-np-classifier"
FORMAT_VERSION = 1

#: The shipped model, used where no model file is named (built by `make classifier-model`; its model card
#: lies beside it as ``MODEL_CARD``).
DEFAULT_MODEL = Path(__file__).resolve().parent / "weights" / "resnet18-poly-fast-recorded-v1.pt"
MODEL_CARD = DEFAULT_MODEL.with_suffix(".md")


def model_or_default(path: str | Path | None) -> Path:
    """``path``, or the shipped model where it is None; refused with what to do where none is shipped."""
    if path is not None:
        return Path(path)
    if not DEFAULT_MODEL.is_file():
        raise ClassifierError(f"no model given and none shipped ({DEFAULT_MODEL.name} is not in this checkout): "
                              f"pass --model M.pt, or build it with `make classifier-model`")
    return DEFAULT_MODEL


@dataclass
class ModelInfo:
    """What a model file says about its network (all but the weights)."""

    arch: str
    classes: tuple[str, ...]
    mode: str
    preprocessing: Preprocessing
    threshold: float = 0.8  # confidence below which a prediction is "unknown" (the paper: 0.80)
    datasets: list[DatasetRef] = field(default_factory=list)
    training: dict = field(default_factory=dict)
    history: list[dict] = field(default_factory=list)
    created: str = ""
    software: dict = field(default_factory=dict)

    def __post_init__(self):
        check_threshold(self.threshold)

    def as_dict(self) -> dict:
        return {"format": FORMAT, "format_version": FORMAT_VERSION, "arch": self.arch,
                "classes": list(self.classes), "mode": self.mode, "preprocessing": self.preprocessing.as_dict(),
                "threshold": float(self.threshold), "datasets": [d.as_dict() for d in self.datasets],
                "training": self.training, "history": self.history, "created": self.created,
                "software": self.software}


def check_threshold(threshold: float) -> float:
    """``threshold`` as a float, refused unless in [0, 1)."""
    if not 0 <= threshold < 1:
        raise ClassifierError(f"threshold: confidence threshold must be in [0, 1), got {threshold!r}")
    return float(threshold)


def software() -> dict:
    """The versions of the classifier, torch, torchvision and Python, and the host, recorded in a model file."""
    # plain str: torch's TorchVersion is a str subclass that weights_only loading refuses
    return {"classifier": str(__version__), "torch": str(torch.__version__), "torchvision": str(torchvision.__version__),
            "python": platform.python_version(), "host": platform.node()}


def save_model(path: str | Path, model: nn.Module, info: ModelInfo, *, overwrite: bool = False,
               half: bool = False) -> Path:
    """Write the model file atomically (a temporary file renamed into place); an existing file is
    replaced only with ``overwrite``. ``half`` stores the floating-point weights in half precision (half
    the size; they are loaded back into a float32 network)."""
    path = Path(path)
    if not overwrite:
        refuse_existing([path])
    info.created = info.created or _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    info.software = info.software or software()
    state = {k: v.detach().to("cpu").clone() for k, v in model.state_dict().items()}
    if half:
        state = {k: v.half() if v.is_floating_point() else v for k, v in state.items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        torch.save({**info.as_dict(), "state_dict": state}, tmp)
    return path


def read_info(path: str | Path) -> tuple[ModelInfo, dict]:
    """The model file's description and its weights (state dict on the CPU)."""
    path = Path(path)
    if not path.is_file():
        raise ClassifierError(f"{path}: model file not found")
    try:
        raw = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - a truncated or foreign file is the user's to fix
        detail = (str(err).splitlines() or [""])[0][:120]  # some errors (an empty file) carry no message
        raise ClassifierError(f"{path}: not a readable model file ({type(err).__name__}{': ' + detail if detail else ''})") from None
    if not isinstance(raw, dict) or raw.get("format") != FORMAT:
        raise ClassifierError(f"{path}: not a classifier model file (no '{FORMAT}' format tag)")
    if raw.get("format_version", 0) > FORMAT_VERSION:
        raise ClassifierError(f"{path}: model file format {raw['format_version']} is newer than this "
                              f"classifier reads ({FORMAT_VERSION}); update the package")
    try:
        prep = raw["preprocessing"]
        info = ModelInfo(arch=raw["arch"], classes=tuple(raw["classes"]), mode=raw["mode"],
                         preprocessing=Preprocessing(size=int(prep["size"]), margin=float(prep["margin"])),
                         threshold=float(raw["threshold"]),
                         datasets=[DatasetRef(**d) for d in raw.get("datasets", [])],
                         training=raw.get("training", {}), history=raw.get("history", []),
                         created=raw.get("created", ""), software=raw.get("software", {}))
        state = raw["state_dict"]
    except (KeyError, TypeError) as err:
        raise ClassifierError(f"{path}: model file lacks {err}") from None
    return info, state


def load_model(path: str | Path, device: torch.device | str = "cpu") -> tuple[nn.Module, ModelInfo]:
    """The network of a model file, in evaluation mode on ``device``, and its description."""
    info, state = read_info(path)
    model = build_model(info.arch, len(info.classes))
    try:
        model.load_state_dict(state)
    except RuntimeError as err:
        raise ClassifierError(f"{path}: weights do not fit {info.arch} ({str(err).splitlines()[0]})") from None
    return for_inference(model).to(device), info
