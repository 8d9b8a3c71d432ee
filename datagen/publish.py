"""Publish a dataset store as a folder ready to upload to a repository (Zenodo, a web server, a data hub).

``publish(PATH, OUT)`` writes::

    OUT/
      NAME.zarr.zip    the store as one zip file (zarr v3 ZipStore layout: the store folder's files at
                       the archive's root, stored uncompressed, metadata first and then sample chunk by
                       sample chunk, with fixed timestamps, so the same store gives the same bytes); readable by plain zarr and xarray, and by
                       every datagen and classifier reader from a path or an http(s) URL
      README.md        the dataset card, with a "Download and load" section (pictures in README_files/)
      samples.csv      one row per sample: index, split, class and every scalar provenance value
      croissant.json   a Croissant 1.1 JSON-LD description (distribution with sha256, record sets of the
                       table's columns and of the image and mask arrays)
      LICENSE          the licence text
      CITATION.cff     how to cite the dataset (Citation File Format 1.2.0)
      SHA256SUMS       the sha256 of every other file (``sha256sum -c SHA256SUMS``)

The store must be complete; the zip is read back and every chunk checked against its checksum before
anything is named done. Everything is written into a temporary folder beside ``OUT`` and renamed into
place, so a failure leaves nothing half made and an existing ``OUT`` is replaced only with ``overwrite``.
"""

from __future__ import annotations

import csv
import hashlib
import json
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import yaml
from rich.progress import Progress

from datagen.errors import DatagenError, refuse_existing
from datagen.files import atomic_folder
from datagen.store import Store, open_samples
from datagen.store.location import is_archive, is_url
from datagen.store.schema import label_names

CROISSANT_VERSION = "http://mlcommons.org/croissant/1.1"
LICENSES = Path(__file__).resolve().parent / "licenses"
#: Fixed member timestamp of the zip (the earliest a zip can hold): the archive depends only on the store.
ZIP_DATE = (1980, 1, 1, 0, 0, 0)
ZIP_MEDIA_TYPE = "application/zip"
ZARR_MEDIA_TYPE = "application/vnd+zarr"

#: JSON-LD context of Croissant 1.1 (as mlcroissant writes it).
CONTEXT = {
    "@language": "en", "@vocab": "https://schema.org/", "sc": "https://schema.org/",
    "cr": "http://mlcommons.org/croissant/", "rai": "http://mlcommons.org/croissant/RAI/",
    "dct": "http://purl.org/dc/terms/", "citeAs": "cr:citeAs", "column": "cr:column",
    "conformsTo": "dct:conformsTo", "data": {"@id": "cr:data", "@type": "@json"},
    "dataType": {"@id": "cr:dataType", "@type": "@vocab"}, "examples": {"@id": "cr:examples", "@type": "@json"},
    "equivalentProperty": "cr:equivalentProperty", "extract": "cr:extract", "field": "cr:field",
    "fileProperty": "cr:fileProperty", "fileObject": "cr:fileObject", "fileSet": "cr:fileSet",
    "format": "cr:format", "includes": "cr:includes", "isLiveDataset": "cr:isLiveDataset",
    "jsonPath": "cr:jsonPath", "key": "cr:key", "md5": "cr:md5", "parentField": "cr:parentField",
    "path": "cr:path", "recordSet": "cr:recordSet", "references": "cr:references", "regex": "cr:regex",
    "repeated": "cr:repeated", "replace": "cr:replace", "samplingRate": "cr:samplingRate",
    "separator": "cr:separator", "source": "cr:source", "subField": "cr:subField", "transform": "cr:transform",
}


@dataclass(frozen=True)
class PublishResult:
    path: Path
    archive: Path
    content_sha256: str
    files: dict[str, str]  # name -> sha256


def sha256_file(path: Path, block: int = 1 << 22) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(block):
            h.update(chunk)
    return h.hexdigest()


def _member_order(name: str) -> tuple:
    """Zip order: all metadata first, then the checksums and the `sample` index (read whole when a store
    is opened), then sample chunk by sample chunk (every
    variable's piece of chunk c together, in key order): a reader over HTTP fetches the metadata in one
    range and each sample chunk in one more."""
    if name.endswith("zarr.json"):
        return (0, 0, name)
    parts = name.split("/")
    if parts[0] == "checksums" or parts[:2] == ["samples", "sample"]:  # read whole on opening
        return (1, 0, name)
    at = 2 if parts[0] in ("samples", "atoms") else 1  # GROUP/VARIABLE/c/i/... or ARRAY/c/i/...
    chunk = int(parts[at + 1]) if len(parts) > at + 1 and parts[at] == "c" else 0
    return (2, chunk, name)


