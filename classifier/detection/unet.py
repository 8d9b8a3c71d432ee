"""The learned particle detector: a small U-Net trained only on simulated fields (``datagen`` field stores).

The network sees every micrograph at one pixel size, its weights' ``pixel_nm`` (``PIXEL_NM`` for new
weights; images are resampled to it and the answer back), so the 1-3 nm particles always span the same
12-40 of its pixels whatever the microscope's pixel size, and its cost follows the field's area in nm².
Its input is the image standardised robustly (median and MAD), its output three classes per pixel:
background, particle interior, and particle boundary (the outer ``BOUNDARY_NM`` of every particle, and
every pixel where two particles meet), so that touching particles come apart: the interiors are the
markers of a watershed that grows them over interior and boundary pixels. Regions are then filtered as
the classical detector's are (diameter, border, annotations).

Training (:func:`train`) takes random crops of the fields' train split at ``pixel_nm`` with the eight
flips and quarter turns (fields of bare support, such as fields-support-v1, are its negatives, and, for
a share of the crops, particle-free noise, white or smoothed), a class-weighted cross-entropy, AdamW and
a cosine schedule; it keeps the weights of the epoch with the best validation F1 (recall and precision
at IoU > 0.5, on the val split). The weights file holds the weights in half precision and everything
that made them: the datasets and their content hashes, the seed, the settings, the code version and the
validation scores.
"""

from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import ndimage as ndi

from classifier.detection.annotations import find_annotations
from classifier.detection.classical import ClassicalSettings, filter_regions, label_max
from classifier.errors import ClassifierError

PIXEL_NM = 0.08  # the network's pixel size [nm] for new weights (a weights file records its own)
BOUNDARY_NM = 0.1  # width of the boundary class inside each particle's edge [nm]
WEIGHTS = Path(__file__).resolve().parent / "weights" / "unet-v2.pt"


def _torch():
    import torch
    from torch import nn

    return torch, nn


def build_unet(channels: tuple[int, ...] = (16, 32, 64, 128), n_classes: int = 3):
    """A U-Net: per level two 3x3 convolutions with batch norm and ReLU, max-pooling down, transposed
    convolutions up, skip connections by concatenation; input (B, 1, H, W), H and W multiples of
    2^(levels-1); output logits (B, n_classes, H, W)."""
    torch, nn = _torch()

    def block(cin, cout):
        return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
                             nn.Conv2d(cout, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))

    class UNet(nn.Module):
        def __init__(self):
            super().__init__()
            self.down = nn.ModuleList()
            cin = 1
            for c in channels:
                self.down.append(block(cin, c))
                cin = c
            self.up = nn.ModuleList(nn.ConvTranspose2d(channels[i], channels[i - 1], 2, stride=2)
                                    for i in range(len(channels) - 1, 0, -1))
            self.merge = nn.ModuleList(block(2 * channels[i - 1], channels[i - 1]) for i in range(len(channels) - 1, 0, -1))
            self.head = nn.Conv2d(channels[0], n_classes, 1)

        def forward(self, x):
            skips = []
            for i, level in enumerate(self.down):
                x = level(x)
                if i < len(self.down) - 1:
                    skips.append(x)
                    x = nn.functional.max_pool2d(x, 2)
            for up, merge in zip(self.up, self.merge):
                x = merge(torch.cat([up(x), skips.pop()], 1))
            return self.head(x)

    return UNet()


