"""The dataset store: a versioned zarr v3 store with full provenance, written and read through xarray.

Layout (the variables are declared in ``datagen.store.schema``)::

    PATH/                      root attributes: ACDD metadata, catalog, recipe (JSON), checksums state
      samples/                 dimension `sample` (+ y, x and small provenance dims)
        image, mask, label, split, structure_id, seed, <provenance variables>
      atoms/                   CSR-style atomic models: atom_start, n_atoms, cell per sample;
                               flat xyz, Z, part along `atom`
      checksums/sha256         (chunk, 32) uint8, one zarr chunk per sample chunk

Chunks run along `sample` only. Each sample chunk ``c`` owns a fixed block of the flat `atom`
dimension (``chunk_size * atoms_per_sample`` slots, one zarr chunk), so a task that writes sample
chunk ``c`` writes whole zarr chunks of every array and no two tasks touch the same object. A chunk
counts as written once its sha256 is stored (it is written after the data); the store is marked
complete only after every chunk is written and re-checked.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import shutil
import threading
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import dask.array as da
import numpy as np
import xarray as xr
import zarr
from ase import Atoms

from datagen._version import __version__
from datagen.errors import StoreError
from datagen.store.location import is_archive, normalize, zarr_store
from datagen.store.schema import (ATOM_VARIABLES, CLASS_NAMES, FLAT_ATOM_VARIABLES, PART_NAMES, SPLIT_NAMES, Layout,
                            Variable, core_variables)

#: Version of the on-disk layout described above.
STORE_SCHEMA_VERSION = 1
_OPEN = {"consolidated": False}


# ----------------------------------------------------------------------------------------- creation
def _template(variables: Sequence[Variable], layout: Layout) -> tuple[xr.Dataset, dict]:
    sizes = layout.sizes()
    data_vars, encoding = {}, {}
    for var in variables:
        shape = tuple(sizes[d] for d in var.dims)
        lead = layout.chunk_size if var.dims[0] == "sample" else max(layout.atom_block, 1)
        chunks = (lead,) + shape[1:]
        if var.dtype == "str":
            data = np.full(shape, "", dtype=object)
        else:
            data = da.full(shape, var.fill, dtype=var.dtype, chunks=chunks)
        attrs = {"units": var.units, "long_name": var.long_name, **var.attrs}
        data_vars[var.name] = (var.dims, data, attrs)
        encoding[var.name] = {"chunks": chunks}
        if var.dtype != "str" and np.dtype(var.dtype).kind == "f":
            encoding[var.name]["_FillValue"] = np.nan
    return xr.Dataset(data_vars), encoding


def _write_template(path: Path, layout: Layout, attrs: Mapping) -> None:
    samples, enc = _template(layout.variables, layout)
    samples = samples.assign_coords(sample=np.arange(layout.n_samples, dtype="int64"))
    enc["sample"] = {"chunks": (layout.chunk_size,)}
    samples.to_zarr(path, group="samples", mode="w-", compute=False, encoding=enc, zarr_format=3, **_OPEN)
    atom_vars = ATOM_VARIABLES + (FLAT_ATOM_VARIABLES if layout.atoms_per_sample else ())
    atoms, enc = _template(atom_vars, layout)
    atoms.attrs["atoms_per_sample"] = layout.atoms_per_sample
    atoms.to_zarr(path, group="atoms", mode="w-", compute=False, encoding=enc, zarr_format=3, **_OPEN)
    root = zarr.open_group(path, mode="r+", zarr_format=3)
    root.create_array("checksums", shape=(layout.n_chunks, 32), chunks=(1, 32), dtype="uint8",
                      fill_value=0, dimension_names=("chunk", "byte"),
                      attributes={"long_name": "sha256 of each sample chunk's stored content", "units": "1"})
    root.attrs.update({
        **attrs,
        "datagen_store_schema": STORE_SCHEMA_VERSION,
        "n_samples": layout.n_samples,
        "chunk_size": layout.chunk_size,
        "n_chunks": layout.n_chunks,
        "image_shape": list(layout.image_shape),
        "atoms_per_sample": layout.atoms_per_sample,
        **({"mixed_labels": True} if layout.mixed_labels else {}),
        "provenance_order": json.dumps([v.name for v in layout.provenance]),
        "complete": False,
        "content_sha256": None,
    })


def dataset_attributes(*, title: str, summary: str, catalog_name: str, catalog_version: str,
                       recipe: Mapping, license: str, references: str, backend: str,
                       backend_version: str, command: str = "") -> dict:
    """Root attributes of a new store: ACDD-style metadata plus the catalog, recipe and backend."""
    now = datetime.now(timezone.utc).replace(microsecond=0).isoformat()
    recipe_json = json.dumps(recipe, sort_keys=True, separators=(",", ":"))
    return {
        "Conventions": "CF-1.10, ACDD-1.3",
        "title": title,
        "summary": summary,
        "source": f"datagen {__version__}",
        "date_created": now,
        "license": license,
        "references": references,
        "history": f"{now} created by datagen {__version__}" + (f": {command}" if command else ""),
        "catalog_name": catalog_name,
        "catalog_version": catalog_version,
        "recipe": recipe_json,
        "recipe_sha256": hashlib.sha256(recipe_json.encode()).hexdigest(),
        "backend": backend,
        "backend_version": backend_version,
    }


def create_or_open(path: str | Path, layout: Layout, attrs: Mapping) -> "Store":
    """Create a store at ``path`` from ``layout``, or open the one there if it was made by the same recipe.

    Refuses (StoreError) a path that holds anything else: another catalog, version or recipe, or
    something that is not a datagen store. The template is written beside the target and renamed
    into place, so a crash during creation leaves no half-made store.
    """
    path = Path(path)
    if path.exists():
        store = Store.open(path)
        mine = (attrs["catalog_name"], attrs["catalog_version"], attrs["recipe_sha256"])
        theirs = (store.attrs.get("catalog_name"), store.attrs.get("catalog_version"),
                  store.attrs.get("recipe_sha256"))
        if mine != theirs:
            state = "complete" if store.complete else "incomplete"
            raise StoreError(
                f"{path} is a {state} store of catalog {theirs[0]} {theirs[1]} (recipe {str(theirs[2])[:12]}), "
                f"not {mine[0]} {mine[1]} (recipe {mine[2][:12]}); refusing to write into it, choose another --out")
        if store.layout != layout:
            raise StoreError(f"{path} was made by the same recipe but has another layout "
                             f"(a different datagen version?); choose another --out")
        return store
    if not path.parent.exists():
        raise StoreError(f"--out {path}: the folder {path.parent} does not exist")
    tmp = path.parent / f".{path.name}.creating-{uuid.uuid4().hex[:8]}"
    try:
        _write_template(tmp, layout, attrs)
        os.rename(tmp, path)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return Store.open(path)


# ----------------------------------------------------------------------------------------- the store
_FLAT_KEYS = frozenset(f"atoms/{v.name}" for v in FLAT_ATOM_VARIABLES)


def _digest(items) -> bytes:
    """sha256 over (name, array) pairs in the given order: name, shape, dtype and values."""
    h = hashlib.sha256()
    for name, values in items:
        values = np.asarray(values)
        h.update(name.encode() + b"\0" + str(values.shape).encode())
        if values.dtype.kind in "OTU":
            h.update("\0".join(map(str, values.ravel())).encode())
        else:
            h.update(values.dtype.str.encode() + np.ascontiguousarray(values).tobytes())
    return h.digest()


def _variable_from_zarr(name: str, arr) -> Variable:
    dtype = "str" if arr.dtype.kind in "OTU" else np.dtype(arr.dtype).name
    a = dict(arr.attrs)
    extra = {k: v for k, v in a.items() if k not in ("units", "long_name", "_FillValue", "coordinates")}
    return Variable(name, tuple(arr.metadata.dimension_names), dtype, a.get("units", "1"),
                    a.get("long_name", name), extra)


class Store:
    """An existing dataset store: its layout, state, chunk writer, checksums and readers."""

    def __init__(self, path: str | Path, root: zarr.Group, zstore=None):
        self.path = path
        self.root = root
        self.zstore = path if zstore is None else zstore
        self.attrs = dict(root.attrs)

    @classmethod
    def open(cls, path: str | Path, mode: str = "r+") -> "Store":
        """The store at ``path``: a folder, a published zip file or such a file at an http(s) URL
        (``datagen.store.location``); the last two only for reading (``mode="r"``)."""
        path = normalize(path)
        zstore = zarr_store(path, mode)
        try:
            root = zarr.open_group(zstore, mode=mode, zarr_format=3)
        except Exception as err:  # zarr raises several types for unreadable metadata
            raise StoreError(f"{path} is not a readable zarr v3 store ({type(err).__name__}: {err})") from err
        if "datagen_store_schema" not in root.attrs:
            raise StoreError(f"{path} is not a datagen dataset store (no 'datagen_store_schema' attribute)")
        if root.attrs["datagen_store_schema"] != STORE_SCHEMA_VERSION:
            raise StoreError(f"{path} has store schema {root.attrs['datagen_store_schema']}, "
                             f"this datagen reads {STORE_SCHEMA_VERSION}")
        for member in ("samples", "atoms", "checksums"):
            if member not in root:
                raise StoreError(f"{path} is corrupt: '{member}' is missing")
        return cls(path, root, zstore)

    # -- description
    @property
    def complete(self) -> bool:
        return bool(self.attrs.get("complete"))

    @functools.cached_property
    def layout(self) -> Layout:
        samples = self.root["samples"]
        core = {v.name for v in core_variables()}
        prov, dim_sizes = [], {}
        for name, arr in sorted(samples.arrays()):
            if name == "sample" or name in core:
                continue
            var = _variable_from_zarr(name, arr)
            prov.append(var)
            for d, n in zip(var.dims[1:], arr.shape[1:]):
                if d not in ("y", "x"):  # the image's dims come from image_shape
                    dim_sizes[d] = n
        order = {n: i for i, n in enumerate(json.loads(self.attrs.get("provenance_order", "[]")))}
        prov.sort(key=lambda v: order.get(v.name, len(order)))
        return Layout(int(self.attrs["n_samples"]), int(self.attrs["chunk_size"]),
                      tuple(self.attrs["image_shape"]), tuple(prov), dim_sizes,
                      int(self.attrs["atoms_per_sample"]), bool(self.attrs.get("mixed_labels", False)))

    @property
    def recipe(self) -> dict:
        return json.loads(self.attrs["recipe"])

    def checksums(self) -> np.ndarray:
        """(n_chunks, 32) uint8; a row of zeros marks a chunk not (completely) written."""
        return np.asarray(self.root["checksums"][:])

    def written_chunks(self) -> np.ndarray:
        return np.flatnonzero(self.checksums().any(axis=1))

    def missing_chunks(self) -> list[int]:
        written = set(self.written_chunks().tolist())
        return [c for c in range(int(self.attrs["n_chunks"])) if c not in written]

    # -- writing
    def write_chunk(self, chunk: int, samples: Mapping[str, np.ndarray],
                    atoms: Sequence | None = None) -> str:
        """Write sample chunk ``chunk`` (whole zarr chunks only), then its checksum; return the hex digest.

        ``samples`` maps every variable of the schema to an array whose first axis is the chunk's
        samples; ``atoms`` is one ``ase.Atoms`` (with ``arrays["part"]``) per sample, or None for
        generators without atomic models. Raises StoreError naming the chunk and variable on a mismatch.
        The region is written straight into the arrays of the xarray-made template (no encoding is
        involved, so the bytes are those xarray would write); the checksum is taken from the arrays
        written, and every chunk is read back and re-checked before the store is marked complete.
        """
        if self.complete:
            raise StoreError(f"{self.path} is complete and immutable; chunk {chunk} not written")
        layout = self.layout
        sl = layout.chunk_slice(chunk)
        n = sl.stop - sl.start
        sizes = layout.sizes()
        items = {}
        for var in layout.variables:
            if var.name not in samples:
                raise StoreError(f"chunk {chunk}: variable {var.name!r} missing from the generated data")
            arr = np.asarray(samples[var.name], dtype=object if var.dtype == "str" else var.dtype)
            shape = (n,) + tuple(sizes[d] for d in var.dims[1:])
            if arr.shape != shape:
                raise StoreError(f"chunk {chunk}: variable {var.name!r} has shape {arr.shape}, expected {shape}")
            items[f"samples/{var.name}"] = arr
        extra = set(samples) - {v.name for v in layout.variables}
        if extra:
            raise StoreError(f"chunk {chunk}: variables {sorted(extra)} are not in the store's schema")
        items.update(self._atom_items(layout, chunk, sl, atoms))
        for key, arr in items.items():
            region = self._region(layout, chunk, key)
            self.root[key][region] = arr
        digest = _digest(sorted(items.items()))
        self.root["checksums"][chunk] = np.frombuffer(digest, dtype=np.uint8)
        return digest.hex()

    def _region(self, layout: Layout, chunk: int, key: str) -> slice:
        if key in _FLAT_KEYS:
            return slice(chunk * layout.atom_block, (chunk + 1) * layout.atom_block)
        return layout.chunk_slice(chunk)

    def _atom_items(self, layout: Layout, chunk: int, sl: slice, atoms: Sequence | None) -> dict:
        n = sl.stop - sl.start
        counts = np.zeros(n, "int32")
        cells = np.zeros((n, 3), "float32")
        if atoms is not None:
            if len(atoms) != n:
                raise StoreError(f"chunk {chunk}: {len(atoms)} atomic models for {n} samples")
            counts[:] = [len(a) for a in atoms]
            cells[:] = [np.diag(a.cell.array) if a.cell.rank else np.zeros(3) for a in atoms]
            if counts.max(initial=0) > layout.atoms_per_sample:
                worst = int(np.argmax(counts)) + sl.start
                raise StoreError(f"chunk {chunk}: sample {worst} has {counts.max()} atoms, "
                                 f"more than the store's capacity of {layout.atoms_per_sample} per sample")
        base = chunk * layout.atom_block
        starts = base + np.concatenate([[0], np.cumsum(counts)[:-1]]).astype("int64")
        items = {"atoms/atom_start": starts, "atoms/n_atoms": counts, "atoms/cell": cells}
        if not layout.atoms_per_sample:
            return items
        block, total = layout.atom_block, int(counts.sum())
        xyz = np.zeros((block, 3), "float32")
        z = np.zeros(block, "uint8")
        part = np.zeros(block, "int8")
        if total:
            xyz[:total] = np.concatenate([a.positions for a in atoms])
            z[:total] = np.concatenate([a.numbers for a in atoms])
            part[:total] = np.concatenate([a.arrays.get("part", np.zeros(len(a), "int8")) for a in atoms])
        items.update({"atoms/xyz": xyz, "atoms/Z": z, "atoms/part": part})
        return items

    # -- checking
    def _keys(self, layout: Layout) -> list[str]:
        keys = [f"samples/{v.name}" for v in layout.variables] + ["atoms/atom_start", "atoms/n_atoms", "atoms/cell"]
        if layout.atoms_per_sample:
            keys += sorted(_FLAT_KEYS)
        return sorted(keys)

    def chunk_digest(self, chunk: int) -> bytes:
        """sha256 of everything stored for sample chunk ``chunk``, read back from disk."""
        layout = self.layout
        return _digest((key, np.asarray(self.root[key][self._region(layout, chunk, key)]))
                       for key in self._keys(layout))

    def repair_hint(self) -> str:
        """The command that rewrites bad chunks of this store (a published copy is downloaded again)."""
        if is_archive(self.path):
            return "the published copy is damaged: download it again and check it against its SHA256SUMS"
        return f"`datagen generate {self.attrs.get('catalog_name', 'ENTRY')} --out {self.path}` rewrites it"

    def check_chunk(self, chunk: int) -> None:
        """Read sample chunk ``chunk`` back and compare it with its stored checksum; StoreError naming the
        chunk and the repair when it is unwritten, missing from disk, unreadable or corrupt."""
        stored = self.checksums()[chunk]
        if not stored.any():
            raise StoreError(f"{self.path}: chunk {chunk} is not written; {self.repair_hint()}")
        try:
            ok = self.chunk_digest(chunk) == stored.tobytes()
        except Exception as err:  # a truncated or foreign chunk file fails to decode in many ways
            raise StoreError(f"{self.path}: chunk {chunk} is unreadable ({type(err).__name__}); "
                             f"{self.repair_hint()}") from None
        if not ok:
            raise StoreError(f"{self.path}: chunk {chunk} is corrupt (checksum mismatch); {self.repair_hint()}")

    def content_sha256(self) -> str:
        """sha256 over the stored per-chunk checksums, in chunk order: the dataset's content hash."""
        return hashlib.sha256(self.checksums().tobytes()).hexdigest()

    def verify(self, chunks: Sequence[int] | None = None) -> "VerifyReport":
        """Recompute the checksums of ``chunks`` (default: all) and compare with the stored ones."""
        stored = self.checksums()
        chunks = range(len(stored)) if chunks is None else chunks
        missing, bad = [], []
        for c in chunks:
            if not stored[c].any():
                missing.append(c)
                continue
            try:
                ok = self.chunk_digest(c) == stored[c].tobytes()
                reason = "checksum mismatch"
            except Exception as err:  # a corrupt chunk can fail to decode in many ways
                ok, reason = False, f"unreadable ({type(err).__name__}: {err})"
            if not ok:
                bad.append((c, reason))
            else:  # a chunk just verified is not verified again when a reader of this process reads it
                _VERIFIED.add((str(self.path), c, stored[c].tobytes()))
        return VerifyReport(len(stored), missing, bad, self.complete)

    def clear_chunk(self, chunk: int) -> None:
        """Mark chunk ``chunk`` as not written (its data is rewritten by the next generation)."""
        if self.complete:
            raise StoreError(f"{self.path} is complete and immutable")
        self.root["checksums"][chunk] = np.zeros(32, np.uint8)

    def reopen_for_repair(self, reason: str) -> None:
        """Take the ``complete`` mark off a store whose chunks failed their checksums, so that a generation
        can rewrite them (the recipe fixes their content); the reason goes into the history."""
        now = datetime.now(timezone.utc).replace(microsecond=0).isoformat()
        self.update_attrs(complete=False, history=self.attrs.get("history", "") + f"\n{now} reopened for repair: {reason}")

    def mark_complete(self, history: str = "") -> str:
        """Verify every chunk, then mark the store complete and record its content hash."""
        report = self.verify()
        if not report.ok_all_written:
            raise StoreError(f"{self.path}: cannot mark complete: {report.summary()}")
        content = self.content_sha256()
        now = datetime.now(timezone.utc).replace(microsecond=0).isoformat()
        hist = self.attrs.get("history", "") + f"\n{now} completed" + (f": {history}" if history else "")
        self.update_attrs(complete=True, content_sha256=content, history=hist)
        return content

    def append_history(self, line: str) -> None:
        now = datetime.now(timezone.utc).replace(microsecond=0).isoformat()
        self.update_attrs(history=self.attrs.get("history", "") + f"\n{now} {line}")

    def update_attrs(self, **values) -> None:
        """Write root attributes to the store and keep ``self.attrs`` in step with them."""
        self.root.attrs.update(values)
        self.attrs = dict(self.root.attrs)


