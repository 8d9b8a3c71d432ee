"""docs/figures/catalogs.png: a few images of each class from several built catalog entries, side by side.

    python docs/make_catalog_figure.py data/simulation-c-v1.zarr data/pt-200kv-v1.zarr data/ag-80kv-v1.zarr

One row per store, ``--per-class`` images of each class (the first of its test split), each stretched
on its own (1st-99th percentile), the ground-truth particle mask outlined; the row says the entry and
its optics. Reads the stores only through ``datagen.store.open_samples``.
"""

from __future__ import annotations

import argparse
import io
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

from datagen.store import CLASS_NAMES, open_samples  # noqa: E402

OUT = Path(__file__).resolve().parent / "figures" / "catalogs.png"


def row_label(ds) -> str:
    first = {name: ds[name].values[0] for name in ("element", "voltage_kv", "pixel_size_nm", "dose_e_per_A2")}
    dose = ds.dose_e_per_A2.values
    noise = "noise-free" if np.isnan(dose).all() else f"{np.nanmin(dose):.0f}-{np.nanmax(dose):.0f} e/Å²"
    return (f"{ds.attrs['catalog_name']}\n{first['element']}, {first['voltage_kv']:.0f} kV\n"
            f"{first['pixel_size_nm'] * 10:.2f} Å/px, {noise}")


def main(argv=None) -> Path:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("stores", nargs="+", type=Path)
    parser.add_argument("--per-class", type=int, default=2)
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    n = args.per_class
    fig, axes = plt.subplots(len(args.stores), 3 * n, figsize=(1.5 * 3 * n + 1.4, 1.55 * len(args.stores) + 0.3),
                             squeeze=False)
    for row, path in enumerate(args.stores):
        ds = open_samples(path)
        test = ds.split.values == "test"
        for c, name in enumerate(CLASS_NAMES):
            idx = np.flatnonzero(test & (ds.label.values == c))[:n]
            for k, i in enumerate(idx):
                ax = axes[row, c * n + k]
                img, mask = ds.image[int(i)].values, ds["mask"][int(i)].values
                lo, hi = np.percentile(img, [1, 99])
                ax.imshow(img, cmap="gray", vmin=lo, vmax=hi, interpolation="nearest")
                if mask.any():
                    ax.contour(mask, levels=[0.5], colors="tab:orange", linewidths=0.6)
                if row == 0:
                    ax.set_title(name if k == 0 else "", fontsize=9, loc="left")
        for ax in axes[row]:
            ax.set_xticks([])
            ax.set_yticks([])
        axes[row, 0].set_ylabel(row_label(ds), fontsize=7, rotation=0, ha="right", va="center", labelpad=4)
    fig.tight_layout(w_pad=0.2, h_pad=0.3)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    fig.savefig(buffer, dpi=100)
    plt.close(fig)
    # noise does not compress: a 128-colour palette keeps the file small for the repository
    Image.open(buffer).convert("RGB").quantize(colors=128).save(args.out, optimize=True)
    print(f"wrote {args.out}")
    return args.out


if __name__ == "__main__":
    main()
