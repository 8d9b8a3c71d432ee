"""Training and evaluation data: particle cut-outs of a dataset split, read through the store's reader.

Images and masks are read one store chunk at a time and cut out with ``datagen.cutout.cutout`` (the
function real micrographs go through too), so memory holds only the cut-outs. Each simulated particle
also gets its lattice visibility (``datagen.visibility``): from the store's ``lattice_peak_ratio`` where
it has one, or measured on its images where they are noise-free; the reference of amorphous particles
is the whole store's on the same film element, whichever split is read.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from rich.progress import Progress

from classifier.classes import class_names, map_labels
from classifier.errors import ClassifierError
from datagen.cutout import cutout
from datagen.store import open_samples
from datagen.store.location import normalize
from datagen.visibility import (MEASURE_VARIABLES, amorphous_samples, block_ratios, store_visibility,
                                visibility_source)

SPLITS = ("train", "val", "test", "all")


@dataclass(frozen=True)
class DatasetRef:
    """Which dataset a model saw or a report is about: name, version and content checksum."""

    name: str
    version: str
    content_sha256: str
    path: str

    def as_dict(self) -> dict:
        return asdict(self)

    def __str__(self) -> str:
        return f"{self.name} {self.version} ({self.content_sha256[:12]})"


@dataclass(frozen=True)
class Preprocessing:
    """How an image and its particle mask become a network input (recorded in the model file)."""

    size: int = 224  # input side [pixel]
    margin: float = 0.1  # border around the mask's bounding box, fraction of its larger side

    def __post_init__(self):
        if not isinstance(self.size, int) or not 16 <= self.size <= 1024:
            raise ClassifierError(f"size: input size must be an integer from 16 to 1024 pixels, got {self.size!r}")
        if not 0 <= self.margin <= 1:
            raise ClassifierError(f"margin: must be between 0 and 1, got {self.margin!r}")

    def apply(self, image: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """The (size, size) float32 cut-out of one particle."""
        return cutout(image, mask, self.size, margin=self.margin)

    def as_dict(self) -> dict:
        return {"cutout": "datagen.cutout.cutout", "size": self.size, "margin": self.margin,
                "standardise": "particle pixels to mean 0, standard deviation 1; outside the particle 0"}


@dataclass
class CutoutSet:
    """Cut-outs ``x`` (N, size, size) float32 and labels ``y`` (N,) int64 in ``classes`` order; sample
    ``n`` is sample ``index[n]`` of dataset ``sources[origin[n]]`` (for a folder, the file ``names[n]``)."""

    x: np.ndarray
    y: np.ndarray
    index: np.ndarray
    origin: np.ndarray
    classes: tuple[str, ...]
    sources: tuple[DatasetRef, ...]
    names: tuple[str, ...] | None = None  # per sample, where the samples are files (folders of cut-outs)
    #: per sample, its lattice visibility (``datagen.visibility``; NaN where not measured); None: none is
    visibility: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.y)

    def counts(self) -> dict[str, int]:
        return {c: int((self.y == k).sum()) for k, c in enumerate(self.classes)}

    def select(self, keep: np.ndarray) -> "CutoutSet":
        """The samples where ``keep`` (a boolean array) is true."""
        return CutoutSet(self.x[keep], self.y[keep], self.index[keep], self.origin[keep], self.classes,
                         self.sources, None if self.names is None else tuple(np.asarray(self.names, object)[keep]),
                         None if self.visibility is None else self.visibility[keep])


def _ref(ds, path) -> DatasetRef:
    a = ds.attrs
    return DatasetRef(str(a.get("catalog_name", Path(str(path)).stem)), str(a.get("catalog_version", "?")),
                      str(a.get("content_sha256", "")), str(path))


def load_cutouts(path: str | Path, split: str, mode: str, prep: Preprocessing, *,
                 progress: bool = False) -> CutoutSet:
    """The cut-outs of one ``split`` ("train", "val", "test" or "all") of the dataset at ``path``, or all
    of a folder of labelled cut-out images (``classifier.folders``; folders have no splits)."""
    if split not in SPLITS:
        raise ClassifierError(f"split: unknown split {split!r} (use {', '.join(SPLITS)})")
    path = normalize(path)  # a URL stays a string
    if isinstance(path, Path) and path.is_dir() and not (path / "zarr.json").exists() and not (path / ".zgroup").exists():
        from classifier.folders import load_folder_cutouts  # here: it builds on this module

        if split in ("train", "val"):
            raise ClassifierError(f"{path}: a folder of cut-outs has no {split} split (it is all test data); "
                                  f"train on dataset stores")
        return load_folder_cutouts(path, mode, prep, progress=progress)
    ds = open_samples(path)
    if "instances" in ds:
        raise ClassifierError(f"{path}: a dataset of fields (whole micrographs of many particles, for training "
                              f"and benchmarking detection), not of single-particle images")
    ref = _ref(ds, path)
    labels = ds["label"]
    y_all = map_labels(labels.values, labels.attrs.get("flag_values"), labels.attrs.get("flag_meanings", ""), mode)
    chosen = np.arange(ds.sizes["sample"]) if split == "all" else np.flatnonzero(ds["split"].values == split)
    if len(chosen) == 0:
        raise ClassifierError(f"{path}: no samples in split {split!r}")
    chunk = int(ds.attrs.get("chunk_size") or 256)
    source = visibility_source(ds)
    ratios = ds["lattice_peak_ratio"].values.astype(np.float64) if source == "stored" else np.full(len(y_all), np.nan)
    measure = np.zeros(len(y_all), bool)
    if source == "images":  # the chosen samples and every amorphous one (the reference)
        measure[chosen] = True
        measure |= amorphous_samples(ds)
    wanted = np.zeros(len(y_all), bool)
    wanted[chosen] = True
    x = np.empty((len(chosen), prep.size, prep.size), np.float32)
    with Progress(transient=True, disable=not progress) as bar:
        task = bar.add_task(f"cut-outs {ref.name} {split}", total=len(chosen))
        done = 0
        for start in range(0, ds.sizes["sample"], chunk):
            sl = slice(start, start + chunk)
            if not (wanted[sl].any() or measure[sl].any()):
                continue
            block = ds[MEASURE_VARIABLES if source == "images" else ["image", "mask"]]
            block = block.isel(sample=sl).compute()
            images, masks = block["image"].values, block["mask"].values
            for i in np.flatnonzero(wanted[sl]) + start:
                try:
                    x[done] = prep.apply(images[i - start], masks[i - start])
                except ValueError as err:
                    raise ClassifierError(f"{path}: sample {i}: {err}") from None
                done += 1
            todo = np.flatnonzero(measure[sl])
            ratios[start + todo] = block_ratios(block, todo)
            bar.advance(task, int(wanted[sl].sum()))
    vis = None if source is None else store_visibility(ds, ratios, chosen)
    return CutoutSet(x, y_all[chosen], chosen, np.zeros(len(chosen), np.int64), class_names(mode), (ref,),
                     visibility=vis)


def concatenate(sets: list[CutoutSet]) -> CutoutSet:
    """Several datasets' cut-outs as one set."""
    if len(sets) == 1:
        return sets[0]
    if len({s.classes for s in sets}) != 1 or len({s.x.shape[1:] for s in sets}) != 1:
        raise ClassifierError("datasets: cut-outs differ in classes or size and cannot be combined")
    offsets = np.cumsum([0] + [len(s.sources) for s in sets[:-1]])
    return CutoutSet(np.concatenate([s.x for s in sets]), np.concatenate([s.y for s in sets]),
                     np.concatenate([s.index for s in sets]),
                     np.concatenate([s.origin + o for s, o in zip(sets, offsets)]),
                     sets[0].classes, tuple(r for s in sets for r in s.sources),
                     None if all(s.names is None for s in sets) else
                     tuple(n for s in sets for n in (s.names or tuple(str(i) for i in s.index))),
                     None if all(s.visibility is None for s in sets) else
                     np.concatenate([np.full(len(s), np.nan) if s.visibility is None else s.visibility for s in sets]))
