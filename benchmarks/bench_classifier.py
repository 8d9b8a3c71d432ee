"""Classifier speed (training and inference images/s per network and input size, on one device) and
accuracy on simulated test splits side by side with the paper's.

The paper (Gumbiowski et al. 2024): ResNet-101 at 224 x 224, 96.3 % on its simulated test data; on
real particles 78.0 %, 85.4 % when predictions under 0.80 confidence are set aside.

Run: python benchmarks/bench_classifier.py [--device auto] [--model M.pt --datasets A.zarr B.zarr]
Prints tables and writes benchmarks/results/bench_classifier.json.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from classifier.augment import Augmentation
from classifier.model import build_model
from classifier.predict import autocast
from datagen.device import resolve_device

PAPER = {"simulated_test_accuracy": 0.963, "real_accuracy": 0.780, "real_accuracy_kept_0.80": 0.854}


def throughput(arch: str, size: int, dev: torch.device, batch: int, steps: int) -> dict:
    torch.manual_seed(0)
    model = build_model(arch, 3).to(dev).to(memory_format=torch.channels_last)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    x = torch.randn(batch, 1, size, size, device=dev)
    y = torch.randint(0, 3, (batch,), device=dev)
    aug = Augmentation()

    def sync():
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)

    def train_step():
        with autocast(dev):
            loss = torch.nn.functional.cross_entropy(model(aug(x).contiguous(memory_format=torch.channels_last)).float(), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    model.train()
    train_step()
    sync()
    t = time.perf_counter()
    for _ in range(steps):
        train_step()
    sync()
    train_ips = batch * steps / (time.perf_counter() - t)
    model.eval()
    with torch.inference_mode(), autocast(dev):
        model(x)
        sync()
        t = time.perf_counter()
        for _ in range(steps):
            model(x.contiguous(memory_format=torch.channels_last))
        sync()
    infer_ips = batch * steps / (time.perf_counter() - t)
    return {"arch": arch, "size": size, "batch": batch, "train_images_per_s": train_ips, "infer_images_per_s": infer_ips}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="auto")
    ap.add_argument("--model", type=Path, help="model file to evaluate on the datasets' test splits")
    ap.add_argument("--datasets", nargs="*", default=[])
    ap.add_argument("--configs", nargs="*", default=["resnet18:112", "resnet18:224", "resnet101:112", "resnet101:224"])
    args = ap.parse_args()
    dev = resolve_device(args.device)
    batch, steps = (64, 10) if dev.type == "cuda" else (16, 2)
    name = torch.cuda.get_device_name(dev) if dev.type == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    result = {"device": name, "paper": PAPER, "speed": [], "accuracy": []}
    print(f"speed on {name} (batch {batch}; training step includes augmentation)")
    print(f"{'network':10} {'input':>6} {'train img/s':>12} {'infer img/s':>12}")
    for cfg in args.configs:
        arch, size = cfg.split(":")
        row = throughput(arch, int(size), dev, batch, steps)
        result["speed"].append(row)
        print(f"{arch:10} {size:>6} {row['train_images_per_s']:12.1f} {row['infer_images_per_s']:12.1f}")
    if args.model:
        from classifier.evaluate import evaluate

        print(f"\naccuracy of {args.model} on test splits (paper: {PAPER['simulated_test_accuracy']:.1%} on its simulated test data)")
        print(f"{'dataset':28} {'n':>5} {'accuracy':>9} {'kept acc':>9} {'coverage':>9}")
        for d in args.datasets:
            s = evaluate(args.model, [d], split="test", device=args.device).summary()
            row = {"dataset": s["datasets"][0]["name"], "model": str(args.model), **{k: s[k] for k in
                   ("n", "accuracy", "accuracy_kept", "coverage", "threshold", "recall", "precision")}}
            result["accuracy"].append(row)
            print(f"{row['dataset']:28} {row['n']:5d} {row['accuracy']:9.1%} {row['accuracy_kept'] or 0:9.1%} {row['coverage']:9.1%}")
    out = Path(__file__).parent / "results" / "bench_classifier.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
