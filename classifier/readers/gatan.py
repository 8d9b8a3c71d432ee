"""Gatan DigitalMicrograph files (DM3 and DM4): the image of largest size, with its calibrations.

A DM file is a tree of tags (groups and typed data) after a short header; the images sit in
``ImageList``, each with ``ImageData`` {``Data``, ``DataType``, ``Dimensions``, ``Calibrations``}. The
first image of the list is usually a thumbnail, so the largest is taken. Dimensions and calibrations
are listed x (columns) first; the array is returned as (..., rows, columns).

Why here and not a library: the permissive DM readers on PyPI either pull in a large stack for one
format (SciFiReaders needs sidpy, scikit-learn, dask-ml and IPython, about 1 GB) or, in the version
checked, return the non-square test image of ``../shared/data/micrograph_formats`` transposed with a
"frame" unit on one axis; the GPL readers (rosettasciio, ncempy) cannot be default dependencies. The
format is small and documented (Gatan's DM3/DM4 tag format; the layout the readers above also use).
Data arrays are not copied until the image is chosen: the file is memory-mapped.
"""

from __future__ import annotations

import mmap
import struct
from pathlib import Path

import numpy as np

from classifier.errors import ClassifierError
from classifier.readers import Axis, Raw

# tag data encodings: code -> struct format (byte order added when read)
_SIMPLE = {2: "h", 3: "i", 4: "H", 5: "I", 6: "f", 7: "d", 8: "?", 9: "b", 10: "B", 11: "q", 12: "Q"}
_GROUP, _DATA = 20, 21
_STRUCT, _STRING, _ARRAY = 15, 18, 20

# ImageData.DataType -> numpy dtype (complex and RGB types are read, and refused later as not an image)
_IMAGE_DTYPES = {1: "i2", 2: "f4", 3: "c8", 6: "u1", 7: "i4", 9: "i1", 10: "u2", 11: "u4", 12: "f8", 13: "c16",
                 14: "u1", 23: "u4", 39: "i8", 40: "u8"}


class _Array:
    """An array tag's place in the file: read only when asked for."""

    def __init__(self, buf, offset: int, dtype: np.dtype, count: int):
        self.buf, self.offset, self.dtype, self.count = buf, offset, dtype, count

    def array(self) -> np.ndarray:
        return np.frombuffer(self.buf, self.dtype, self.count, self.offset)

    def text(self) -> str:
        a = self.array()
        if self.dtype.itemsize == 2:
            return a.astype(np.uint16).tobytes().decode("utf-16-le" if self.dtype.byteorder in "<=" else "utf-16-be", "replace").rstrip("\x00")
        return a.astype(np.uint8).tobytes().decode("latin-1").rstrip("\x00")


class _Parser:
    def __init__(self, buf, version: int, little: bool):
        self.buf, self.version = buf, version
        self.order = "<" if little else ">"
        self.width = "Q" if version == 4 else "I"  # header counts and tag info: 8 bytes in DM4
        self.wsize = 8 if version == 4 else 4

    def _big(self, pos: int) -> tuple[int, int]:
        return struct.unpack_from(">" + self.width, self.buf, pos)[0], pos + self.wsize

    def group(self, pos: int) -> tuple[dict | list, int]:
        pos += 2  # sorted, open
        n, pos = self._big(pos)
        entries: list[tuple[str, object]] = []
        for _ in range(n):
            kind = self.buf[pos]
            (length,) = struct.unpack_from(">H", self.buf, pos + 1)
            label = bytes(self.buf[pos + 3:pos + 3 + length]).decode("latin-1")
            pos += 3 + length
            if self.version == 4:
                pos += 8  # total size of the tag
            if kind == _GROUP:
                value, pos = self.group(pos)
            elif kind == _DATA:
                value, pos = self.data(pos)
            else:
                raise ClassifierError(f"corrupt DM tag tree (tag type {kind} at byte {pos})")
            entries.append((label, value))
        if all(label == "" for label, _ in entries):
            return [v for _, v in entries], pos
        return dict(entries), pos

    def data(self, pos: int):
        if bytes(self.buf[pos:pos + 4]) != b"%%%%":
            raise ClassifierError(f"corrupt DM tag (no '%%%%' at byte {pos})")
        ninfo, pos = self._big(pos + 4)
        info = struct.unpack_from(f">{ninfo}{self.width}", self.buf, pos)
        pos += ninfo * self.wsize
        return self.value(info, pos)

    def value(self, info: tuple[int, ...], pos: int):
        code = info[0]
        if code in _SIMPLE:
            fmt = self.order + _SIMPLE[code]
            return struct.unpack_from(fmt, self.buf, pos)[0], pos + struct.calcsize(fmt)
        if code == _STRING:
            n = info[1]
            return bytes(self.buf[pos:pos + 2 * n]).decode("utf-16-le" if self.order == "<" else "utf-16-be", "replace"), pos + 2 * n
        if code == _STRUCT:
            fields = info[4:4 + 2 * info[2]:2]  # [15, name length, n fields, (name length, type)...]
            out = []
            for ftype in fields:
                v, pos = self.value((ftype,), pos)
                out.append(v)
            return tuple(out), pos
        if code == _ARRAY:
            elem = info[1]
            if elem in _SIMPLE:
                count = info[2]
                dtype = np.dtype(self.order + _SIMPLE[elem])
                return _Array(self.buf, pos, dtype, count), pos + count * dtype.itemsize
            if elem == _STRUCT:  # array of structs: [20, 15, name length, n fields, (name length, type)..., count]
                nfields = info[3]
                ftypes = info[5:5 + 2 * nfields:2]
                count = info[4 + 2 * nfields]
                size = sum(struct.calcsize(_SIMPLE[t]) for t in ftypes)
                return None, pos + count * size  # (rare; nothing here needs their values)
        raise ClassifierError(f"unknown DM data encoding {info[:3]} at byte {pos}")


