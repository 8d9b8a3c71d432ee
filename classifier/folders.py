"""Folders of single-particle images (cut-outs), labelled by sub-folder, as ANTEMA exports them.

A labelled folder holds one sub-folder per class: ``amorphous/``, ``monocrystalline/``,
``polycrystalline/`` (three classes), or ``amorphous/`` and ``crystalline/`` (two classes; mono- and
polycrystalline sub-folders count as crystalline for a two-class model). Each image is one particle in
any format the micrograph readers read (PNG, TIFF, DM3/DM4, EMD, SER, MRC, .npy); no pixel size is
needed. Where the particle is, in this order:

- a mask beside the image, ``NAME.mask.EXT`` or ``NAME_mask.EXT`` (any readable format; nonzero on the
  particle);
- else the support removed around it, set to one flat value (zero, or the mean, as ANTEMA writes it): the
  particle is what differs from the value that fills the image's edge, its largest connected piece with
  its holes filled;
- else (no flat edge) the whole image.

The cut-outs then go through ``Preprocessing.apply``, the function store images and micrographs go
through, so a folder made from a store's images gives the store's cut-outs.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
from rich.progress import Progress
from scipy import ndimage as ndi

from classifier.classes import class_in_mode, class_names
from classifier.data import CutoutSet, DatasetRef, Preprocessing
from classifier.errors import ClassifierError
from classifier.readers import IMAGE_SUFFIXES, read_micrograph

MASK_MARKERS = (".mask", "_mask")  # NAME.mask.png, NAME_mask.png
CLASS_FOLDERS = ("amorphous", "monocrystalline", "polycrystalline", "crystalline")


def is_mask_file(path: Path) -> bool:
    return any(path.stem.endswith(m) for m in MASK_MARKERS)


def particle_images(folder: Path) -> list[Path]:
    """The particle images directly in ``folder`` (masks beside them left out), sorted by name."""
    return sorted(p for p in folder.iterdir()
                  if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES and not is_mask_file(p))


def _mask_beside(path: Path) -> Path | None:
    for marker in MASK_MARKERS:
        for suffix in (path.suffix, *IMAGE_SUFFIXES):
            candidate = path.with_name(f"{path.stem}{marker}{suffix}")
            if candidate.is_file():
                return candidate
    return None


def flat_background_mask(image: np.ndarray) -> np.ndarray:
    """The particle of a cut-out whose support was removed (set to one value): the pixels that differ
    from the value filling most of the image's edge, the largest connected piece, holes filled. The whole
    image where no single value fills at least half the edge."""
    edge = np.concatenate([image[0], image[-1], image[1:-1, 0], image[1:-1, -1]])
    values, counts = np.unique(edge, return_counts=True)
    if counts.max() < 0.5 * edge.size:
        return np.ones(image.shape, bool)
    flat = values[np.argmax(counts)]
    regions, n = ndi.label(image != flat)
    if n == 0:
        raise ClassifierError("the image is one flat value: no particle in it")
    largest = 1 + int(np.argmax(np.bincount(regions.ravel())[1:]))
    return ndi.binary_fill_holes(regions == largest)


def _read(path: Path) -> np.ndarray:
    return read_micrograph(path, require_pixel_size=False, min_side=4).image  # a 1 nm particle: ~16 px at 0.064 nm/px


def read_particle(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """(image, mask) of one particle image: the mask from the file beside it, or from the removed support."""
    path = Path(path)
    image = _read(path)
    beside = _mask_beside(path)
    if beside is None:
        try:
            return image, flat_background_mask(image)
        except ClassifierError as err:
            raise ClassifierError(f"{path}: {err}") from None
    mask = _read(beside) != 0
    if mask.shape != image.shape:
        raise ClassifierError(f"{beside}: mask of {mask.shape[0]} x {mask.shape[1]} pixels beside an image of "
                              f"{image.shape[0]} x {image.shape[1]}")
    if not mask.any():
        raise ClassifierError(f"{beside}: the mask is empty")
    return image, mask


def folder_classes(root: Path, mode: str) -> dict[str, Path]:
    """The class sub-folders of ``root`` that hold images, by their name; checked against ``mode``."""
    if not root.is_dir():
        raise ClassifierError(f"{root}: not a folder")
    found = {p.name: p for p in sorted(root.iterdir()) if p.is_dir() and p.name in CLASS_FOLDERS and particle_images(p)}
    if not found:
        raise ClassifierError(f"{root}: no class sub-folders with images (expected {', '.join(CLASS_FOLDERS)})")
    if mode == "three" and "crystalline" in found:
        raise ClassifierError(f"{root}/crystalline: two-class labels (mono- and polycrystalline together) cannot "
                              f"score a three-class model; split them or use a two-class model")
    return found


def load_folder_cutouts(root: str | Path, mode: str, prep: Preprocessing, *, progress: bool = False) -> CutoutSet:
    """The labelled cut-outs of a folder of class sub-folders; ``names`` are the files, relative to ``root``."""
    root = Path(root)
    names = class_names(mode)
    paths, labels = [], []
    for cls, sub in folder_classes(root, mode).items():
        for p in particle_images(sub):
            paths.append(p)
            labels.append(class_in_mode(cls, mode))
    x = np.empty((len(paths), prep.size, prep.size), np.float32)
    digest = hashlib.sha256()
    with Progress(transient=True, disable=not progress) as bar:
        task = bar.add_task(f"cut-outs {root.name}", total=len(paths))
        for n, p in enumerate(paths):
            image, mask = read_particle(p)
            try:
                x[n] = prep.apply(image, mask)
            except ValueError as err:
                raise ClassifierError(f"{p}: {err}") from None
            digest.update(str(p.relative_to(root)).encode() + b"\0" + p.read_bytes())
            bar.advance(task)
    ref = DatasetRef(root.name, "folder", digest.hexdigest(), str(root))
    return CutoutSet(x, np.asarray(labels, np.int64), np.arange(len(paths)), np.zeros(len(paths), np.int64), names,
                     (ref,), tuple(str(p.relative_to(root)) for p in paths))
