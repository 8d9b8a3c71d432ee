"""Export a dataset store as plain image files, for tools that do not read zarr (MATLAB's
imageDatastore, ImageJ, any Python).

Layout under the output folder (``NAME`` is the sample index, six digits):

- ``SPLIT/CLASS/NAME.tif`` (float32, the stored values) or ``.png`` (16-bit, each image stretched from
  its minimum to its maximum; the CSV keeps both, so ``value = min + grey / 65535 · (max - min)``);
- ``SPLIT/CLASS/NAME.mask.png`` beside it (0 background, 255 particle); for fields of many particles
  ``SPLIT/mixed/NAME.instances.tif`` (uint16: 0 background, k + 1 the particle in slot k) instead;
- with ``cutouts``, ``cutouts/SPLIT/CLASS/NAME.EXT``: the particle with the support outside its mask
  set to zero, as ANTEMA exports particles (single-particle stores only);
- ``samples.csv``: one row per exported image with its file names, split, class and every per-sample
  scalar provenance variable of the store (units in ``columns.csv``).

A split's class folders are what ``classifier evaluate`` reads as a labelled folder of cut-outs. Images
are read through the store's reader (every chunk checked against its checksum); the export is written
into a temporary folder beside the output and renamed into place, so a failure leaves nothing half made.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import tifffile
from rich.progress import Progress

from datagen.errors import DatagenError, refuse_existing
from datagen.files import atomic_folder
from datagen.store import SPLIT_NAMES, open_samples
from datagen.store.schema import label_names

FORMATS = ("tiff", "png")
MIXED = "mixed"


@dataclass(frozen=True)
class ExportResult:
    path: Path
    n_images: int
    splits: dict[str, int]


def _png(path: Path, image: np.ndarray) -> tuple[float, float]:
    lo, hi = float(image.min()), float(image.max())
    grey = np.zeros(image.shape, np.uint16) if hi <= lo else np.rint((image - lo) / (hi - lo) * 65535).astype(np.uint16)
    iio.imwrite(path, grey)
    return lo, hi


def _write(path: Path, image: np.ndarray, fmt: str) -> tuple[float, float]:
    if fmt == "tiff":
        tifffile.imwrite(path, np.asarray(image, np.float32))
        return float(image.min()), float(image.max())
    return _png(path, image)


def export_images(path: str | Path, out: str | Path, *, fmt: str = "tiff", split: str | None = None,
                  cutouts: bool = False, overwrite: bool = False, progress: bool = False) -> ExportResult:
    """Write the store at ``path`` (its ``split``, or all) as image files under ``out`` (see the module)."""
    if fmt not in FORMATS:
        raise DatagenError(f"--format: use {' or '.join(FORMATS)}, got {fmt!r}")
    if split is not None and split not in SPLIT_NAMES:
        raise DatagenError(f"--split: use {', '.join(SPLIT_NAMES)}, got {split!r}")
    out = Path(out)
    if not overwrite:
        refuse_existing([out])
    ds = open_samples(path)
    fields = "instances" in ds
    if cutouts and fields:
        raise DatagenError(f"{path}: --cutouts needs a store of single particles, not of fields")
    labels = ds["label"]
    names = label_names(labels)
    splits = ds["split"].values.astype(str)
    chosen = np.flatnonzero(splits == split) if split else np.arange(ds.sizes["sample"])
    if len(chosen) == 0:
        raise DatagenError(f"{path}: no samples in split {split!r}")
    scalars = [v for v in ds.data_vars if ds[v].dims == ("sample",) and v not in ("label", "split")]
    ext = ".tif" if fmt == "tiff" else ".png"
    counts: dict[str, int] = {}
    with atomic_folder(out) as tmp:
        rows = []
        chunk = int(ds.attrs.get("chunk_size") or 64)
        with Progress(transient=True, disable=not progress) as bar:
            task = bar.add_task(f"exporting {ds.attrs.get('catalog_name', Path(path).stem)}", total=len(chosen))
            for start in range(0, ds.sizes["sample"], chunk):
                want = chosen[(chosen >= start) & (chosen < start + chunk)]
                if len(want) == 0:
                    continue
                block = ds[["image", "instances" if fields else "mask", *scalars]].isel(sample=want).compute()
                for k, i in enumerate(want):
                    cls = MIXED if fields else names.get(int(labels.values[i]), str(int(labels.values[i])))
                    folder = tmp / splits[i] / cls
                    folder.mkdir(parents=True, exist_ok=True)
                    name = f"{int(i):06d}"
                    image = block["image"].values[k]
                    lo, hi = _write(folder / f"{name}{ext}", image, fmt)
                    row = {"file": f"{splits[i]}/{cls}/{name}{ext}", "split": splits[i], "class": cls,
                           "sample": int(i), "image_min": lo, "image_max": hi}
                    if fields:
                        tifffile.imwrite(folder / f"{name}.instances.tif", block["instances"].values[k].astype(np.uint16))
                        row["mask"] = f"{splits[i]}/{cls}/{name}.instances.tif"
                    else:
                        mask = block["mask"].values[k] != 0
                        iio.imwrite(folder / f"{name}.mask.png", mask.astype(np.uint8) * 255)
                        row["mask"] = f"{splits[i]}/{cls}/{name}.mask.png"
                        if cutouts:
                            cut = tmp / "cutouts" / splits[i] / cls
                            cut.mkdir(parents=True, exist_ok=True)
                            _write(cut / f"{name}{ext}", np.where(mask, image, 0.0), fmt)
                            row["cutout"] = f"cutouts/{splits[i]}/{cls}/{name}{ext}"
                    row.update({v: block[v].values[k].item() if hasattr(block[v].values[k], "item")
                                else block[v].values[k] for v in scalars})
                    rows.append(row)
                    counts[splits[i]] = counts.get(splits[i], 0) + 1
                bar.advance(task, len(want))
        head = ["file", "mask", *(["cutout"] if cutouts else []), "split", "class", "sample", "image_min",
                "image_max", *scalars]
        with (tmp / "samples.csv").open("w", newline="") as fh:
            w = csv.DictWriter(fh, head)
            w.writeheader()
            w.writerows(rows)
        with (tmp / "columns.csv").open("w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(["column", "units", "description"])
            for v in scalars:
                w.writerow([v, ds[v].attrs.get("units", ""), ds[v].attrs.get("long_name", "")])
    return ExportResult(out, len(rows), counts)