def read_tags(path: str | Path) -> dict:
    """The file's whole tag tree as nested dicts (lists for unnamed groups); arrays stay in the file."""
    if Path(path).stat().st_size < 16:
        raise ClassifierError("not a DM file (shorter than its header)")
    with open(path, "rb") as fh:
        buf = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)
    (version,) = struct.unpack_from(">I", buf, 0)
    if version not in (3, 4):
        raise ClassifierError(f"not a DM3/DM4 file (version field {version})")
    header = 12 if version == 3 else 16  # version, root length (4 or 8 bytes), byte order
    (little,) = struct.unpack_from(">I", buf, header - 4)
    tags, _ = _Parser(buf, version, bool(little)).group(header)
    return tags


def read_dm(path: Path) -> Raw:
    try:
        tags = read_tags(path)
    except (struct.error, IndexError, ValueError, UnicodeDecodeError) as err:
        raise ClassifierError(f"truncated or corrupt DM file ({type(err).__name__})") from None
    images = tags.get("ImageList", []) if isinstance(tags, dict) else []
    candidates = []
    for entry in images if isinstance(images, list) else []:
        data = entry.get("ImageData", {}) if isinstance(entry, dict) else {}
        if isinstance(data, dict) and isinstance(data.get("Data"), _Array) and "Dimensions" in data:
            thumbnail = int(data.get("DataType", 0)) == 23  # RGBA: the file's preview picture
            candidates.append((not thumbnail, data["Data"].count, len(candidates), entry))
    if not candidates:
        raise ClassifierError("a DM file without image data")
    *_, entry = max(candidates, key=lambda c: c[:3])  # not a thumbnail, then the largest, then the last
    data = entry["ImageData"]
    dims = [int(d) for d in data["Dimensions"]] if isinstance(data["Dimensions"], list) else [int(data["Dimensions"])]
    code = int(data.get("DataType", 0))
    if code not in _IMAGE_DTYPES:
        raise ClassifierError(f"DM image data type {code} is not supported")
    arr_tag: _Array = data["Data"]
    dtype = np.dtype(arr_tag.dtype.byteorder + _IMAGE_DTYPES[code]) if arr_tag.dtype.byteorder in "<>" else np.dtype(_IMAGE_DTYPES[code])
    nbytes = arr_tag.count * arr_tag.dtype.itemsize
    if int(np.prod(dims)) * dtype.itemsize != nbytes:
        raise ClassifierError(f"DM image of {dims} pixels of {dtype} does not match its {nbytes} bytes of data")
    array = np.frombuffer(arr_tag.buf, dtype, int(np.prod(dims)), arr_tag.offset).reshape(dims[::-1]).copy()

    cal = data.get("Calibrations", {}).get("Dimension", []) if isinstance(data.get("Calibrations"), dict) else []
    axes_xfirst = []
    for i in range(len(dims)):
        c = cal[i] if i < len(cal) and isinstance(cal[i], dict) else {}
        unit = _text(c.get("Units", ""))
        scale = c.get("Scale")
        axes_xfirst.append(Axis(float(scale) if scale is not None else None, unit.strip()))
    axes = axes_xfirst[::-1]  # (..., rows, columns)

    kind = "image"
    meta = entry.get("ImageTags", {}).get("Meta Data", {}) if isinstance(entry.get("ImageTags"), dict) else {}
    fmt, signal = (_text(meta.get(k, "")).lower() if isinstance(meta, dict) else "" for k in ("Format", "Signal"))
    if "spectrum" in fmt or signal == "eels":
        kind = "spectrum"
    elif "diffraction" in fmt:
        kind = "diffraction pattern"
    # a DM stack stores frames as the last dimension listed (the slowest axis: the first array axis)
    frame_axis = 0 if len(dims) == 3 else None
    return Raw(array, axes, f"DM{tags_version(path)}", frame_axis=frame_axis, kind=kind)


def _text(value) -> str:
    return value.text() if isinstance(value, _Array) else str(value)


def tags_version(path: Path) -> int:
    with open(path, "rb") as fh:
        return struct.unpack(">I", fh.read(4))[0]