@dataclass(frozen=True)
class VerifyReport:
    n_chunks: int
    missing: list[int]
    bad: list[tuple[int, str]]
    complete: bool

    @property
    def ok_all_written(self) -> bool:
        return not self.missing and not self.bad

    @property
    def ok(self) -> bool:
        return self.ok_all_written and self.complete

    def summary(self) -> str:
        if self.bad:
            c, reason = self.bad[0]
            return f"chunk {c} is corrupt ({reason}); {len(self.bad)} bad of {self.n_chunks} chunks"
        if self.missing:
            return (f"{len(self.missing)} of {self.n_chunks} chunks not written (first: chunk "
                    f"{self.missing[0]}); rerun the generation to resume")
        if not self.complete:
            return f"all {self.n_chunks} chunks verified but the store is not marked complete"
        return f"all {self.n_chunks} chunks verified"


# ----------------------------------------------------------------------------------------- readers
@functools.lru_cache(maxsize=16)
def _reader(path: str, checksums: bytes) -> Store:
    """One open store per path and content (reopened when its checksums change)."""
    return Store.open(path, mode="r")


_VERIFIED: set[tuple[str, int, bytes]] = set()
_VERIFIED_LOCK = threading.Lock()


def _read_verified(path: str, checksums: bytes, chunk: int, key: str) -> np.ndarray:
    """The stored values of ``key`` in sample chunk ``chunk``; the chunk is checked against its checksum
    the first time any of its variables is read in this process."""
    store = _reader(path, checksums)
    tag = (path, chunk, checksums[32 * chunk:32 * chunk + 32])
    if tag not in _VERIFIED:
        with _VERIFIED_LOCK:
            if tag not in _VERIFIED:
                store.check_chunk(chunk)
                _VERIFIED.add(tag)
    return np.asarray(store.root[key][store._region(store.layout, chunk, key)])


