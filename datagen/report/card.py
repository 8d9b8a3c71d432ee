"""Dataset cards: a Markdown page that tells a reader what a store holds and how it was made.

The card holds the description, the full recipe, the class balance per split, histograms of the
drawn parameters, a preview montage, the generation cost (time and hardware), the licence and how to
cite. Pictures go to a folder beside the card (``<card stem>_files/``).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import yaml

from matplotlib.figure import Figure

from datagen.errors import DatagenError
from datagen.files import atomic_path, write_text
from datagen.report.preview import write_montage
from datagen.report.summary import summarize
from datagen.store import Store, open_samples
from datagen.store.location import normalize
from datagen.store.schema import label_names
from datagen.visibility import bin_index, bin_names, dataset_visibility


SAMPLE_CONTENTS = ("Each sample is an image with its ground-truth particle mask, its class label, its split (assigned by "
                   "structure, stratified by class) and every value drawn to make it; simulated samples also keep their "
                   "full atomic model (group `atoms`).")
FIELD_CONTENTS = ("Each sample is a simulated micrograph (a field of view) with many particles: its instance image "
                  "(`instances`: 0 background, k + 1 the particle in slot k), a table per particle (`particle_class`, "
                  "`particle_kind`, `particle_diameter_nm`, centroid, `particle_cut`, `particle_touching`, area), its "
                  "split and every value drawn to make it. The atomic models are not stored (10⁵-10⁶ atoms a field); "
                  "each is rebuilt from the seed and the sample index.")


def write_histograms(path: str | Path, out: Path, *, max_panels: int = 20) -> list[str]:
    """PNG grid of histograms of the numeric per-sample provenance that varies; returns the names shown."""
    ds = open_samples(path)
    shown = []
    for name, var in ds.data_vars.items():
        if var.dims != ("sample",) or var.dtype.kind not in "fiu" or name in ("label", "seed", "structure_id"):
            continue
        values = var.values.astype(float)
        values = values[np.isfinite(values)]
        if values.size and values.min() != values.max():
            shown.append((name, values, var.attrs.get("units", "")))
    shown = shown[:max_panels]
    if not shown:
        return []
    ncol = 4
    nrow = -(-len(shown) // ncol)
    fig = Figure(figsize=(3.2 * ncol, 2.3 * nrow))
    axes = fig.subplots(nrow, ncol, squeeze=False)
    for ax in axes.ravel():
        ax.set_visible(False)
    for ax, (name, values, units) in zip(axes.ravel(), shown):
        ax.set_visible(True)
        ax.hist(values, bins=min(30, max(5, int(np.sqrt(values.size)))), color="tab:blue", alpha=0.8)
        ax.set_title(f"{name} [{units}]" if units and units != "1" else name, fontsize=8)
        ax.tick_params(labelsize=7)
    fig.tight_layout()
    with atomic_path(out) as tmp:
        fig.savefig(tmp, dpi=90)
    return [name for name, _, _ in shown]


def _table(header: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _visibility_table(path) -> str:
    """Particles per class and lattice-visibility bin, or "" where the dataset's visibility is not measured."""
    ds = open_samples(path)
    vis = dataset_visibility(ds)
    if vis is None:
        return ""
    names = label_names(ds["label"])
    cls = np.array([names.get(int(v), str(int(v))) for v in ds["label"].values])
    idx = bin_index(vis)
    rows = []
    for c in (n for n in names.values() if (cls == n).any()):
        sel = cls == c
        rows.append([c, *[int((idx[sel] == b).sum()) for b in range(len(bin_names()))],
                     f"{(vis[sel] >= 1).mean():.1%}"])
    return _table(["class", *bin_names(), "visibility >= 1"], rows)


