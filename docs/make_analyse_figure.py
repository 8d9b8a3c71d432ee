"""docs/figures/analyse.png: one held-out simulated field analysed with `classifier analyse` (the U-Net,
the default, and the classical detector), beside its ground truth (each true particle outlined in its class's colour;
found particles in red).

Run: python docs/make_analyse_figure.py [FIELDS.zarr] [INDEX]   (default: data/fields-dose100-v1.zarr, the
field with the most particles)
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from classifier.detection.score import score_image
from classifier.micrograph import analyse
from datagen.classes import CLASS_COLOURS, CLASS_NAMES
from datagen.store import open_samples

OUT = Path(__file__).resolve().parent / "figures" / "analyse.png"


def main():
    path = Path(sys.argv[1] if len(sys.argv) > 1 else "data/fields-dose100-v1.zarr")
    ds = open_samples(path)
    i = int(sys.argv[2]) if len(sys.argv) > 2 else int(np.argmax(ds.n_particles.values))
    image, truth, px = ds.image[i].values, ds.instances[i].values, float(ds.pixel_size_nm[i])
    results = {d: analyse(image, px, detector=d) for d in ("unet", "classical")}
    fig = Figure(figsize=(14, 5.6))
    axes = fig.subplots(1, 3)
    lo, hi = np.percentile(image, [1, 99])
    for ax in axes:
        ax.imshow(image, cmap="gray", vmin=lo, vmax=hi, interpolation="nearest")
        ax.set_axis_off()
    classes = ds.particle_class[i].values
    for c, name in enumerate(CLASS_NAMES):
        ids = np.flatnonzero(classes == c) + 1
        if len(ids):
            axes[0].contour(np.isin(truth, ids), levels=[0.5], colors=CLASS_COLOURS[name], linewidths=0.8)
    dose = float(ds.dose_e_per_A2[i])
    axes[0].set_title(f"ground truth: {int(ds.n_particles[i])} particles\n(orange amorphous, blue mono, green poly)",
                      fontsize=9)
    scores = {}
    for ax, (name, result) in zip(axes[1:], results.items()):
        ax.contour(result.labels > 0, levels=[0.5], colors="red", linewidths=0.8)
        s = scores[name] = score_image(result.labels, truth, px)
        ax.set_title(f"--detector {name}: {len(result.particles)} found (border dropped)\nrecall {s.recall:.0%}, "
                     f"precision {s.precision:.0%} at IoU > 0.5", fontsize=9)
    fig.suptitle(f"{ds.attrs['catalog_name']} #{i}: {image.shape[0]} px of {px:.3f} nm, "
                 f"{'noise-free' if not np.isfinite(dose) else f'{dose:.0f} e/Å²'}, defocus {float(ds.defocus_nm[i]):.0f} nm, "
                 f"Cs {float(ds.cs_um[i]) / 1000:.2f} mm, {ds.support_element.values[i]} film "
                 f"{float(ds.support_thickness_nm[i]):.1f} nm", fontsize=10)
    fig.tight_layout()
    fig.savefig(OUT, dpi=110)
    print(f"wrote {OUT}: field {i}, " + "; ".join(f"{k}: {v.as_dict()}" for k, v in scores.items()))


if __name__ == "__main__":
    main()