def _verified(ds: xr.Dataset, store: Store, group: str) -> xr.Dataset:
    """``ds`` (lazily opened by xarray) with every stored array read through :func:`_read_verified`."""
    layout = store.layout
    path, checksums = str(store.path), store.checksums().tobytes()
    for name in [n for n in ds.variables if n not in ds.dims or ds[n].ndim > 1]:
        key = f"{group}/{name}"
        var = ds[name]
        dtype = np.dtype(object) if var.dtype.kind in "OTU" else var.dtype
        lead = [store._region(layout, c, key) for c in range(layout.n_chunks)]
        chunks = (tuple(sl.stop - sl.start for sl in lead),) + tuple((n,) for n in var.shape[1:])

        def read(block_info=None, key=key, dtype=dtype):
            values = _read_verified(path, checksums, block_info[None]["chunk-location"][0], key)
            return values.astype(dtype) if dtype != object else np.asarray(values.tolist(), dtype=object)

        data = da.map_blocks(read, chunks=chunks, dtype=dtype, meta=np.empty((0,) * var.ndim, dtype))
        ds[name] = var.copy(data=data)
    return ds


def open_samples(path: str | Path, *, allow_incomplete: bool = False) -> xr.Dataset:
    """Lazy xarray Dataset of the `samples` group, with the root attributes; refuses incomplete stores.

    Every chunk is checked against its stored checksum the first time it is read (once per chunk and
    process), so a missing, truncated or altered chunk stops the read with a StoreError naming it and
    the command that repairs it: no fill value is ever served as data. (An incomplete store, opened
    with ``allow_incomplete``, is read as it lies, unwritten chunks as fill values.)
    """
    store = Store.open(path, mode="r")
    if not (store.complete or allow_incomplete):
        raise StoreError(f"{path} is incomplete ({store.verify().summary()}); pass allow_incomplete=True to read it anyway")
    ds = xr.open_zarr(store.zstore, group="samples", **_OPEN)
    if store.complete:
        ds = _verified(ds, store, "samples")
    ds.attrs = {**store.attrs, **ds.attrs}
    return ds


def open_atoms(path: str | Path) -> xr.Dataset:
    """Lazy xarray Dataset of the `atoms` group (CSR: atom_start and n_atoms index xyz, Z, part), checked
    chunk by chunk as :func:`open_samples` is."""
    store = Store.open(path, mode="r")
    ds = xr.open_zarr(store.zstore, group="atoms", **_OPEN)
    return _verified(ds, store, "atoms") if store.complete else ds


def read_atoms(path: str | Path, index: int):
    """The atomic model of sample ``index`` as ``ase.Atoms`` with ``arrays['part']`` (0 support, 1 particle)."""
    ds = open_atoms(path)
    if not 0 <= index < ds.sizes["sample"]:
        raise StoreError(f"sample {index} out of range 0..{ds.sizes['sample'] - 1}")
    start, n = int(ds.atom_start[index]), int(ds.n_atoms[index])
    cell = ds.cell[index].values.astype(float)
    if n == 0:
        return Atoms(cell=cell, pbc=(True, True, False))
    sl = slice(start, start + n)
    atoms = Atoms(numbers=ds.Z[sl].values, positions=ds.xyz[sl].values.astype(float), cell=cell,
                  pbc=(True, True, False))
    atoms.arrays["part"] = ds.part[sl].values
    return atoms
