"""A dataset at a glance: size, state, class balance per split and the range of every provenance field."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from datagen.store import CLASS_NAMES, SPLIT_NAMES, Store, core_variables, open_samples


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
        out["verify"] = store.verify().summary()
    if not written:
        return out
    ds = open_samples(path, allow_incomplete=True)
    done = np.concatenate([np.arange(layout.chunk_slice(c).start, layout.chunk_slice(c).stop)
                           for c in store.written_chunks()])
    ds = ds.isel(sample=done)
    labels, splits = ds.label.values, np.array(ds.split.values.tolist(), dtype=object)
    out["balance"] = {
        split: {name: int(((labels == i) & (splits == split)).sum()) for i, name in enumerate(CLASS_NAMES)}
        for split in SPLIT_NAMES}
    ranges = {}
    for var in layout.provenance:
        values = ds[var.name].values
        if var.dtype == "str":
            uniq, counts = np.unique(np.array(values.tolist(), dtype=object), return_counts=True)
            ranges[var.name] = {"values": dict(zip(uniq.tolist(), counts.tolist())), "units": var.units}
            continue
        finite = values[np.isfinite(values)] if values.dtype.kind == "f" else values
        ranges[var.name] = ({"min": float(finite.min()), "max": float(finite.max()), "units": var.units,
                             "n": int(finite.size)} if finite.size else {"n": 0, "units": var.units})
    out["provenance"] = ranges
    out["core"] = [v.name for v in core_variables()]
    return out