def write_zip(folder: Path, out: Path, *, progress: bool = False) -> Path:
    """The store folder ``folder`` as one uncompressed zip (zarr v3 ZipStore layout) at ``out``;
    the same folder gives the same bytes (sorted members, fixed timestamps and modes)."""
    files = sorted((p for p in folder.rglob("*") if p.is_file()
                    and not any(part.startswith(".") for part in p.relative_to(folder).parts)),
                   key=lambda p: _member_order(p.relative_to(folder).as_posix()))
    with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED, allowZip64=True) as zf, \
            Progress(transient=True, disable=not progress) as bar:
        task = bar.add_task(f"zipping {folder.name}", total=len(files))
        for p in files:
            info = zipfile.ZipInfo(p.relative_to(folder).as_posix(), date_time=ZIP_DATE)
            info.external_attr = 0o644 << 16
            info.create_system = 3  # unix: the same bytes whatever system publishes
            zf.writestr(info, p.read_bytes(), compress_type=zipfile.ZIP_STORED)
            bar.advance(task)
    return out


def _check_archive(archive: Path, content_sha256: str, *, progress: bool = False) -> None:
    """Read every chunk of the zip back and compare it with its checksum; DatagenError on any difference."""
    zipped = Store.open(archive, mode="r")
    n = int(zipped.attrs["n_chunks"])
    with Progress(transient=True, disable=not progress) as bar:
        task = bar.add_task(f"checking {archive.name}", total=n)
        for chunk in range(n):
            report = zipped.verify([chunk])
            if not report.ok:
                raise DatagenError(f"{archive.name}: the zip does not read back as the store ({report.summary()})")
            bar.advance(task)
    if zipped.content_sha256() != content_sha256:
        raise DatagenError(f"{archive.name}: content sha256 {zipped.content_sha256()} is not the store's {content_sha256}")


def _scalar_table(ds) -> tuple[list[str], list[dict]]:
    """Columns and rows of the per-sample table: sample, split, class and every scalar variable."""
    scalars = [v for v in ds.data_vars if ds[v].dims == ("sample",) and v not in ("label", "split")]
    names = label_names(ds["label"])
    table = ds[["label", "split", *scalars]].compute()
    cols = {"sample": np.arange(ds.sizes["sample"]), "split": table["split"].values.astype(str),
            "class": np.array([names.get(int(v), str(int(v))) for v in table["label"].values]),
            **{v: table[v].values for v in scalars}}
    # str() of a numpy scalar is its shortest exact form (float32 values are not widened to 17 digits)
    rows = [{k: str(col[i]) for k, col in cols.items()} for i in range(ds.sizes["sample"])]
    return list(cols), rows


def _data_type(dtype: np.dtype) -> str:
    kind = np.dtype(dtype).kind
    return {"f": "sc:Float", "i": "sc:Integer", "u": "sc:Integer", "b": "sc:Boolean"}.get(kind, "sc:Text")


def _licence_text(spdx: str, license_file: Path | None) -> str:
    if license_file is not None:
        if not Path(license_file).is_file():
            raise DatagenError(f"--license-file {license_file}: no such file")
        return Path(license_file).read_text()
    bundled = LICENSES / f"{spdx}.txt"
    if not bundled.is_file():
        have = ", ".join(sorted(p.stem for p in LICENSES.glob("*.txt")))
        raise DatagenError(f"the store's licence {spdx!r} has no bundled text (bundled: {have}); "
                           f"pass --license-file with its full text")
    return bundled.read_text()


def _person(name: str) -> dict:
    """A CITATION.cff author: given and family names split at the last space ("Jane Q. Doe")."""
    given, _, family = name.strip().rpartition(" ")
    return {"given-names": given, "family-names": family} if given else {"name": family}


def _bibtex(key: str, title: str, authors: Sequence[str], year: str, version: str, url: str | None,
            content: str) -> str:
    fields = {"title": "{" + title + "}", "author": " and ".join(authors), "year": year, "version": version,
              "note": f"content sha256 {content}"}
    if url:
        fields["url"] = url
    return "@misc{" + key + ",\n" + ",\n".join(f"  {k} = {{{v}}}" for k, v in fields.items()) + "\n}"


