"""Particle detection against the ground-truth masks of simulated datasets.

Each dataset image holds one particle on its support; the detector (classifier.micrograph) runs on the
whole image at the image's pixel size, and the region overlapping the true mask most is compared with
it: intersection over union (IoU), the share of particles found with IoU > 0.5, and the ratio of
detected to true equivalent diameter. Spurious regions (not touching the mask) are counted too.

Run: python benchmarks/bench_detect.py [DATASET.zarr ...] [--samples 300]
Prints a table and writes benchmarks/results/bench_detect.json.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from classifier.micrograph import DetectionSettings, detect_particles
from datagen.store import open_samples

DEFAULT = ["data/simulation-c-v1.zarr", "data/simulation-c-si-v1.zarr", "data/pt-200kv-v1.zarr", "data/ag-80kv-v1.zarr"]


def score(path: Path, n: int, settings: DetectionSettings) -> dict:
    ds = open_samples(path)
    idx = np.linspace(0, ds.sizes["sample"] - 1, min(n, ds.sizes["sample"])).astype(int)
    sub = ds.isel(sample=idx)
    images, masks = sub.image.values, sub["mask"].values.astype(bool)
    px = sub.pixel_size_nm.values.astype(float)
    ious, ratios, spurious = [], [], []
    t = time.perf_counter()
    for image, mask, p in zip(images, masks, px):
        labels = detect_particles(image, p, settings)
        ids, counts = np.unique(labels[mask], return_counts=True)
        counts, ids = counts[ids > 0], ids[ids > 0]
        spurious.append(len(set(np.unique(labels)) - {0} - set(ids.tolist())))
        if len(ids) == 0:
            ious.append(0.0)
            continue
        found = labels == ids[counts.argmax()]
        ious.append((found & mask).sum() / (found | mask).sum())
        ratios.append(np.sqrt(found.sum() / mask.sum()))
    dt = time.perf_counter() - t
    ious = np.asarray(ious)
    return {"dataset": f"{ds.attrs.get('catalog_name')} {ds.attrs.get('catalog_version')}", "images": len(idx),
            "median_iou": float(np.median(ious)), "found_iou_gt_0.5": float((ious > 0.5).mean()),
            "diameter_ratio_median": float(np.median(ratios)) if ratios else None,
            "spurious_per_image": float(np.mean(spurious)), "ms_per_image": 1e3 * dt / len(idx),
            "image_px": list(images.shape[1:]), "pixel_size_nm": [float(px.min()), float(px.max())]}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("datasets", nargs="*", default=DEFAULT)
    ap.add_argument("--samples", type=int, default=300, help="images per dataset, spread over it")
    args = ap.parse_args()
    settings = DetectionSettings()
    rows = [score(Path(p), args.samples, settings) for p in args.datasets if Path(p).exists()]
    if not rows:
        raise SystemExit(f"none of {args.datasets} exists; generate one (datagen generate ENTRY --out PATH)")
    head = f"{'dataset':28} {'images':>6} {'median IoU':>10} {'IoU>0.5':>8} {'d ratio':>8} {'spurious':>8} {'ms/img':>7}"
    print(head)
    for r in rows:
        print(f"{r['dataset']:28} {r['images']:6d} {r['median_iou']:10.2f} {r['found_iou_gt_0.5']:8.0%} "
              f"{r['diameter_ratio_median'] or float('nan'):8.2f} {r['spurious_per_image']:8.2f} {r['ms_per_image']:7.1f}")
    out = Path(__file__).parent / "results" / "bench_detect.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps({"settings": {k: v for k, v in vars(settings).items()}, "rows": rows}, indent=1) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
