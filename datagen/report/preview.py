"""Pictures of a dataset: a montage of samples, one row per class, with the particle outline."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from matplotlib.figure import Figure

from datagen.classes import CLASS_COLOURS, CLASS_NAMES
from datagen.errors import DatagenError
from datagen.files import atomic_path
from datagen.store import open_samples


def pick_samples(labels: np.ndarray, per_class: int) -> dict[int, np.ndarray]:
    """The first ``per_class`` sample indices of each class present."""
    return {c: np.flatnonzero(labels == c)[:per_class] for c in range(len(CLASS_NAMES)) if (labels == c).any()}


def write_montage(path: str | Path, out: str | Path, *, per_class: int = 8, outline: bool = True,
                  dpi: int = 110) -> Path:
    """Write a PNG montage of ``per_class`` samples of every class of the store at ``path``.

    Each panel is contrast-stretched on its own (1st–99th percentile) and titled with its index;
    the ground-truth mask is drawn as a contour when ``outline`` is true.
    """
    out = Path(out)
    if out.suffix.lower() != ".png":
        raise DatagenError(f"--out {out}: the preview is written as PNG; give a .png file name")
    if not out.parent.exists():
        raise DatagenError(f"--out {out}: the folder {out.parent} does not exist")
    ds = open_samples(path)
    if "instances" in ds:
        return _field_montage(ds, path, out, n=min(per_class, 6), outline=outline, dpi=dpi)
    labels = ds.label.values
    picks = pick_samples(labels, per_class)
    if not picks:
        raise DatagenError(f"{path}: the store holds no samples")
    ncol = max(len(v) for v in picks.values())
    fig = Figure(figsize=(1.6 * ncol, 1.75 * len(picks)))
    axes = fig.subplots(len(picks), ncol, squeeze=False)
    for row, (c, idx) in enumerate(picks.items()):
        images = ds.image[idx].values
        masks = ds["mask"][idx].values
        for col in range(ncol):
            ax = axes[row, col]
            ax.set_axis_off()
            if col >= len(idx):
                continue
            img = images[col]
            lo, hi = np.nanpercentile(img, [1, 99])
            ax.imshow(img, cmap="gray", vmin=lo, vmax=hi, interpolation="nearest")
            if outline and masks[col].any():
                ax.contour(masks[col], levels=[0.5], colors="tab:orange", linewidths=0.6)
            ax.set_title(f"#{int(idx[col])}", fontsize=7)
        n_class = int((labels == c).sum())
        axes[row, 0].text(-0.08, 0.5, f"{CLASS_NAMES[c]}\n(n={n_class})", transform=axes[row, 0].transAxes,
                          ha="right", va="center", fontsize=9)
    name = ds.attrs.get("catalog_name", Path(path).name)
    fig.suptitle(f"{name} {ds.attrs.get('catalog_version', '')}: {len(labels)} samples", fontsize=10)
    fig.tight_layout(rect=(0.06, 0, 1, 0.97))
    with atomic_path(out) as tmp:
        fig.savefig(tmp, dpi=dpi)
    return out


def _field_montage(ds, path, out: Path, *, n: int, outline: bool, dpi: int) -> Path:
    """The first ``n`` fields, each particle outlined in its class's colour."""
    from matplotlib.lines import Line2D

    n = min(n, ds.sizes["sample"])
    ncol = min(n, 3)
    nrow = -(-n // ncol)
    fig = Figure(figsize=(3.4 * ncol, 3.75 * nrow + 0.5))
    axes = fig.subplots(nrow, ncol, squeeze=False)
    for ax in axes.ravel():
        ax.set_axis_off()
    for i in range(n):
        ax = axes.ravel()[i]
        img, inst = ds.image[i].values, ds.instances[i].values
        classes = ds.particle_class[i].values
        lo, hi = np.nanpercentile(img, [1, 99])
        ax.imshow(img, cmap="gray", vmin=lo, vmax=hi, interpolation="nearest")
        if outline:
            for c, name in enumerate(CLASS_NAMES):
                ids = np.flatnonzero(classes == c) + 1
                if len(ids):
                    ax.contour(np.isin(inst, ids), levels=[0.5], colors=CLASS_COLOURS[name], linewidths=0.7)
        extras = []
        if float(ds.blur_px[i]) > 0:
            extras.append(f"blur {float(ds.blur_px[i]):.1f} px")
        if int(ds.eight_bit[i]):
            extras.append("8-bit")
        dose = float(ds.dose_e_per_A2[i])
        ax.set_title(f"#{i}: {int(ds.n_particles[i])} particles, {float(ds.pixel_size_nm[i]):.3f} nm/px, "
                     f"{'noise-free' if not np.isfinite(dose) else f'{dose:.0f} e/Å²'}, defocus "
                     f"{float(ds.defocus_nm[i]):.0f} nm" + (f"\n{', '.join(extras)}" if extras else ""), fontsize=7)
    handles = [Line2D([], [], color=CLASS_COLOURS[c], label=c) for c in CLASS_NAMES]
    fig.legend(handles=handles, loc="lower center", ncol=3, fontsize=8, frameon=False)
    name = ds.attrs.get("catalog_name", Path(path).name)
    fig.suptitle(f"{name} {ds.attrs.get('catalog_version', '')}: {ds.sizes['sample']} fields", fontsize=10)
    fig.tight_layout(rect=(0, 0.04, 1, 0.97))
    with atomic_path(out) as tmp:
        fig.savefig(tmp, dpi=dpi)
    return out
