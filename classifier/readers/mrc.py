"""MRC files (mrcfile): an image or a stack (frames first), the voxel size in Å.

Headers that are slightly off the standard (no "MAP " id, as older writers leave them) are read
permissively; what mrcfile warns about is kept in the notes. Rows are returned in file order (the
first row stored is row 0), as mrcfile and numpy give them.
"""

from __future__ import annotations

import warnings
from pathlib import Path

from classifier.readers import Axis, Raw


def read_mrc(path: Path) -> Raw:
    import mrcfile  # lazy

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with mrcfile.open(path, permissive=True, mode="r") as mrc:
            if mrc.data is None:
                raise ValueError("no data block (header only, or truncated)")
            data = mrc.data.copy()
            voxel = mrc.voxel_size
            is_stack = mrc.is_image_stack() or mrc.is_volume()
    notes = [f"MRC header: {w.message}" for w in caught]
    dy, dx = float(voxel.y), float(voxel.x)
    axes = [Axis(dy or None, "A", "y"), Axis(dx or None, "A", "x")]
    if data.ndim == 3:
        axes = [Axis(name="frame" if is_stack else "z"), *axes]
    return Raw(data, axes, "MRC", frame_axis=0 if data.ndim == 3 else None, notes=notes)
