"""Particle detection on held-out simulated fields, on real support-only images and on noise, and its speed.

1. Accuracy, per condition (the catalog entries fields-clean-v1: noise-free; fields-dose100-v1: 100 e-/Å²;
   fields-blur8bit-v1: blurred with sigma 2 px and saved as 8 bits; seeds never used for training) and
   detector: recall and precision at IoU > 0.5 for particles of at least 1 nm not cut by the border
   (``classifier.detection.score``), pixel IoU, equivalent-diameter error (median |d / d_true - 1|) and
   bias, the share of touching pairs told apart, and seconds per megapixel.
2. False particles with the default settings: the real amorphous-carbon images of ../shared/data
   (support only, 0.135 nm/px, about 475 nm underfocus), the test split of the simulated bare films of
   fields-support-v1 (the U-Net trains on its train split) and Gaussian noise of 256² and 1024² pixels.
3. Speed of ``classifier analyse`` without writing (detect and measure; classify too with --model): a
   1024² and a 4096² micrograph tiled from fields of the first condition, and its cost per pixel.

Targets (issue 13): recall and precision >= 95 %, diameter error <= 10 %, touching pairs split >= 90 %;
1024² in under 2 s and 4096² in under 20 s on 2 cores.

Run: python benchmarks/bench_detect.py [--data data] [--detectors classical] [--model M.pt]
Prints the tables and writes benchmarks/results/bench_detect.json. Build the fields first:
    datagen generate fields-clean-v1 --out data/fields-clean-v1.zarr   (and the two others)
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from _output import write_json
from classifier.detection import DETECTORS, get_detector
from classifier.detection.score import Score, score_image
from classifier.micrograph import analyse
from datagen.store import open_samples

CONDITIONS = {"noise-free": "fields-clean-v1", "dose 100 e/Å²": "fields-dose100-v1",
              "blur 2 px + 8-bit": "fields-blur8bit-v1"}
SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


def accuracy(path: Path, detector: str) -> dict:
    ds = open_samples(path)
    detect = get_detector(detector)
    total, seconds, pixels = Score(), 0.0, 0
    for i in range(ds.sizes["sample"]):
        image, px = ds.image[i].values, float(ds.pixel_size_nm[i])
        t = time.perf_counter()
        labels, _ = detect(image, px)
        seconds += time.perf_counter() - t
        pixels += image.size
        total.add(score_image(labels, ds.instances[i].values, px))
    return {**total.as_dict(), "fields": ds.sizes["sample"], "s_per_megapixel": seconds / (pixels / 1e6)}


def false_particles(detector: str, data: Path) -> list[dict]:
    from datagen.simulate.thon import read_raw_image

    rows = []
    carbon = SHARED / "amorphous_carbon_thon_rings"
    for name in ("img_1.raw", "img_2.raw", "img_50.raw"):
        if (carbon / name).exists():
            found = analyse(read_raw_image(carbon / name), 0.135355, detector=detector).particles
            rows.append({"detector": detector, "image": f"real a-C {name}", "particles": len(found)})
    film = data / "fields-support-v1.zarr"
    if film.exists():  # bare simulated films, the test split (never trained on)
        ds = open_samples(film)
        test = np.flatnonzero(ds.split.values == "test")
        found = [len(analyse(ds.image[i].values, float(ds.pixel_size_nm[i]), detector=detector).particles) for i in test]
        rows.append({"detector": detector, "image": f"simulated bare film ({len(test)} test fields)", "particles": int(sum(found))})
    rng = np.random.default_rng(0)
    for n, px in ((256, 0.02), (256, 0.1), (1024, 0.064)):
        found = [len(analyse(rng.normal(1, 0.1, (n, n)).astype(np.float32), px, detector=detector).particles)
                 for _ in range(3)]
        rows.append({"detector": detector, "image": f"noise {n}² at {px} nm/px (3 draws)", "particles": int(sum(found))})
    return rows


def speed(path: Path, model: Path | None, detector: str) -> list[dict]:
    net = info = None
    if model is not None:
        from classifier.modelfile import load_model

        net, info = load_model(model, "cpu")
    ds = open_samples(path)
    tile = ds.image[0].values
    tile = (tile - tile.mean()) / tile.std()
    px = float(ds.pixel_size_nm[0])
    rows = []
    for n in (1024, 4096):
        reps = -(-n // tile.shape[0])
        image = np.tile(tile, (reps, reps))[:n, :n].astype(np.float32)
        analyse(image[:256, :256], px, net, info, device="cpu", detector=detector)  # warm-up
        t = time.perf_counter()
        result = analyse(image, px, net, info, device="cpu", detector=detector)
        total = time.perf_counter() - t
        rows.append({"detector": detector, "pixels": f"{n}²", "pixel_size_nm": px, "particles": len(result.particles), "seconds": total,
                     **{f"s_{k}": v for k, v in result.seconds.items()}, "s_per_megapixel": total / (n * n / 1e6)})
    return rows


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=Path("data"), help="folder holding the fields-*.zarr stores")
    ap.add_argument("--detectors", default=",".join(DETECTORS))
    ap.add_argument("--model", type=Path, default=None, help="classify too, with this model (speed only)")
    args = ap.parse_args()
    rows = []
    for condition, entry in CONDITIONS.items():
        path = args.data / f"{entry}.zarr"
        if not path.exists():
            raise SystemExit(f"{path} not found: datagen generate {entry} --out {path}")
        for detector in args.detectors.split(","):
            rows.append({"condition": condition, "detector": detector, **accuracy(path, detector)})
    pct = lambda v: f"{100 * v:5.1f}%" if v == v else "    -"  # noqa: E731
    print(f"{'condition':18} {'detector':10} {'true':>5} {'recall':>7} {'precision':>9} {'pixel IoU':>9} "
          f"{'d error':>7} {'d bias':>7} {'pairs split':>11} {'s/Mpx':>6}")
    for r in rows:
        print(f"{r['condition']:18} {r['detector']:10} {r['true']:5d} {pct(r['recall']):>7} {pct(r['precision']):>9} "
              f"{pct(r['pixel_iou']):>9} {pct(r['diameter_error']):>7} {pct(r['diameter_bias']):>7} "
              f"{pct(r['split_share']):>7} ({r['touching_pairs']:2d}) {r['s_per_megapixel']:6.2f}")
    detectors = args.detectors.split(",")
    fp = [row for d in detectors for row in false_particles(d, args.data)]
    print("\nfalse particles with the default settings")
    for r in fp:
        print(f"  {r['detector']:10} {r['image']:36} {r['particles']:3d}")
    sp = [row for d in detectors for row in speed(args.data / f"{CONDITIONS['noise-free']}.zarr", args.model, d)]
    print(f"\nanalyse without writing ({'detect, measure, classify' if args.model else 'detect and measure'}), one process, "
          f"{sp[0]['pixel_size_nm']:.3f} nm/px")
    for r in sp:
        print(f"  {r['detector']:10} {r['pixels']:>6}: {r['seconds']:6.2f} s ({r['particles']} particles; detect "
              f"{r['s_detect']:.2f} s, measure {r['s_measure']:.2f} s, classify {r['s_classify']:.2f} s), "
              f"{r['s_per_megapixel']:.2f} s/Mpx")
    write_json("bench_detect", {"accuracy": rows, "false_particles": fp, "speed": sp})


if __name__ == "__main__":
    main()
