"""Micrographs as microscopes write them: one 2-D image with its pixel size in nm per axis.

``read_micrograph(path)`` picks a reader by the file's suffix (``READERS``), and turns what the reader
found into a ``Micrograph``: a float32 image, rows top to bottom as the file stores them, and its pixel
size in nm. What the readers give and what is done with it:

- the pixel size comes from the file where it holds one (DM3/DM4, Velox and Berkeley EMD, SER, MRC,
  TIFF with ImageJ, FEI/Thermo or OME metadata), converted from its unit to nm; ``pixel_size_nm``
  overrides it, and is required where the file holds none (PNG, JPEG, .npy, a plain TIFF);
- a spectrum, a diffraction pattern (an axis in 1/length) or an image without two spatial axes is refused;
- a stack (several frames) needs ``frame``; a stack of one frame is its frame;
- non-square pixels are resampled to square ones at the finer of the two sizes (nothing is lost), and
  the resampling is stated in ``Micrograph.notes``;
- colour images are averaged to grey.

Each vendor format has its own module, registered here by suffix; a reader returns ``Raw``: the array as
stored and a calibration per axis.
"""

from __future__ import annotations

import importlib
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from classifier.errors import ClassifierError

#: Pixel sizes a micrograph can plausibly have [nm]: from 1 pm (beyond any TEM) to 100 nm (a survey image).
PIXEL_SIZE_RANGE_NM = (0.001, 100.0)

#: Length units as files spell them, in nm.
LENGTH_UNITS_NM = {
    "m": 1e9, "cm": 1e7, "mm": 1e6, "um": 1e3, "µm": 1e3, "μm": 1e3, "micron": 1e3, "microns": 1e3,
    "nm": 1.0, "nanometer": 1.0, "nanometers": 1.0, "a": 0.1, "å": 0.1, "Å": 0.1, "angstrom": 0.1,
    "angstroms": 0.1, "ang": 0.1, "pm": 1e-3,
}
ENERGY_UNITS = {"ev", "kev", "mev"}

#: Suffix -> "module:function" of its reader (imported on first use: h5py, mrcfile and tifffile load lazily).
READERS = {
    ".dm3": "classifier.readers.gatan:read_dm",
    ".dm4": "classifier.readers.gatan:read_dm",
    ".emd": "classifier.readers.emd:read_emd",
    ".ser": "classifier.readers.tia:read_ser",
    ".emi": "classifier.readers.tia:read_emi",
    ".mrc": "classifier.readers.mrc:read_mrc",
    ".mrcs": "classifier.readers.mrc:read_mrc",
    ".tif": "classifier.readers.tiff:read_tiff",
    ".tiff": "classifier.readers.tiff:read_tiff",
    ".png": "classifier.readers.plain:read_plain",
    ".jpg": "classifier.readers.plain:read_plain",
    ".jpeg": "classifier.readers.plain:read_plain",
    ".npy": "classifier.readers.plain:read_npy",
}
IMAGE_SUFFIXES = tuple(READERS)


@dataclass(frozen=True)
class Axis:
    """Calibration of one array axis as the file gives it: step per pixel and its unit ("" if none)."""

    scale: float | None = None
    unit: str = ""
    name: str = ""


@dataclass
class Raw:
    """What a reader found: the array as stored (last two axes rows, columns) and one ``Axis`` per axis.

    ``frame_axis`` is the axis that counts frames of a stack, if any; ``kind`` is "image" unless the
    file says it holds a spectrum or a diffraction pattern; ``format`` names the format for messages."""

    data: np.ndarray
    axes: list[Axis]
    format: str
    frame_axis: int | None = None
    kind: str = "image"
    notes: list[str] = field(default_factory=list)


@dataclass
class Micrograph:
    """One image ready for analysis: float32, rows top to bottom, square pixels of ``pixel_size_nm``."""

    path: str
    image: np.ndarray
    pixel_size_nm: float | None  # None only where read with require_pixel_size=False from a file without one
    format: str
    source_pixel_size_nm: tuple[float, float] | None  # (rows, columns) as the file gives them
    frame: int | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def shape(self) -> tuple[int, int]:
        return self.image.shape


