"""The paper's classification tables beside ours: each training set's own test split, two- and three-class,
with per-class precision and recall and the reject rule; plus rows the paper could not make.

Rows (one model file per training set and class mode, trained here where absent with ``--train``):

- the paper's four training sets, built from our catalog entries: pattern-v1, simulation-c-v1,
  simulation-c-si-v1 and poly-v1, each tested on its own test split (Tables 1-4 of Gumbiowski et al.
  2024), two- and three-class;
- trained on C (simulation-c-v1), tested on C + Si (simulation-c-si-v1);
- trained on Au (poly-v1), tested on Pt (pt-200kv-v1) and Ag (ag-80kv-v1);
- trained noise-free (poly-v1), tested on recorded images (poly-recorded-v1), and the other way round.

Each row gives accuracy, accuracy with the reject rule (confidence < 0.80 is "unknown") and its coverage,
per-class recall and precision, and, where the test set's lattice visibility is measured, the accuracy on
the clear particles (amorphous, and crystals with visibility >= 1). The paper's figures are those its
text gives (96.3 % three-class and 98.7 % two-class on simulated poly test data; 78.0 %, 85.4 % with the
reject rule, and 89.3 % two-class on 737 real particles); the other cells of its tables are left to the
article itself.

Input size: ``--size`` (default 112 px; the paper used 224, which costs about 3x the CPU time).

Run: python benchmarks/paper_tables.py --data data --models benchmarks/models [--train] [--size 112]
Prints a Markdown table and writes benchmarks/results/paper_tables.json (and .md).
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

from _output import RESULTS, write_json
from classifier.evaluate import evaluate
from classifier.train import TrainConfig, train

#: The figures the paper's text gives: (training set, test set, mode) -> accuracy (and the reject rule's).
PAPER = {
    ("poly-v1", "poly-v1", "three"): {"accuracy": 0.963},
    ("poly-v1", "poly-v1", "two"): {"accuracy": 0.987},
    ("poly-v1", "real (737 particles)", "three"): {"accuracy": 0.780, "accuracy_kept": 0.854},
    ("poly-v1", "real (737 particles)", "two"): {"accuracy": 0.893},
}

SETS = ("pattern-v1", "simulation-c-v1", "simulation-c-si-v1", "poly-v1")


@dataclass(frozen=True)
class Row:
    train: str
    test: str
    mode: str
    what: str  # which table or question the row answers


def rows() -> list[Row]:
    out = [Row(s, s, mode, "paper's table") for s in SETS for mode in ("three", "two")]
    out += [Row("simulation-c-v1", "simulation-c-si-v1", "three", "C -> C+Si"),
            Row("poly-v1", "pt-200kv-v1", "three", "Au -> Pt"),
            Row("poly-v1", "ag-80kv-v1", "three", "Au -> Ag"),
            Row("poly-v1", "poly-recorded-v1", "three", "noise-free -> recorded"),
            Row("poly-recorded-v1", "poly-recorded-v1", "three", "recorded -> recorded"),
            Row("poly-recorded-v1", "poly-v1", "three", "recorded -> noise-free")]
    return out


def model_for(train_set: str, mode: str, data: Path, models: Path, size: int, epochs: int, do_train: bool) -> Path | None:
    path = models / f"{train_set}-{mode}-{size}.pt"
    if path.is_file():
        return path
    if not do_train:
        print(f"skipped: {path} is absent (run with --train to train it)")
        return None
    store = data / f"{train_set}.zarr"
    if not store.exists():
        print(f"skipped: {store} is absent (datagen generate {train_set} --out {store})")
        return None
    print(f"training {path} on {store} ({mode}-class, {size} px, {epochs} epochs)")
    train([store], path, TrainConfig(arch="resnet18", mode=mode, size=size, epochs=epochs), progress=True)
    return path


def evaluate_row(row: Row, model: Path, data: Path) -> dict | None:
    store = data / f"{row.test}.zarr"
    if not store.exists():
        print(f"skipped: {store} is absent")
        return None
    s = evaluate(model, [store], split="test", progress=True).summary()
    return {k: s.get(k) for k in ("n", "accuracy", "accuracy_kept", "coverage", "recall", "precision",
                                  "accuracy_clear", "n_clear", "by_visibility")}


def pct(v) -> str:
    return "–" if v is None else f"{100 * v:.1f}"


def markdown(results: list[dict], size: int) -> str:
    head = ("| trained on | tested on | classes | what | n | accuracy % | paper % | reject rule % (coverage) | "
            "clear % | recall % | precision % |")
    lines = [f"ResNet-18 at {size} px, each model tested on the test split of the test set.", "", head,
             "| " + " | ".join("---" for _ in range(head.count("|") - 1)) + " |"]
    for r in results:
        m = r.get("metrics")
        paper = PAPER.get((r["train"], r["test"], r["mode"]), {})
        if m is None:
            lines.append(f"| {r['train']} | {r['test']} | {r['mode']} | {r['what']} | – | not run | "
                         f"{pct(paper.get('accuracy'))} | | | | |")
            continue
        rec = ", ".join(f"{c[:4]} {pct(v)}" for c, v in m["recall"].items())
        prec = ", ".join(f"{c[:4]} {pct(v)}" for c, v in m["precision"].items())
        lines.append(f"| {r['train']} | {r['test']} | {r['mode']} | {r['what']} | {m['n']} | {pct(m['accuracy'])} | "
                     f"{pct(paper.get('accuracy'))} | {pct(m['accuracy_kept'])} ({pct(m['coverage'])}) | "
                     f"{pct(m.get('accuracy_clear'))} | {rec} | {prec} |")
    for (train_set, test, mode), p in PAPER.items():
        if test.startswith("real"):
            lines.append(f"| {train_set} | {test} | {mode} | the paper's real test | 737 | – | {pct(p['accuracy'])} | "
                         f"{pct(p.get('accuracy_kept'))} | | | |")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=Path("data"), help="folder of the catalog stores (ENTRY.zarr)")
    ap.add_argument("--models", type=Path, default=Path("benchmarks/models"), help="folder of the model files")
    ap.add_argument("--train", action="store_true", help="train the model files that are absent")
    ap.add_argument("--size", type=int, default=112, help="input side [pixel] (the paper: 224)")
    ap.add_argument("--epochs", type=int, default=30)
    args = ap.parse_args()
    args.models.mkdir(parents=True, exist_ok=True)
    results = []
    for row in rows():
        model = model_for(row.train, row.mode, args.data, args.models, args.size, args.epochs, args.train)
        metrics = None if model is None else evaluate_row(row, model, args.data)
        results.append({"train": row.train, "test": row.test, "mode": row.mode, "what": row.what,
                        "model": None if model is None else str(model), "metrics": metrics})
    text = markdown(results, args.size)
    print(text)
    write_json("paper_tables", {"size": args.size, "epochs": args.epochs, "paper": {"|".join(k): v for k, v in PAPER.items()},
                                "rows": results})
    (RESULTS / "paper_tables.md").write_text(text)
    print(f"wrote {RESULTS / 'paper_tables.md'}")


if __name__ == "__main__":
    main()
