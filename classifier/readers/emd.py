"""EMD files (HDF5, read with h5py): Thermo Fisher Velox EMD and Berkeley EMD (NCEM, version 0.2).

- Velox: ``/Data/Image/<id>/Data`` of shape (rows, columns, frames) with a JSON ``Metadata`` array
  beside it; the pixel size is ``BinaryResult.PixelSize`` {width, height} with ``PixelUnitX/Y``. Files
  holding several images (detectors) give the first with more than a thumbnail's pixels; ``Data/Spectrum``
  alone is refused.
- Berkeley: a group with attribute ``emd_group_type = 1`` holding ``data`` and ``dim1``, ``dim2``...
  (one vector of positions per axis, attributes ``name`` and ``units``); the step is the vector's.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from classifier.errors import ClassifierError
from classifier.readers import Axis, Raw


def read_emd(path: Path) -> Raw:
    import h5py  # lazy: only EMD needs it

    with h5py.File(path, "r") as f:
        if "Data" in f and isinstance(f["Data"], h5py.Group):
            return _velox(f)
        group = _berkeley_group(f)
        if group is not None:
            return _berkeley(group)
    raise ClassifierError("an EMD/HDF5 file with neither Velox image data (Data/Image) nor a Berkeley EMD data group")


def _velox(f) -> Raw:
    images = f["Data"].get("Image")
    if images is None or not len(images):
        kinds = ", ".join(k for k in f["Data"]) or "nothing"
        raise ClassifierError(f"a Velox EMD file without an image (it holds {kinds})")
    for name in images:
        group = images[name]
        data = group["Data"]
        if data.ndim != 3:
            raise ClassifierError(f"Velox image {name}: {data.ndim}-D data, expected (rows, columns, frames)")
        meta = _velox_metadata(group)
        size = meta.get("BinaryResult", {}).get("PixelSize", {})
        unit_x = meta.get("BinaryResult", {}).get("PixelUnitX", "")
        unit_y = meta.get("BinaryResult", {}).get("PixelUnitY", unit_x)
        array = data[()]
        axes = [Axis(_number(size.get("height")), unit_y, "y"), Axis(_number(size.get("width")), unit_x, "x"),
                Axis(name="frame")]
        return Raw(array, axes, "Velox EMD", frame_axis=2)
    raise AssertionError("unreachable")


def _velox_metadata(group) -> dict:
    if "Metadata" not in group:
        return {}
    raw = np.asarray(group["Metadata"][:, 0] if group["Metadata"].ndim == 2 else group["Metadata"][()])
    text = raw.astype(np.uint8).tobytes().rstrip(b"\x00").decode("utf-8", "replace")
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return {}


def _number(value) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _berkeley_group(f):
    found = []

    def visit(name, obj):
        if obj.attrs.get("emd_group_type") is not None and int(np.asarray(obj.attrs["emd_group_type"]).ravel()[0]) == 1:
            found.append(obj)

    f.visititems(visit)
    return found[0] if found else None


def _berkeley(group) -> Raw:
    if "data" not in group:
        raise ClassifierError(f"Berkeley EMD group {group.name} has no 'data'")
    data = group["data"][()]
    axes = []
    for i in range(data.ndim):
        dim = group.get(f"dim{i + 1}")
        if dim is None:
            axes.append(Axis())
            continue
        values = np.asarray(dim[()], float).ravel()
        step = float(values[1] - values[0]) if values.size > 1 else None
        axes.append(Axis(abs(step) if step else None, _attr(dim, "units"), _attr(dim, "name")))
    # Berkeley EMD puts a series first, before the image axes (dims named e.g. "time" or "frame")
    frame_axis = 0 if data.ndim == 3 else None
    return Raw(data, axes, "Berkeley EMD", frame_axis=frame_axis)


def _attr(obj, key: str) -> str:
    value = obj.attrs.get(key, "")
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    if isinstance(value, np.ndarray):
        value = value.ravel()[0] if value.size else ""
        value = value.decode() if isinstance(value, bytes) else value
    text = str(value)
    return {"[n_m]": "nm", "n_m": "nm", "[m]": "m", "[A]": "A", "[1/n_m]": "1/nm"}.get(text, text.strip("[]").replace("_", ""))