def length_in_nm(scale: float | None, unit: str) -> float | None:
    """``scale`` (one pixel, in ``unit``) in nm; None where the unit is not a length or is missing.

    Raises ClassifierError for a reciprocal length (the axis of a diffraction pattern)."""
    if scale is None or not math.isfinite(scale) or scale <= 0:
        return None
    u = unit.strip()
    if u.startswith("1/") or u.endswith("^-1") or u.endswith("⁻¹"):
        raise ClassifierError(f"axis unit {unit!r} is a reciprocal length: a diffraction pattern, not an image")
    factor = LENGTH_UNITS_NM.get(u) or LENGTH_UNITS_NM.get(u.lower())
    return None if factor is None else scale * factor


def check_pixel_size(pixel_size_nm: float, culprit: str = "pixel_size_nm") -> None:
    """ClassifierError for a pixel size that is not positive or outside ``PIXEL_SIZE_RANGE_NM``."""
    if not pixel_size_nm > 0:
        raise ClassifierError(f"{culprit}: must be positive, got {pixel_size_nm!r}")
    lo, hi = PIXEL_SIZE_RANGE_NM
    if not lo <= pixel_size_nm <= hi:
        raise ClassifierError(f"{culprit}: {pixel_size_nm:g} nm per pixel is outside {lo:g}-{hi:g} nm; the "
                              f"pixel size is in nm (0.025 nm = 0.25 Å; a value in m or Å would be off by 1e9 or 10)")


def reader_for(path: Path):
    """The reader function registered for ``path``'s suffix."""
    spec = READERS.get(path.suffix.lower())
    if spec is None:
        raise ClassifierError(f"{path}: unsupported image type {path.suffix!r} (readable: {', '.join(IMAGE_SUFFIXES)})")
    module, name = spec.split(":")
    return getattr(importlib.import_module(module), name)


def read_raw(path: str | Path) -> Raw:
    """The file's array and calibrations as its reader gives them (no frame chosen, nothing resampled)."""
    path = Path(path)
    if not path.is_file():
        raise ClassifierError(f"{path}: micrograph not found")
    reader = reader_for(path)
    try:
        return reader(path)
    except ClassifierError as err:
        msg = str(err)
        raise ClassifierError(msg if msg.startswith(str(path)) else f"{path}: {msg}") from None
    except MemoryError:
        raise ClassifierError(f"{path}: too large to read into memory") from None
    except Exception as err:  # noqa: BLE001 - whatever the format library says, the file is the culprit
        text = str(err).splitlines()[0][:120] if str(err) else ""
        raise ClassifierError(f"{path}: unreadable {path.suffix.lstrip('.').upper()} file "
                              f"({type(err).__name__}{': ' + text if text else ''})") from None


def read_micrograph(path: str | Path, *, pixel_size_nm: float | None = None, frame: int | None = None,
                    require_pixel_size: bool = True, min_side: int = 16) -> Micrograph:
    """The micrograph in ``path`` with its pixel size in nm (``pixel_size_nm`` overrides the file's).

    With ``require_pixel_size`` False (a particle's cut-out, which needs none), a file without one is read
    with ``pixel_size_nm`` None. Images with a side under ``min_side`` pixels are refused (a spectrum
    stored as a thin image, say); a cut-out of one small particle may be smaller than a micrograph."""
    path = Path(path)
    if pixel_size_nm is not None:
        check_pixel_size(pixel_size_nm, "--pixel-size-nm")
    raw = read_raw(path)
    try:
        return _to_micrograph(path, raw, pixel_size_nm, frame, require_pixel_size, min_side)
    except ClassifierError as err:
        raise ClassifierError(f"{path}: {err}") from None