def write_card(path: str | Path, out: str | Path, *, loading: str | None = None) -> Path:
    """Write the dataset card of the complete store at ``path`` to the Markdown file ``out``; ``loading``
    (Markdown) replaces the sentence on how to read the store (a published copy says how to download it)."""
    path, out = normalize(path), Path(out)
    if out.suffix.lower() != ".md":
        raise DatagenError(f"--out {out}: a dataset card is Markdown; give a .md file name")
    if not out.parent.exists():
        raise DatagenError(f"--out {out}: the folder {out.parent} does not exist")
    store = Store.open(path, mode="r")
    if not store.complete:
        raise DatagenError(f"{path} is incomplete ({store.verify().summary()}); finish the generation first")
    s = summarize(path)
    a = store.attrs
    files = out.parent / f"{out.stem}_files"
    files.mkdir(exist_ok=True)
    write_montage(path, files / "preview.png", per_class=8)
    hist_names = write_histograms(path, files / "histograms.png")
    recipe = json.loads(a["recipe"])
    gen = a.get("generation", {})
    balance = [[split, *counts.values(), sum(counts.values())] for split, counts in s["balance"].items()]
    totals = [sum(col) for col in zip(*[row[1:] for row in balance])]
    ranges = [[name, f"{r['min']:.4g}", f"{r['max']:.4g}", r["units"]] for name, r in s["provenance"].items()
              if "min" in r]
    cats = [[name, ", ".join(f"{k} ({v})" for k, v in r["values"].items())] for name, r in s["provenance"].items()
            if "values" in r]
    rel = files.name
    parts = [
        f"# {a['title']}",
        "",
        a["summary"],
        "",
        _table(["", ""], [["catalog entry", f"`{a['catalog_name']}` version {a['catalog_version']}"],
                          ["samples", f"{s['n_samples']} images of {s['image_shape'][0]} × {s['image_shape'][1]} px"],
                          ["content sha256", f"`{a['content_sha256']}`"],
                          ["recipe sha256", f"`{a['recipe_sha256']}`"],
                          ["generator / backend", f"{recipe['generator']} / {a['backend']} {a['backend_version']}"],
                          ["made with", a["source"]], ["created", a["date_created"]], ["licence", a["license"]]]),
        "",
        "## Contents",
        "",
        (FIELD_CONTENTS if s.get("balance_unit") == "particles" else SAMPLE_CONTENTS) + ("" if loading else " Read it with "
        "`datagen.store.open_samples(PATH)` or `xarray.open_zarr(PATH, group='samples', consolidated=False)`."),
        "",
        *([loading] if loading else []),
        f"![preview]({rel}/preview.png)",
        "",
        "### Class balance" + (" (particles)" if s.get("balance_unit") == "particles" else ""),
        "",
        _table(["split", "amorphous", "monocrystalline", "polycrystalline", "total"],
               balance + [["all", *totals]]),
        "",
        "### Drawn parameters",
        "",
        _table(["parameter", "min", "max", "units"], ranges),
        "",
    ]
    if cats:
        parts += [_table(["parameter", "values (count)"], cats), ""]
    if hist_names:
        parts += [f"![histograms]({rel}/histograms.png)", ""]
    vis = _visibility_table(path)
    if vis:
        parts += ["### Lattice visibility", "",
                  "How strongly each particle's lattice shows in its noise-free image: the peak ratio of the lattice "
                  "band of its diffractogram over the 99th percentile of this dataset's amorphous particles of its "
                  "size on its film (`datagen.visibility`). Below 1 a crystal looks amorphous.", "",
                  vis, ""]
    parts += [
        "## Recipe",
        "",
        f"The catalog entry as it was used (also stored in the dataset's `recipe` attribute):",
        "",
        "```yaml",
        yaml.safe_dump(recipe, sort_keys=False).rstrip(),
        "```",
        "",
        "## Generation cost",
        "",
        _table(["", ""], [["wall time (all runs)", f"{gen.get('seconds_total', gen.get('seconds_last_run', 0)):.1f} s"
                                                   + (f" in {gen['runs']} runs" if gen.get("runs", 1) > 1 else "")],
                          ["workers", gen.get("workers", "?")], ["device", gen.get("device", "cpu")],
                          ["host CPUs", gen.get("cpus", "?")], ["platform", gen.get("platform", "?")]]
               + [[label, gen[key]] for label, key in (("torch CPU kernels", "cpu_capability"), ("torch", "torch"),
                                                       ("numpy", "numpy")) if key in gen]),
        "",
        "## History",
        "",
        "```",
        a.get("history", ""),
        "```",
        "",
        "## Licence and citation",
        "",
        f"Licensed {a['license']}. Please cite the dataset as: *{a['title']}*, content sha256 "
        f"`{a['content_sha256'][:16]}…`, generated with {a['source']}; and the method it follows: "
        f"{a['references']}.",
        "",
        f"Regenerate and check it with `datagen generate {a['catalog_name']} --out OUT` and "
        f"`datagen verify OUT --against {a['catalog_name']}`.",
        "",
    ]
    write_text(out, "\n".join(parts))
    return out
