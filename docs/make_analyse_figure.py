"""docs/figures/analyse.png: nine test particles of a simulated catalog tiled into one micrograph and
run through `classifier analyse` (detect, cut out, classify, overlay), with the true classes printed.

Run: python docs/make_analyse_figure.py MODEL.pt [DATASET.zarr]   (default dataset: data/simulation-c-v1.zarr)
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from classifier.micrograph import analyse
from classifier.modelfile import load_model
from datagen.store import open_samples

OUT = Path(__file__).resolve().parent / "figures" / "analyse.png"


def main():
    model_path = Path(sys.argv[1])
    dataset = Path(sys.argv[2] if len(sys.argv) > 2 else "data/simulation-c-v1.zarr")
    ds = open_samples(dataset)
    test = np.flatnonzero(ds.split.values == "test")
    pick = np.sort(np.random.default_rng(1).choice(test, 9, replace=False))
    sub = ds.isel(sample=pick)
    tiles = [(t - t.mean()) / t.std() for t in sub.image.values]  # each tile standardised: weak seams
    image = np.block([[tiles[r * 3 + c] for c in range(3)] for r in range(3)]).astype(np.float32)
    model, info = load_model(model_path)
    result = analyse(image, float(sub.pixel_size_nm.values[0]), model, info, device="cpu",
                     path=f"{ds.attrs['catalog_name']}: 9 test images tiled")
    names = ds.label.attrs["flag_meanings"].split()
    truth = [names[v] for v in sub.label.values]
    result.plot(OUT)
    print(f"wrote {OUT}; true classes, row by row: {', '.join(truth)}")
    for p in result.particles:
        tile = int(p.y_px // tiles[0].shape[0]) * 3 + int(p.x_px // tiles[0].shape[1])
        print(f"particle {p.id}: {p.diameter_nm:.2f} nm, {p.label} ({p.confidence:.2f}); true {truth[tile]}")


if __name__ == "__main__":
    main()
