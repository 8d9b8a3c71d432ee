"""TIFF files (tifffile), with the pixel size from the metadata microscopy software writes.

In order: FEI/Thermo (``fei_metadata``: ``Scan.PixelWidth``/``PixelHeight`` in m), OME-XML
(``PhysicalSizeX``/``Y`` with their units), ImageJ (``unit`` in the ImageJ description, and the
X/YResolution tags as pixels per that unit). Plain resolution tags in inches or centimetres are a
printer's dots per inch, not a pixel size, and are ignored. A multi-page TIFF or an ImageJ stack is a
stack of frames; RGB is averaged to grey.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from classifier.errors import ClassifierError
from classifier.readers import Axis, Raw


def read_tiff(path: Path) -> Raw:
    import tifffile  # lazy

    with tifffile.TiffFile(path) as tif:
        series = tif.series[0]
        data = series.asarray()
        axes_code = series.axes  # e.g. "YX", "YXS", "IYX", "ZYX"
        page = tif.pages[0]
        dy, dx, unit = _pixel_size(tif, page)
    if axes_code.endswith("S") and data.shape[-1] in (3, 4):  # colour samples
        data = data[..., :3].mean(axis=-1)
        axes_code = axes_code[:-1]
    frame_axis = 0 if data.ndim == 3 else None
    axes = [Axis(name="frame")] * (data.ndim - 2) + [Axis(dy, unit, "y"), Axis(dx, unit, "x")]
    return Raw(data, axes, "TIFF", frame_axis=frame_axis)


def _pixel_size(tif, page) -> tuple[float | None, float | None, str]:
    fei = getattr(tif, "fei_metadata", None)
    if fei:
        scan = fei.get("Scan", {}) or fei.get("EScan", {})
        dx, dy = scan.get("PixelWidth"), scan.get("PixelHeight", scan.get("PixelWidth"))
        if dx:
            return float(dy), float(dx), "m"
    ome = getattr(tif, "ome_metadata", None)
    if ome:
        found = {}
        for axis in "XY":
            m = re.search(rf'PhysicalSize{axis}="([0-9.eE+-]+)"', ome)
            u = re.search(rf'PhysicalSize{axis}Unit="([^"]+)"', ome)
            if m:
                found[axis] = (float(m.group(1)), u.group(1) if u else "µm")  # OME's default unit is µm
        if "X" in found:
            dx, unit = found["X"]
            dy = found.get("Y", found["X"])[0]
            return dy, dx, unit
    ij = getattr(tif, "imagej_metadata", None)
    if ij and ij.get("unit") and "XResolution" in page.tags:
        unit = str(ij["unit"])
        if "\\u" in unit:  # ImageJ writes non-ASCII units escaped: "\u00C5" for Å, "\u00B5m" for µm
            unit = unit.encode("ascii", "replace").decode("unicode_escape")
        xr = page.tags["XResolution"].value
        yr = page.tags["YResolution"].value if "YResolution" in page.tags else xr
        px_per_unit_x, px_per_unit_y = xr[0] / xr[1], yr[0] / yr[1]
        if px_per_unit_x > 0 and px_per_unit_y > 0:
            return 1 / px_per_unit_y, 1 / px_per_unit_x, unit
    return None, None, ""