def croissant(attrs: dict, ds, *, authors: Sequence[str], url: str | None, archive: str, archive_sha256: str,
              table: str, table_sha256: str, columns: Sequence[str], cite_as: str, date: str) -> dict:
    """The Croissant 1.1 JSON-LD description of a published store (see the module)."""
    base = (url.rstrip("/") + "/") if url else ""
    units = {v: ds[v].attrs.get("units", "1") for v in columns if v in ds}
    long = {v: ds[v].attrs.get("long_name", v) for v in columns if v in ds}
    described = {"sample": ("sample index in the store (dimension `sample`)", "sc:Integer"),
                 "split": ("train, val or test (assigned by structure, stratified by class)", "sc:Text"),
                 "class": ("the particle's class: amorphous, monocrystalline or polycrystalline", "sc:Text")}
    fields = []
    for col in columns:
        if col in described:
            text, dtype = described[col]
        else:
            text, dtype = f"{long[col]} [{units[col]}]", _data_type(ds[col].dtype)
        fields.append({"@type": "cr:Field", "@id": f"samples/{col}", "name": col, "description": text,
                       "dataType": dtype,
                       "source": {"fileObject": {"@id": "samples-table"}, "extract": {"column": col}}})
    h, w = (int(n) for n in attrs["image_shape"])
    arrays = []
    for name in ("image", "mask", "instances"):
        if name not in ds:
            continue
        var = ds[name]
        arrays.append({"@type": "cr:Field", "@id": f"arrays/{name}", "name": name,
                       "description": f"{var.attrs.get('long_name', name)} [{var.attrs.get('units', '1')}]: zarr v3 "
                                      f"array samples/{name} ({', '.join(var.dims)}) in {archive}",
                       "dataType": _data_type(var.dtype), "cr:isArray": True, "cr:arrayShape": f"{h},{w}",
                       "source": {"fileSet": {"@id": "zarr-samples"}}})
    distribution = [
        {"@type": "cr:FileObject", "@id": "store", "name": archive, "description":
            "the dataset store (zarr v3, ZipStore layout): `datagen.store.open_samples(PATH_OR_URL)`, or "
            "`xarray.open_zarr(zarr.storage.ZipStore(PATH, mode='r'), group='samples', consolidated=False)`",
         "contentUrl": base + archive, "encodingFormat": ZIP_MEDIA_TYPE, "sha256": archive_sha256},
        {"@type": "cr:FileObject", "@id": "samples-table", "name": table,
         "description": "one row per sample: split, class and the scalar values drawn to make it",
         "contentUrl": base + table, "encodingFormat": "text/csv", "sha256": table_sha256},
        {"@type": "cr:FileSet", "@id": "zarr-samples", "name": "zarr-samples",
         "description": "the zarr group `samples` in the store: one array per variable, chunked along `sample`",
         "cr:containedIn": {"@id": "store"}, "encodingFormat": ZARR_MEDIA_TYPE, "includes": "samples/**"},
    ]
    doc = {
        "@context": CONTEXT,
        "@type": "sc:Dataset",
        "name": attrs["catalog_name"],
        "description": f"{attrs['title']}: {attrs['summary']}",
        "conformsTo": CROISSANT_VERSION,
        "citeAs": cite_as,
        "creator": [{"@type": "sc:Person", "name": a} for a in authors],
        "datePublished": date,
        "dateCreated": attrs.get("date_created"),
        "license": f"https://spdx.org/licenses/{attrs['license']}.html",
        "version": attrs["catalog_version"],
        "keywords": ["HRTEM", "nanoparticles", "electron microscopy", "simulation", "image classification"],
        "isBasedOn": attrs.get("references", ""),
        "identifier": f"sha256:{attrs['content_sha256']}",
        "distribution": distribution,
        "recordSet": [
            {"@type": "cr:RecordSet", "@id": "samples", "name": "samples",
             "description": "per-sample labels and provenance (samples.csv)", "key": {"@id": "samples/sample"},
             "field": fields},
            {"@type": "cr:RecordSet", "@id": "arrays", "name": "arrays",
             "description": f"per-sample arrays of {h} x {w} pixels, in the zarr store (read with zarr or xarray)",
             "field": arrays},
        ],
    }
    if url:
        doc["url"] = url
    return doc


def citation(attrs: dict, *, authors: Sequence[str], url: str | None, date: str) -> dict:
    """CITATION.cff (Citation File Format 1.2.0) of a published store."""
    cff = {"cff-version": "1.2.0",
           "message": "If you use this dataset, please cite it as below, and the method it follows (see README.md).",
           "type": "dataset",
           "title": attrs["title"],
           "abstract": attrs["summary"],
           "authors": [_person(a) for a in authors],
           "version": attrs["catalog_version"],
           "date-released": date,
           "license": attrs["license"],
           "identifiers": [{"type": "other", "value": f"sha256:{attrs['content_sha256']}",
                            "description": "content hash of the dataset (`datagen verify`, `datagen info`)"}],
           "keywords": ["HRTEM", "nanoparticles", "electron microscopy", "simulation"]}
    if url:
        cff["url"] = url
    return cff


