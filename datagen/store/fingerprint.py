"""Per-sample fingerprints of a dataset: small enough to ship beside a catalog entry, fine enough to tell a
rebuild that differs only by numerical noise (other library versions, another CPU, a GPU) from one with
different content, without the reference dataset itself.

For every sample the fingerprint keeps:

- each integer, boolean or string variable exactly (label, split, structure id, seed, kind, element,
  atom counts, ...); a mask by its pixel count and a CRC-32 of its bytes; the atomic model by its atom
  count, cell and a CRC-32 of its atomic numbers;
- each floating-point variable to float64: scalars as they are, small arrays (orientation) whole, an
  image as its mean, its standard deviation and its means over a 4 × 4 grid of blocks, and the atomic
  positions by their mean.

Two fingerprints are compared variable by variable (:func:`compare_fingerprints`): exact parts must be
equal; floating-point parts may differ by up to ``NOISE`` of their scale (an image's standard deviation,
a variable's largest magnitude). Rounding in FFTs and reductions moves an image by ~1e-6 of its
contrast; a changed parameter, another structure or a shifted particle by far more than ``NOISE``.
"""

from __future__ import annotations

import io
import json
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from datagen.errors import StoreError
from datagen.files import atomic_path
from datagen.store.zarrstore import Store, open_atoms, open_samples

#: Largest difference, relative to its scale, that counts as numerical noise.
NOISE = {"image": 1e-3, "default": 1e-5}
#: Variables that record the software that made a sample, not the sample: they may differ between
#: environments (another torch in the backend's version string) and still be the same dataset.
SOFTWARE_VARIABLES = frozenset({"backend"})
#: Image blocks per axis in the fingerprint.
BLOCKS = 4
FORMAT = 1


def _crc(row: np.ndarray) -> int:
    return zlib.crc32(np.ascontiguousarray(row).tobytes())


def _image_stats(images: np.ndarray) -> np.ndarray:
    """(n, 2 + BLOCKS²): mean, std and block means of each image."""
    n, ny, nx = images.shape
    ys, xs = np.array_split(np.arange(ny), BLOCKS), np.array_split(np.arange(nx), BLOCKS)
    x = images.astype(np.float64)
    blocks = [x[:, y[0]:y[-1] + 1, c[0]:c[-1] + 1].mean(axis=(1, 2)) for y in ys for c in xs]
    return np.column_stack([x.mean(axis=(1, 2)), x.std(axis=(1, 2)), *blocks])


def compute_fingerprint(path: str | Path) -> dict[str, np.ndarray]:
    """The fingerprint of the complete store at ``path``: variable name → per-sample array."""
    store = Store.open(path, mode="r")
    layout = store.layout
    ds = open_samples(path)
    parts: dict[str, list[np.ndarray]] = {}
    for chunk in range(layout.n_chunks):
        block = ds.isel(sample=layout.chunk_slice(chunk))
        for name, var in block.data_vars.items():
            a = var.values
            if a.dtype.kind == "f":
                value = _image_stats(a) if name == "image" else a.reshape(len(a), -1).astype(np.float64)
                parts.setdefault(f"float/{name}", []).append(value)
            elif a.dtype.kind in "iub" and a.ndim > 1:
                flat = a.reshape(len(a), -1)
                parts.setdefault(f"exact/{name}", []).append(
                    np.column_stack([flat.sum(axis=1, dtype=np.int64), [_crc(r) for r in flat]]))
            else:
                value = a.astype(np.int64) if a.dtype.kind in "iub" else np.array([str(x) for x in a.ravel()]).reshape(a.shape)
                parts.setdefault(f"exact/{name}", []).append(value)
    atoms = open_atoms(path)
    start, n_atoms = atoms.atom_start.values, atoms.n_atoms.values
    parts["exact/atoms.n_atoms"] = [n_atoms.astype(np.int64)]
    parts["float/atoms.cell"] = [atoms.cell.values.astype(np.float64)]
    if "xyz" in atoms and n_atoms.sum():
        z_crc, centre = [], []
        for i, (s, n) in enumerate(zip(start, n_atoms)):
            sl = slice(int(s), int(s) + int(n))
            z_crc.append(_crc(atoms.Z[sl].values))
            centre.append(atoms.xyz[sl].values.astype(np.float64).mean(axis=0) if n else np.zeros(3))
        parts["exact/atoms.Z"] = [np.asarray(z_crc, np.int64)]
        parts["float/atoms.xyz_mean"] = [np.asarray(centre)]
    return {k: np.concatenate(v) for k, v in parts.items()}


