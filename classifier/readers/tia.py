"""FEI/Thermo TIA files: SER (the data) and EMI (its metadata; the data sit in ``NAME_1.ser`` beside it).

A SER file is a header (byte order, series id 0x0197, version, data type: 0x4120 spectra, 0x4122
images, element counts, the offset of the offset arrays), the series' dimensions, then one data element
per image, each with its own calibration (offset, step) per axis, in metres for images. Elements are
stored x fastest and bottom row first; the array is returned as (elements, rows, columns), top row
first as TIA displays it (and as ncempy 1.16 and rosettasciio 0.15 read the test file of
``../shared/data/micrograph_formats``, checked pixel for pixel), elements as frames.

Written here because no permissive Python library reads SER (rosettasciio and ncempy are GPL); the
format is small and FEI documents it ("TIA Series Data File Format").
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from classifier.errors import ClassifierError
from classifier.readers import Axis, Raw

_SERIES_ID = 0x0197
_SPECTRA, _IMAGES = 0x4120, 0x4122
_DTYPES = {1: "u1", 2: "u2", 3: "u4", 4: "i1", 5: "i2", 6: "i4", 7: "f4", 8: "f8", 9: "c8", 10: "c16"}


def read_ser(path: Path) -> Raw:
    if path.stat().st_size < 30:
        raise ClassifierError("not a SER file (shorter than its header)")
    buf = np.memmap(path, np.uint8, mode="r")
    if int.from_bytes(bytes(buf[:2]), "little") != 0x4949:
        raise ClassifierError("not a little-endian SER file (byte-order mark missing)")
    head = np.frombuffer(buf, "<u2", 3, 0)
    if head[1] != _SERIES_ID:
        raise ClassifierError(f"not a SER file (series id {head[1]:#06x}, expected {_SERIES_ID:#06x})")
    version = int(head[2])
    off_dtype = "<i8" if version >= 0x0220 else "<i4"
    data_type, _tag_type, total, valid = np.frombuffer(buf, "<i4", 4, 6)
    pos = 22
    offset_array = int(np.frombuffer(buf, off_dtype, 1, pos)[0])
    pos += np.dtype(off_dtype).itemsize
    (ndims,) = np.frombuffer(buf, "<i4", 1, pos)
    if valid < 1:
        raise ClassifierError("a SER file without data (0 valid elements)")
    if data_type == _SPECTRA:
        raise ClassifierError(f"a SER file of {valid} spectra, not an image")
    if data_type != _IMAGES:
        raise ClassifierError(f"unknown SER data type {data_type:#06x}")
    offsets = np.frombuffer(buf, off_dtype, int(total), offset_array)[:valid]
    frames, axes = [], None
    for off in offsets:
        off = int(off)
        cx_off, cx_step = np.frombuffer(buf, "<f8", 2, off)
        cy_off, cy_step = np.frombuffer(buf, "<f8", 2, off + 20)
        (dtype_code,) = np.frombuffer(buf, "<i2", 1, off + 40)
        nx, ny = np.frombuffer(buf, "<i4", 2, off + 42)
        if int(dtype_code) not in _DTYPES:
            raise ClassifierError(f"unknown SER element data type {dtype_code}")
        count = int(nx) * int(ny)
        start = off + 50
        dtype = np.dtype("<" + _DTYPES[int(dtype_code)])
        if start + count * dtype.itemsize > buf.size:
            raise ClassifierError(f"truncated SER file: element at byte {off} runs past the end")
        # TIA stores the bottom row first (y up); flipped, the image reads as TIA shows it
        frames.append(np.frombuffer(buf, dtype, count, start).reshape(int(ny), int(nx))[::-1])
        if axes is None:
            axes = [Axis(float(cy_step), "m", "y"), Axis(float(cx_step), "m", "x")]
        elif frames[-1].shape != frames[0].shape:
            raise ClassifierError("a SER series of images of different sizes")
    data = np.stack(frames)
    return Raw(data, [Axis(name="element"), *axes], "SER", frame_axis=0)


def read_emi(path: Path) -> Raw:
    """The EMI file's data: the SER file beside it (``NAME_1.ser``; ``NAME_2.ser``... are other signals)."""
    candidates = sorted(path.parent.glob(f"{path.stem}_*.ser"))
    if not candidates:
        raise ClassifierError(f"no SER file beside it ({path.stem}_1.ser holds the data of an EMI file)")
    return read_ser(candidates[0])
