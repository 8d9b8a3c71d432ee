"""The model card: what a model file was trained on and how, and how it did, as Markdown.

Written from the model file itself (architecture, classes, input, threshold, training datasets with
their content hashes, settings, best epoch) and from ``evaluate --out`` reports (``report.json``): test
metrics per dataset, with the reject rule, per class, the confusion matrix and per lattice-visibility bin; then the limits
that follow from how it was made, and the command that rebuilds it.
"""

from __future__ import annotations

import json
from pathlib import Path

from classifier.errors import ClassifierError, refuse_existing
from classifier.modelfile import read_info
from datagen.files import atomic_path

#: The limits every model trained here carries (simulated training data only).
LIMITS = (
    "Trained on simulated images only. Real micrographs differ in ways no recipe covers fully: "
    "contamination, drift, beam damage, particles on thick or crystalline supports, and cut-outs made by "
    "another segmentation.",
    "One metal and one microscope family: the training datasets' element, voltage, aberrations and pixel "
    "size bound where it can be trusted; on another metal or microscope, evaluate it on labelled particles "
    "first (`classifier evaluate DATA --model ...`), or train on a catalog entry that matches.",
    "A crystal whose lattice does not show in its image (visibility < 1) cannot be told from an amorphous "
    "particle by its image alone; the table per visibility bin shows how often such particles are called "
    "crystalline.",
)


def _pct(v) -> str:
    return "–" if v is None else f"{100 * v:.1f} %"


def read_report(path: str | Path) -> dict:
    """An ``evaluate --out`` folder's ``report.json`` (or the file itself)."""
    path = Path(path)
    file = path / "report.json" if path.is_dir() else path
    try:
        return json.loads(file.read_text())
    except (OSError, ValueError) as err:
        raise ClassifierError(f"{file}: not an evaluation report ({type(err).__name__})") from None


def model_card(model_path: str | Path, reports: list[dict], *, rebuild: str = "") -> str:
    """The Markdown model card of ``model_path`` with the evaluation ``reports`` (``read_report``)."""
    info, state = read_info(model_path)
    n_params = sum(v.numel() for v in state.values() if v.is_floating_point())
    half = any(v.dtype.is_floating_point and v.element_size() == 2 for v in state.values())
    t = info.training
    best = t.get("best_epoch")
    h = info.history[best - 1] if best and info.history else {}
    lines = [f"# Model card: {Path(model_path).name}", "",
             f"{info.arch}, {n_params / 1e6:.1f} M parameters{' (stored in half precision)' if half else ''}; "
             f"{info.mode}-class ({', '.join(info.classes)}); input: the particle cut out at {info.preprocessing.size} × "
             f"{info.preprocessing.size} px (margin {info.preprocessing.margin}), standardised inside its mask; "
             f"predictions under confidence {info.threshold:.2f} are \"unknown\". Created {info.created} with "
             f"{', '.join(f'{k} {v}' for k, v in info.software.items() if k != 'host')}.", "",
             "## Training data", ""]
    for d in info.datasets:
        lines.append(f"- `{d.name}` {d.version}, content sha256 `{d.content_sha256}`")
    lines += ["", f"{t.get('n_train', '?')} training and {t.get('n_val', '?')} validation particles "
              f"(train: {', '.join(f'{c} {n}' for c, n in t.get('train_counts', {}).items())})"
              + (f"; crystals with lattice visibility under {t['min_visibility']:g} left out" if t.get("min_visibility") else "")
              + ".", "", "## Settings", ""]
    aug = t.get("augment", {})
    lines += [f"- {t.get('epochs')} epochs at most, batch {t.get('batch_size')}, AdamW lr {t.get('lr')}, weight decay "
              f"{t.get('weight_decay')}, schedule {t.get('schedule')}"
              + (f", patience {t['patience']}" if t.get("patience") else "") + f", seed {t.get('seed')}, on {t.get('device')}",
              f"- class weights: {t.get('class_weights')}; augmentation: "
              + (", ".join(f"{k} {v}" for k, v in aug.items()) if isinstance(aug, dict) else str(aug)),
              f"- best epoch {best} of {len(info.history)}: validation accuracy {_pct(h.get('val_accuracy'))}", ""]
    lines += ["## Test metrics", ""]
    if not reports:
        lines += ["No evaluation reports were given.", ""]
    for r in reports:
        names = ", ".join(f"`{d['name']}` {d['version']}" for d in r.get("datasets", [])) or "?"
        lines += [f"### {names} (n = {r['n']})", "",
                  f"Accuracy {_pct(r['accuracy'])}; with the reject rule {_pct(r['accuracy_kept'])} at coverage "
                  f"{_pct(r['coverage'])}.", "",
                  "| class | precision | recall | n |", "| --- | ---: | ---: | ---: |"]
        for c in r["classes"]:
            lines.append(f"| {c} | {_pct(r['precision'][c])} | {_pct(r['recall'][c])} | {r['support'][c]} |")
        lines += ["", "Confusion matrix (rows: true class, columns: predicted):", "",
                  "| true \\ predicted | " + " | ".join(r["classes"]) + " |",
                  "| --- | " + " | ".join("---:" for _ in r["classes"]) + " |"]
        for c, row in zip(r["classes"], r["confusion"]):
            lines.append(f"| {c} | " + " | ".join(str(v) for v in row) + " |")
        if "by_visibility" in r:
            lines += ["", "| lattice visibility | accuracy | n | " + " | ".join(r["classes"]) + " |",
                      "| --- | ---: | ---: | " + " | ".join("---:" for _ in r["classes"]) + " |"]
            for name, b in r["by_visibility"].items():
                lines.append(f"| {name} | {_pct(b['accuracy'])} | {b['n']} | "
                             + " | ".join(str(b["support"][c]) for c in r["classes"]) + " |")
            lines += ["", f"Clear particles (amorphous, and crystals with visibility ≥ 1): {_pct(r['accuracy_clear'])} "
                          f"(n = {r['n_clear']})."]
        lines.append("")
    lines += ["## Known limits", ""] + [f"- {x}" for x in LIMITS] + [""]
    if rebuild:
        lines += ["## Rebuild", "", f"`{rebuild}`", ""]
    return "\n".join(lines)


def write_card(model_path: str | Path, report_paths: list[str | Path], out: str | Path, *, rebuild: str = "",
               overwrite: bool = False) -> Path:
    """Write the model card of ``model_path`` with the reports at ``report_paths`` to ``out``."""
    out = Path(out)
    if not overwrite:
        refuse_existing([out])
    text = model_card(model_path, [read_report(p) for p in report_paths], rebuild=rebuild)
    with atomic_path(out) as tmp:
        tmp.write_text(text)
    return out