def _loading(archive: str, url: str | None, entry: str) -> str:
    where = f"{url.rstrip('/')}/{archive}" if url else archive
    return "\n".join([
        "## Download and load",
        "",
        f"The dataset is one file, `{archive}`: a zarr v3 store in a zip archive. Check the download with "
        "`sha256sum -c SHA256SUMS`. Read it without unpacking, from the file or straight from its URL "
        "(only the chunks read are downloaded):",
        "",
        "```python",
        "from datagen.store import open_samples",
        f"ds = open_samples(\"{where}\")  # every chunk checked against its sha256 as it is read",
        "",
        "import xarray, zarr  # or without datagen",
        f"ds = xarray.open_zarr(zarr.storage.ZipStore(\"{archive}\", mode=\"r\"), group=\"samples\", consolidated=False)",
        "```",
        "",
        f"`datagen verify {where} --against {entry}` checks it against the catalog entry's reference build, "
        f"`classifier evaluate {where}` scores a model on its test split. `samples.csv` lists every sample's "
        "split, class and drawn values; `croissant.json` describes the files (Croissant 1.1).",
        "",
    ])


def publish(path: str | Path, out: str | Path, *, authors: Sequence[str], url: str | None = None,
            license_file: Path | None = None, overwrite: bool = False, progress: bool = False) -> PublishResult:
    """Publish the complete store folder ``path`` into the folder ``out`` (see the module)."""
    from datagen.report.card import write_card  # matplotlib: loaded by the commands that need it

    out = Path(out)
    authors = [a.strip() for a in authors if a.strip()]
    if not authors:
        raise DatagenError("--author: name at least one creator of the dataset (CITATION.cff and croissant.json "
                           "credit them)")
    if url is not None and not is_url(url):
        raise DatagenError(f"--url {url}: give the http(s) address the files will be downloaded from")
    if is_archive(path):
        raise DatagenError(f"{path} is already a published (zip) store; publish the store folder")
    if not overwrite:
        refuse_existing([out])
    if not out.parent.exists():
        raise DatagenError(f"--out {out}: the folder {out.parent} does not exist")
    store = Store.open(path, mode="r")
    if not store.complete:
        raise DatagenError(f"{path} is incomplete ({store.verify().summary()}); finish the generation first")
    attrs = store.attrs
    licence = _licence_text(attrs["license"], license_file)
    date = datetime.now(timezone.utc).date().isoformat()
    archive_name = f"{Path(path).name.removesuffix('.zarr')}.zarr.zip"
    with atomic_folder(out) as tmp:
        archive = write_zip(Path(path), tmp / archive_name, progress=progress)
        _check_archive(archive, attrs["content_sha256"], progress=progress)
        ds = open_samples(archive)
        columns, rows = _scalar_table(ds)
        with (tmp / "samples.csv").open("w", newline="") as fh:
            writer = csv.DictWriter(fh, columns)
            writer.writeheader()
            writer.writerows(rows)
        write_card(archive, tmp / "README.md", loading=_loading(archive_name, url, attrs["catalog_name"]))
        (tmp / "LICENSE").write_text(licence)
        (tmp / "CITATION.cff").write_text(yaml.safe_dump(citation(attrs, authors=authors, url=url, date=date),
                                                         sort_keys=False, allow_unicode=True))
        year = date[:4]
        cite = _bibtex(attrs["catalog_name"].replace("-", "_") + "_" + attrs["catalog_version"].replace(".", "_"),
                       attrs["title"], authors, year, attrs["catalog_version"], url, attrs["content_sha256"])
        doc = croissant(attrs, ds, authors=authors, url=url, archive=archive_name,
                        archive_sha256=sha256_file(archive), table="samples.csv",
                        table_sha256=sha256_file(tmp / "samples.csv"), columns=columns, cite_as=cite, date=date)
        (tmp / "croissant.json").write_text(json.dumps(doc, indent=2) + "\n")
        sums = {p.relative_to(tmp).as_posix(): sha256_file(p) for p in sorted(tmp.rglob("*")) if p.is_file()}
        (tmp / "SHA256SUMS").write_text("".join(f"{h}  {name}\n" for name, h in sums.items()))
    return PublishResult(out, out / archive_name, attrs["content_sha256"], sums)
