"""A dataset at a glance: size, state, class balance per split and the range of every provenance field."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from datagen.classes import CLASS_NAMES
from datagen.errors import StoreError
from datagen.store import SPLIT_NAMES, Store, core_variables, open_atoms, open_samples


def summarize(path: str | Path, *, check: bool = False) -> dict:
    """Summary of the store at ``path`` as plain data.

    With ``check`` the chunk checksums are recomputed (reads everything); otherwise only their
    presence is reported.
    """
    store = Store.open(path, mode="r")
    layout = store.layout
    written = len(store.written_chunks())
    out = {
        "path": str(path),
        "catalog": f"{store.attrs.get('catalog_name')} {store.attrs.get('catalog_version')}",
        "title": store.attrs.get("title"),
        "summary": store.attrs.get("summary"),
        "source": store.attrs.get("source"),
        "date_created": store.attrs.get("date_created"),
        "backend": f"{store.attrs.get('backend')} {store.attrs.get('backend_version')}",
        "license": store.attrs.get("license"),
        "n_samples": layout.n_samples,
        "image_shape": list(layout.image_shape),
        "chunks": {"total": layout.n_chunks, "written": written, "chunk_size": layout.chunk_size},
        "complete": store.complete,
        "content_sha256": store.attrs.get("content_sha256"),
    }
    if check:
        report = store.verify()
        out["verify"] = report.summary()
        out["corrupt_chunks"] = [chunk for chunk, _ in report.bad]
        if report.bad:  # reading on would serve the corrupt chunks' data
            return out
    if not written:
        return out
    ds = open_samples(path, allow_incomplete=True)
    done = np.concatenate([np.arange(layout.chunk_slice(c).start, layout.chunk_slice(c).stop)
                           for c in store.written_chunks()])
    ds = ds.isel(sample=done)
    labels, splits = ds.label.values, np.array(ds.split.values.tolist(), dtype=object)
    used = None
    if layout.mixed_labels:  # fields of view: the balance counts particles, by their own classes
        classes = ds.particle_class.values
        used = classes >= 0
        out["balance_unit"] = "particles"
        out["balance"] = {split: {name: int((classes[splits == split] == i).sum()) for i, name in enumerate(CLASS_NAMES)}
                          for split in SPLIT_NAMES}
    else:
        out["balance"] = {
            split: {name: int(((labels == i) & (splits == split)).sum()) for i, name in enumerate(CLASS_NAMES)}
            for split in SPLIT_NAMES}
    ranges = {}
    for var in layout.provenance:
        values = ds[var.name].values
        if used is not None and var.dims[:2] == ("sample", "particle"):
            values = values[used]  # the particles there are, not the unused slots
        if var.dtype == "str":
            uniq, counts = np.unique(np.array(values.tolist(), dtype=object), return_counts=True)
            ranges[var.name] = {"values": dict(zip(uniq.tolist(), counts.tolist())), "units": var.units}
            continue
        finite = values[np.isfinite(values)] if values.dtype.kind == "f" else values
        ranges[var.name] = ({"min": float(finite.min()), "max": float(finite.max()), "units": var.units,
                             "n": int(finite.size)} if finite.size else {"n": 0, "units": var.units})
    out["provenance"] = ranges
    out["core"] = [v.name for v in core_variables(layout.mixed_labels)]
    return out


def compare(path_a: str | Path, path_b: str | Path) -> dict:
    """Variable by variable, how two complete stores of the same layout differ: for a store that fails
    ``verify --against``, whether the difference is rounding in the images or something real.

    Returns ``{"identical": bool, "same_recipe": bool, "variables": [row, ...]}``; each row names the
    group and variable, how many samples (or atoms) differ, and for numbers the largest absolute
    difference and that difference relative to the largest magnitude in ``path_a``.
    """
    a, b = open_samples(path_a), open_samples(path_b)
    if a.sizes != b.sizes:
        raise StoreError(f"{path_a} and {path_b} have different sizes ({dict(a.sizes)} vs {dict(b.sizes)})")
    rows = [_compare_variable("samples", name, a[name], b[name]) for name in sorted(_arrays(a) & _arrays(b))]
    rows += [{"group": "samples", "variable": name, "differing": "missing in one store"}
             for name in sorted(_arrays(a) ^ _arrays(b))]
    atoms_a, atoms_b = open_atoms(path_a), open_atoms(path_b)
    for name in sorted(_arrays(atoms_a) & _arrays(atoms_b)):
        if atoms_a[name].shape != atoms_b[name].shape:
            rows.append({"group": "atoms", "variable": name,
                         "differing": f"shape {atoms_a[name].shape} vs {atoms_b[name].shape}"})
        else:
            rows.append(_compare_variable("atoms", name, atoms_a[name], atoms_b[name]))
    same_recipe = a.attrs.get("recipe_sha256") == b.attrs.get("recipe_sha256")
    return {"identical": all(r["differing"] == 0 for r in rows), "same_recipe": same_recipe, "variables": rows}


def _arrays(ds) -> set[str]:
    """The stored arrays of a group: data variables and multi-dimensional coordinates (``xyz``)."""
    return {str(n) for n in ds.variables if n not in ds.dims or ds[n].ndim > 1}


def _compare_variable(group: str, name: str, x, y) -> dict:
    row = {"group": group, "variable": name}
    if x.shape != y.shape:
        row["differing"] = f"shape {x.shape} vs {y.shape}"
        return row
    x, y = x.variable, y.variable  # values only: no alignment on coordinates
    unequal = x != y
    if x.dtype.kind == "f":
        unequal = unequal & ~(x.isnull() & y.isnull())  # NaN (not applicable) on both sides is equal
    other = [d for d in unequal.dims if d != unequal.dims[0]]
    per_item = unequal.any(dim=other) if other else unequal
    row["differing"] = int(per_item.sum().compute())
    if row["differing"] and np.issubdtype(x.dtype, np.number) and x.dtype != bool:
        largest = float(abs(x).max().compute())
        diff = float(abs(x.astype("float64") - y.astype("float64")).max().compute())
        row.update(max_abs_difference=diff, relative=diff / largest if largest else float("inf"))
    return row