def write_fingerprint(path: str | Path, out: str | Path, meta: dict) -> Path:
    """Compute the fingerprint of the store at ``path`` and write it to ``out`` (npz, no pickles), with
    ``meta`` (JSON-able: content hash, device class, environment), atomically."""
    out = Path(out)
    arrays = compute_fingerprint(path)
    arrays["__meta__"] = np.asarray(json.dumps({"format": FORMAT, **meta}, sort_keys=True))
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(out) as tmp, zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as zf:
        for name in sorted(arrays):  # an npz file, with fixed entry times: the same fingerprint, the same bytes
            buffer = io.BytesIO()
            np.lib.format.write_array(buffer, np.asanyarray(arrays[name]), allow_pickle=False)
            zf.writestr(zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0)), buffer.getvalue(),
                        compress_type=zipfile.ZIP_DEFLATED)
    return out


def read_fingerprint(path: str | Path) -> tuple[dict[str, np.ndarray], dict]:
    """The arrays and the metadata of a fingerprint file; StoreError naming the file if unreadable."""
    try:
        with np.load(path, allow_pickle=False) as f:
            arrays = {k: f[k] for k in f.files}
        meta = json.loads(str(arrays.pop("__meta__")))
    except (OSError, ValueError, KeyError) as err:
        raise StoreError(f"fingerprint {path} is not readable: {err}") from None
    return arrays, meta


@dataclass
class VariableDifference:
    """How one variable of a build differs from the reference's fingerprint."""

    name: str
    exact: bool
    samples: list[int] = field(default_factory=list)  # samples beyond noise (all differing, for exact parts;
    # none for SOFTWARE_VARIABLES, which may differ between environments)
    max_relative: float = 0.0  # largest difference relative to its scale (float parts); share differing (exact)


def _scale(name: str, ref: np.ndarray) -> np.ndarray:
    """Per-sample scale of a float fingerprint part: an image's std, else the variable's largest magnitude."""
    if name == "float/image":
        return np.maximum(ref[:, 1:2], 1e-12)  # the std column
    finite = np.abs(ref[np.isfinite(ref)])
    return np.full((len(ref), 1), max(float(finite.max()) if finite.size else 0.0, 1e-12))


def compare_fingerprints(build: dict[str, np.ndarray], reference: dict[str, np.ndarray]) -> list[VariableDifference]:
    """Every variable that differs at all, with the samples beyond noise and the largest relative difference."""
    out = []
    for name in sorted(set(build) | set(reference)):
        short = name.split("/", 1)[1]
        if name not in build or name not in reference or build[name].shape != reference[name].shape:
            out.append(VariableDifference(short, True, [0]))
            continue
        a, b = build[name], reference[name]
        if name.startswith("exact/"):
            differs = (a != b).reshape(len(a), -1).any(axis=1)
            if differs.any():
                samples = [] if short in SOFTWARE_VARIABLES else np.flatnonzero(differs).tolist()
                out.append(VariableDifference(short, True, samples, float(differs.mean())))
            continue
        same_nan = np.isnan(a) & np.isnan(b)
        delta = np.where(same_nan, 0.0, np.abs(a - b)).reshape(len(a), -1) / _scale(name, b.reshape(len(b), -1))
        delta = np.where(np.isnan(delta), np.inf, delta)
        worst = float(delta.max()) if delta.size else 0.0
        if worst > 0:
            tol = NOISE["image"] if short == "image" else NOISE["default"]
            out.append(VariableDifference(short, False, np.flatnonzero(delta.max(axis=1) > tol).tolist(), worst))
    return out