def standardise(image: np.ndarray) -> np.ndarray:
    """(image - median) / (1.4826 MAD), clipped to +-8: float32 images and 8-bit grey levels alike."""
    a = np.asarray(image, np.float32)
    sample = a.ravel()[:: max(1, a.size // 250_000)]
    med = np.median(sample)
    mad = 1.4826 * np.median(np.abs(sample - med)) or (sample.std() or 1.0)
    return np.clip((a - med) / mad, -8, 8).astype(np.float32)


def to_network(image: np.ndarray, pixel_size_nm: float, network_nm: float = PIXEL_NM) -> np.ndarray:
    """The image resampled to ``network_nm`` per pixel (linear, anti-aliased when shrinking) and standardised."""
    from skimage.transform import resize

    scale = pixel_size_nm / network_nm
    shape = tuple(max(8, int(round(n * scale))) for n in image.shape)
    a = resize(np.asarray(image, np.float32), shape, order=1, anti_aliasing=scale < 1, preserve_range=True)
    return standardise(a)


def targets(instances: np.ndarray, pixel_size_nm: float) -> np.ndarray:
    """Training classes at the instance image's own pixels: 0 background, 1 interior, 2 boundary (the
    outer ``BOUNDARY_NM`` of each particle, and where two particles meet)."""
    inst = np.asarray(instances)
    width = max(1, int(round(BOUNDARY_NM / pixel_size_nm)))
    out = (inst > 0).astype(np.uint8)
    pad = np.pad(inst, 1, mode="edge")  # the image's border is no edge: a cut particle goes on beyond it
    edge = np.zeros(inst.shape, bool)
    for dy, dx in ((0, 1), (0, -1), (1, 0), (-1, 0)):
        edge |= pad[1 + dy:1 + dy + inst.shape[0], 1 + dx:1 + dx + inst.shape[1]] != inst
    edge &= inst > 0  # particle pixels next to the background or another particle
    near = ndi.distance_transform_edt(~edge) < width
    out[(inst > 0) & near] = 2
    return out


def resample_instances(instances: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Nearest-neighbour resampling of an instance image to ``shape``."""
    iy = np.minimum((np.arange(shape[0]) + 0.5) * instances.shape[0] / shape[0], instances.shape[0] - 1).astype(int)
    ix = np.minimum((np.arange(shape[1]) + 0.5) * instances.shape[1] / shape[1], instances.shape[1] - 1).astype(int)
    return instances[np.ix_(iy, ix)]


@dataclass(frozen=True)
class UNetSettings:
    """How the U-Net's answer becomes particles, and the filters shared with the classical detector."""

    weights: str = str(WEIGHTS)
    interior: float = 0.5  # probability above which a pixel is a particle's interior (a watershed marker)
    particle: float = 0.7  # probability (interior + boundary) above which a pixel belongs to a particle (0.7: no
    # diameter bias on fields-v1's val split, +1.1 %, against +6.2 % at 0.5, at the same recall and precision)
    confidence: float = 0.9  # interior probability a region must reach somewhere (hysteresis over ``interior``)
    tile: int = 2048  # network pixels per tile side at most (plus a margin of context): one pass up to 2048²
    filters: ClassicalSettings = ClassicalSettings()


_LOADED: dict[str, tuple] = {}


def load_weights(path: str | Path, device: str = "cpu"):
    """(network, metadata) from a weights file written by :func:`save_weights` (cached per path)."""
    torch, _ = _torch()
    from classifier.predict import for_inference

    key = f"{path}@{device}"
    if key in _LOADED:
        return _LOADED[key]
    path = Path(path)
    if not path.is_file() or path.stat().st_size == 0:
        raise ClassifierError(f"{path}: U-Net weights not found (retrain them: make segmenter, or classifier segment train FIELDS.zarr --out {path})")
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
        meta = json.loads(blob["metadata"])
        net = build_unet(tuple(meta["channels"]))
        net.load_state_dict({k: v.float() for k, v in blob["state"].items()})
    except Exception as err:  # noqa: BLE001 - a damaged or foreign file: say which
        raise ClassifierError(f"{path}: not a U-Net weights file ({type(err).__name__})") from None
    net = for_inference(net).to(device)  # batch norms folded, channels-last: about 2x faster on CPU
    _LOADED[key] = (net, meta)
    return net, meta


def probabilities(net, image: np.ndarray, tile: int = 2048, device: str = "cpu", margin: int = 64) -> np.ndarray:
    """Class probabilities (3, H, W) of a network-ready image (``to_network``): the image cut into the
    fewest near-equal cores of at most ``tile`` pixels a side, each run with ``margin`` pixels of context
    around it (beyond the network's reach) and only its core kept, so no pixel is computed twice over."""
    torch, _ = _torch()
    h, w = image.shape
    out = np.empty((3, h, w), np.float32)

    def cores(n: int) -> list[tuple[int, int]]:
        k = -(-n // tile)
        edges = np.linspace(0, n, k + 1).round().astype(int)
        return list(zip(edges[:-1], edges[1:]))

    with torch.inference_mode():
        for y0, y1 in cores(h):
            for x0, x1 in cores(w):
                a0, a1, b0, b1 = max(y0 - margin, 0), min(y1 + margin, h), max(x0 - margin, 0), min(x1 + margin, w)
                patch = image[a0:a1, b0:b1]
                ph, pw = patch.shape
                pad = ((0, -ph % 16), (0, -pw % 16))
                t = torch.from_numpy(np.pad(patch, pad, mode="reflect"))[None, None].to(device)
                t = t.contiguous(memory_format=torch.channels_last)
                p = torch.softmax(net(t), 1)[0, :, :ph, :pw].cpu().numpy()
                out[:, y0:y1, x0:x1] = p[:, y0 - a0:y1 - a0, x0 - b0:x1 - b0]
    return out


def detect(image: np.ndarray, pixel_size_nm: float, settings: UNetSettings | ClassicalSettings | None = None,
           device: str = "cpu") -> tuple[np.ndarray, np.ndarray]:
    """Label image (int32, 0 background) and the annotation mask, as ``classical.detect`` returns them.

    Given ``ClassicalSettings`` (what `classifier analyse` passes), their filters are used with the
    U-Net's defaults."""
    if settings is None:
        settings = UNetSettings()
    elif isinstance(settings, ClassicalSettings):
        settings = UNetSettings(filters=settings)
    net, meta = load_weights(settings.weights, device)
    image = np.asarray(image, np.float32)
    f = settings.filters
    annotations = find_annotations(image, pixel_size_nm) if f.ignore_annotations else np.zeros(image.shape, bool)
    work = np.where(annotations, np.median(image[~annotations]) if (~annotations).any() else 0, image)
    labels = _labels_from(net, to_network(work, pixel_size_nm, meta["pixel_nm"]), image.shape, pixel_size_nm, device, settings,
                          annotations)
    return labels, annotations


# ------------------------------------------------------------------------------------------- training
@dataclass(frozen=True)
class TrainSettings:
    epochs: int = 16
    steps_per_epoch: int = 150
    batch_size: int = 12
    crop: int = 128  # network pixels
    learning_rate: float = 2e-3
    weight_decay: float = 1e-4
    class_weights: tuple[float, float, float] = (1.0, 1.0, 3.0)
    channels: tuple[int, ...] = (16, 32, 64, 128)
    seed: int = 0
    pixel_nm: float = PIXEL_NM  # the network's pixel size [nm]
    negative_probability: float = 0.3  # share of crops replaced by particle-free noise (white or smoothed)
    negative_sigma_px: float = 6.0  # smoothed noise: Gaussian sigma drawn up to this [network pixels]


def _fields(paths: list[Path], split: str, network_nm: float
            ) -> tuple[list[np.ndarray], list[np.ndarray], list[np.ndarray], list[float], list]:
    """Network-ready images, their class targets at ``network_nm`` per pixel, the instance images and pixel sizes of
    the ``split`` fields of the stores, and the stores' references."""
    from datagen.store import open_samples

    images, classes, instances, pixels, refs = [], [], [], [], []
    for path in paths:
        ds = open_samples(path)
        if "instances" not in ds:
            raise ClassifierError(f"{path}: not a dataset of fields (no instance images): generate a field entry such as fields-v1")
        refs.append({"path": str(path), "catalog": f"{ds.attrs.get('catalog_name')} {ds.attrs.get('catalog_version')}",
                     "content_sha256": ds.attrs.get("content_sha256")})
        chosen = np.flatnonzero(ds.split.values == split)
        for i in chosen:
            image, inst, px = ds.image[i].values, ds.instances[i].values, float(ds.pixel_size_nm[i])
            x = to_network(image, px, network_nm)
            images.append(x)
            classes.append(targets(resample_instances(inst, x.shape), network_nm))
            instances.append(inst)
            pixels.append(px)
    if not images:
        raise ClassifierError(f"{', '.join(map(str, paths))}: no fields in split {split!r}")
    return images, classes, instances, pixels, refs


def train(stores: list[Path], out: Path, settings: TrainSettings = TrainSettings(), *, device: str = "cpu",
          progress=None) -> dict:
    """Train the U-Net on the fields of ``stores`` and write its weights to ``out``; returns the metadata."""
    torch, nn = _torch()
    from classifier import __version__
    from classifier.detection.score import Score, score_image

    t0 = time.perf_counter()
    train_x, train_y, _, _, refs = _fields(stores, "train", settings.pixel_nm)
    val_x, _, val_inst, val_px, _ = _fields(stores, "val", settings.pixel_nm)
    torch.manual_seed(settings.seed)
    rng = np.random.default_rng(settings.seed)
    net = build_unet(settings.channels).to(device)
    opt = torch.optim.AdamW(net.parameters(), lr=settings.learning_rate, weight_decay=settings.weight_decay)
    total = settings.epochs * settings.steps_per_epoch
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, settings.learning_rate, total_steps=total, pct_start=0.1)
    loss_fn = nn.CrossEntropyLoss(weight=torch.tensor(settings.class_weights, dtype=torch.float32, device=device))
    c = settings.crop
    best, history = None, []
    for epoch in range(settings.epochs):
        net.train()
        losses = []
        for _ in range(settings.steps_per_epoch):
            xb, yb = [], []
            for _ in range(settings.batch_size):
                k = int(rng.integers(len(train_x)))
                x, y = train_x[k], train_y[k]
                if min(x.shape) < c:
                    pad = ((0, max(0, c - x.shape[0])), (0, max(0, c - x.shape[1])))
                    x, y = np.pad(x, pad, mode="reflect"), np.pad(y, pad, mode="reflect")
                r0, c0 = int(rng.integers(x.shape[0] - c + 1)), int(rng.integers(x.shape[1] - c + 1))
                x, y = x[r0:r0 + c, c0:c0 + c], y[r0:r0 + c, c0:c0 + c]
                turns, flip = int(rng.integers(4)), bool(rng.integers(2))
                x, y = np.rot90(x, turns), np.rot90(y, turns)
                if flip:
                    x, y = x[:, ::-1], y[:, ::-1]
                if rng.random() < settings.negative_probability:  # nothing to find: noise, white or smoothed
                    noise = rng.normal(size=(c, c))
                    sigma = float(rng.uniform(0, settings.negative_sigma_px)) * (rng.random() < 0.7)
                    x = standardise(ndi.gaussian_filter(noise, sigma) if sigma > 0 else noise)
                    y = np.zeros((c, c), np.uint8)
                xb.append(np.ascontiguousarray(x))
                yb.append(np.ascontiguousarray(y))
            xt = torch.from_numpy(np.stack(xb))[:, None].to(device)
            yt = torch.from_numpy(np.stack(yb).astype(np.int64)).to(device)
            loss = loss_fn(net(xt), yt)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            losses.append(loss.item())
        net.eval()
        score = Score()
        for x, inst, px in zip(val_x, val_inst, val_px):
            labels = _labels_from(net, x, inst.shape, px, device)
            score.add(score_image(labels, inst, px))
        f1 = 2 * score.recall * score.precision / max(score.recall + score.precision, 1e-9)
        row = {"epoch": epoch + 1, "loss": float(np.mean(losses)), "val_recall": score.recall,
               "val_precision": score.precision, "val_f1": f1, "val_diameter_error": score.diameter_error}
        history.append(row)
        if progress is not None:
            progress(row)
        if best is None or f1 > best[0]:
            best = (f1, {k: v.detach().cpu().clone() for k, v in net.state_dict().items()}, row)
    meta = {"format": 1, "pixel_nm": settings.pixel_nm, "boundary_nm": BOUNDARY_NM, "channels": list(settings.channels),
            "train_settings": dataclasses.asdict(settings), "datasets": refs, "classifier_version": __version__,
            "torch_version": torch.__version__, "best_epoch": best[2], "history": history,
            "seconds": time.perf_counter() - t0, "retrain": f"classifier segment train {' '.join(map(str, stores))} --out {out} --epochs {settings.epochs} "
                        f"--steps {settings.steps_per_epoch} --batch-size {settings.batch_size} --seed {settings.seed}"}
    save_weights(out, best[1], meta)
    return meta


def to_image(maps: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Maps (C, h, w) at the network's pixels bilinearly resampled to the image's ``shape`` (pixel centres
    aligned, as ``skimage.transform.resize(order=1)`` aligns them), in float32 on torch's threads."""
    torch, nn = _torch()
    t = torch.from_numpy(np.ascontiguousarray(maps, np.float32))[None]
    return nn.functional.interpolate(t, size=tuple(shape), mode="bilinear", align_corners=False)[0].numpy()


def _labels_from(net, x: np.ndarray, shape: tuple[int, int], pixel_size_nm: float, device: str,
                 settings: UNetSettings = UNetSettings(), annotations: np.ndarray | None = None) -> np.ndarray:
    """Particles from the network's answer on the network-ready ``x``, back on the image's ``shape``: the
    interiors seed a watershed over interior and boundary pixels (not on ``annotations``), then filtered."""
    from skimage.segmentation import watershed

    p = probabilities(net, x, settings.tile, device)
    interior, particle = to_image(np.stack([p[1], p[1] + p[2]]), shape)
    markers, _ = ndi.label(interior > settings.interior)
    mask = particle > settings.particle
    if annotations is not None:
        mask &= ~annotations
    labels = watershed(-interior, markers, mask=mask).astype(np.int32)
    if settings.confidence > settings.interior and labels.max():
        sure = label_max(interior, labels, int(labels.max())) >= settings.confidence
        labels = np.where(sure[labels], labels, 0)
    return filter_regions(labels, pixel_size_nm, settings.filters, annotations)


def save_weights(path: str | Path, state: dict, meta: dict) -> Path:
    """Weights in half precision and the metadata, written atomically."""
    torch, _ = _torch()
    from datagen.files import atomic_path

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    blob = {"state": {k: (v.half() if v.is_floating_point() else v) for k, v in state.items()},
            "metadata": json.dumps(meta, default=float)}
    with atomic_path(path) as tmp:
        torch.save(blob, tmp)
    _LOADED.pop(f"{path}@cpu", None)
    return path
