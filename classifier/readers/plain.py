"""Images without a pixel size: PNG and JPEG (imageio), and numpy's .npy; colour is averaged to grey."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from classifier.readers import Axis, Raw


def read_plain(path: Path) -> Raw:
    import imageio.v3 as iio

    data = np.asarray(iio.imread(path, plugin="pillow"))  # not imageio's trial of every plugin
    return _raw(data, path.suffix.lstrip(".").upper())


def read_npy(path: Path) -> Raw:
    return _raw(np.load(path, allow_pickle=False), "NPY")


def _raw(data: np.ndarray, fmt: str) -> Raw:
    if data.ndim == 3 and data.shape[-1] in (3, 4):
        data = data[..., :3].mean(axis=-1)
    frame_axis = 0 if data.ndim == 3 else None
    return Raw(data, [Axis() for _ in range(data.ndim)], fmt, frame_axis=frame_axis)