def _to_micrograph(path: Path, raw: Raw, override: float | None, frame: int | None, required: bool = True,
                   min_side: int = 16) -> Micrograph:
    data, axes = np.asarray(raw.data), list(raw.axes)
    if len(axes) != data.ndim:
        raise ClassifierError(f"{raw.format}: {data.ndim}-D data with {len(axes)} calibrations")
    if raw.kind != "image":
        raise ClassifierError(f"a {raw.kind} ({_shape(data)}), not an image")
    if any(a.unit.strip().lower() in ENERGY_UNITS for a in axes):
        raise ClassifierError(f"a spectrum ({_shape(data)}, an axis in {next(a.unit for a in axes if a.unit.strip().lower() in ENERGY_UNITS)}), not an image")
    frame_axis = raw.frame_axis
    # axes of length 1 carry nothing (a stack of one frame, a DM image stored as 1 x N x M)
    keep = [i for i, n in enumerate(data.shape) if n > 1]
    if frame_axis is not None and data.shape[frame_axis] > 1:
        n = data.shape[frame_axis]
        if frame is None:
            raise ClassifierError(f"a stack of {n} frames ({_shape(data)}); choose one with --frame N (0-{n - 1})")
        if not 0 <= frame < n:
            raise ClassifierError(f"--frame {frame}: the stack has frames 0-{n - 1}")
        data = np.take(data, frame, axis=frame_axis)
        axes = axes[:frame_axis] + axes[frame_axis + 1:]
        keep = [i for i, n in enumerate(data.shape) if n > 1]
    elif frame not in (None, 0):
        raise ClassifierError(f"--frame {frame}: the file holds a single image")
    else:
        frame = None if frame_axis is None else 0
    data = data.reshape([data.shape[i] for i in keep]) if keep else data.reshape(-1)
    axes = [axes[i] for i in keep]
    if data.ndim == 3 and raw.frame_axis is None:
        raise ClassifierError(f"{data.ndim}-D data ({_shape(data)}): not one image, and no axis marked as frames")
    if data.ndim != 2:
        what = "a spectrum or line profile" if data.ndim == 1 else f"{data.ndim}-D data"
        raise ClassifierError(f"{what} ({_shape(data)}), not an image")
    if min(data.shape) < min_side:
        raise ClassifierError(f"an image of {_shape(data)} pixels is too small to analyse (or a spectrum)")
    if np.iscomplexobj(data):
        raise ClassifierError(f"complex data ({raw.format}): an exit wave or an FFT, not a recorded image")
    if not np.issubdtype(data.dtype, np.number) and data.dtype != bool:
        raise ClassifierError(f"data of type {data.dtype} is not an image")
    image = data.astype(np.float32)
    if not np.isfinite(image).all():
        raise ClassifierError("image holds NaN or infinite values")

    notes = list(raw.notes)
    source = tuple(length_in_nm(a.scale, a.unit) for a in axes)
    source_nm = source if all(v is not None for v in source) else None
    if override is not None:
        px = float(override)
        if source_nm is not None:
            notes.append(f"pixel size {_px(source_nm)} in the file, {px:g} nm given")
    elif source_nm is None and not required:
        return Micrograph(str(path), image, None, raw.format, None, frame, notes)
    elif source_nm is None:
        units = ", ".join(sorted({a.unit or "no unit" for a in axes}))
        raise ClassifierError(f"the file holds no pixel size in a length unit ({units}); give --pixel-size-nm")
    else:
        dy, dx = source_nm
        for v in source_nm:
            check_pixel_size(v, f"pixel size in the file ({_px(source_nm)})")
        px = min(dy, dx)
        if not math.isclose(dy, dx, rel_tol=1e-3):
            image = _resample(image, dy / px, dx / px)
            notes.append(f"non-square pixels ({_px(source_nm)}) resampled to square {px:g} nm pixels: "
                         f"{data.shape[0]} x {data.shape[1]} -> {image.shape[0]} x {image.shape[1]}")
    check_pixel_size(px)
    return Micrograph(str(path), image, px, raw.format, source_nm, frame, notes)


def _resample(image: np.ndarray, zoom_y: float, zoom_x: float) -> np.ndarray:
    from scipy import ndimage as ndi

    ny, nx = round(image.shape[0] * zoom_y), round(image.shape[1] * zoom_x)
    return ndi.zoom(image, (ny / image.shape[0], nx / image.shape[1]), order=1, mode="nearest", grid_mode=True).astype(np.float32)


def _shape(data: np.ndarray) -> str:
    return " x ".join(str(n) for n in data.shape)


def _px(sizes: tuple[float, float]) -> str:
    return f"{sizes[0]:g} x {sizes[1]:g} nm"
