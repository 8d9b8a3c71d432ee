"""The network: a torchvision ResNet with one input channel and one output per class.

Trained from scratch by default (no network access at run time). ``weights`` may name a local file of
torchvision ResNet weights (a state dict, for instance ImageNet weights downloaded elsewhere): its
three-channel first convolution is summed over the colour channels to take one grey channel, and the
final layer is kept only when it has the right number of classes.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn
from torchvision.models import resnet

from classifier.errors import ClassifierError

#: The architectures offered, by name (the paper used resnet101 at 224 x 224).
ARCHITECTURES = {
    "resnet18": resnet.resnet18, "resnet34": resnet.resnet34, "resnet50": resnet.resnet50,
    "resnet101": resnet.resnet101, "resnet152": resnet.resnet152,
}


def build_model(arch: str, n_classes: int, *, weights: str | Path | None = None) -> nn.Module:
    """A ResNet ``arch`` for one-channel inputs and ``n_classes`` outputs, randomly initialised
    (torch's global generator) or started from the local ``weights`` file."""
    if arch not in ARCHITECTURES:
        raise ClassifierError(f"arch: unknown architecture {arch!r} (use {', '.join(ARCHITECTURES)})")
    if n_classes < 2:
        raise ClassifierError(f"n_classes: a classifier needs at least 2 classes, got {n_classes}")
    model = ARCHITECTURES[arch](weights=None, num_classes=n_classes)
    model.conv1 = nn.Conv2d(1, 64, kernel_size=7, stride=2, padding=3, bias=False)
    nn.init.kaiming_normal_(model.conv1.weight, mode="fan_out", nonlinearity="relu")
    if weights is not None:
        _load_initial_weights(model, Path(weights))
    return model


def _load_initial_weights(model: nn.Module, path: Path) -> None:
    if not path.is_file():
        raise ClassifierError(f"{path}: weights file not found")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - any unreadable file is the user's to fix
        raise ClassifierError(f"{path}: not a readable torch weights file ({type(err).__name__})") from None
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise ClassifierError(f"{path}: expected a state dict of ResNet weights")
    own = model.state_dict()
    conv = state.get("conv1.weight")
    if conv is not None and conv.ndim == 4 and conv.shape[1] == 3:
        state = {**state, "conv1.weight": conv.sum(dim=1, keepdim=True)}
    usable = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
    missing = [k for k in own if k not in usable and not k.startswith("fc.")]
    if missing:
        raise ClassifierError(f"{path}: does not fit {type(model).__name__} "
                              f"({len(missing)} tensors missing or of another shape, e.g. {missing[0]})")
    model.load_state_dict(usable, strict=False)
