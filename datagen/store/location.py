"""Where a dataset store lies, and the zarr store object that reads it there.

A store is read from any of:

- a folder (the layout ``datagen generate`` writes; the only kind that can be written);
- a zip file of that folder (zarr v3's ZipStore layout: the folder's files at the archive's root,
  uncompressed; what ``datagen publish`` writes);
- such a zip file at an http(s) URL, read lazily with range requests through fsspec (only the
  archive's directory and the chunks read are downloaded).

The location stays a string where it is a URL (``pathlib`` would fold its ``//``), a ``Path`` otherwise.
"""

from __future__ import annotations

import functools
import threading
import zipfile
from pathlib import Path

import zarr

from datagen.errors import StoreError

#: Bytes fetched per HTTP range request (fsspec's block): small enough that reading one sample chunk
#: of a published dataset does not download the rest.
HTTP_BLOCK_BYTES = 1 << 20


def is_url(location: str | Path) -> bool:
    return isinstance(location, str) and location.startswith(("http://", "https://"))


def normalize(location: str | Path) -> str | Path:
    """A URL as given, anything else as a ``Path``."""
    return location if is_url(location) else Path(location)


def is_archive(location: str | Path) -> bool:
    """True for a published (zip) store, local or remote: read-only, repaired by downloading it again."""
    return is_url(location) or Path(location).is_file()


def zarr_store(location: str | Path, mode: str):
    """What ``zarr.open_group`` and ``xarray.open_zarr`` open for ``location`` (see the module); StoreError
    naming the location when it is absent, not a store, or read-only and ``mode`` asks to write."""
    if is_url(location):
        if mode != "r":
            raise StoreError(f"{location}: a store at a URL is read-only")
        if not location.split("?")[0].endswith(".zip"):
            raise StoreError(f"{location}: only a published store (a .zip file, `datagen publish`) can be read "
                             f"over http(s)")
        try:
            return _remote(location)
        except ImportError as err:
            raise StoreError(f"{location}: reading over http(s) needs fsspec's http support "
                             f"(pip install 'fsspec[http]'): {err}") from None
        except Exception as err:  # connection refused, 404, not a zip: many exception types
            raise StoreError(f"{location}: cannot open the zip file there ({type(err).__name__}: {err})") from None
    path = Path(location)
    if not path.exists():
        raise StoreError(f"no dataset store at {path}")
    if path.is_dir():
        return path
    if not zipfile.is_zipfile(path):
        raise StoreError(f"{path} is neither a store folder nor a zip file of one")
    if mode != "r":
        raise StoreError(f"{path} is a published (zip) store and read-only; generate into a folder")
    return zarr.storage.ZipStore(path, mode="r")


@functools.lru_cache(maxsize=8)
def _remote(url: str) -> "RemoteZipStore":
    """One open remote archive per URL and process: its directory and cached blocks are fetched once
    (a published file does not change; every chunk read is still checked against its checksum)."""
    return RemoteZipStore(url)


class RemoteZipStore(zarr.storage.ZipStore):
    """zarr's ZipStore on a zip file at an http(s) URL: the archive is read through an fsspec HTTP file
    (range requests of ``HTTP_BLOCK_BYTES``, the last blocks cached), so only its directory and the
    members read are fetched.
    (zarr's FsspecStore on a ``zip::`` URL does not list nested groups; ZipStore lists from the archive.)"""

    def __init__(self, url: str):
        self.url = url
        super().__init__(Path(url.split("://", 1)[1]), mode="r")
        self._sync_open()

    def _sync_open(self) -> None:
        import fsspec  # here: only a URL needs it

        if self._is_open:
            raise ValueError("store is already open")
        self._lock = threading.RLock()
        self._file = fsspec.filesystem("http").open(self.url, "rb", block_size=HTTP_BLOCK_BYTES,
                                                    cache_type="blockcache")
        self._zf = zipfile.ZipFile(self._file, mode="r")
        self._is_open = True

    def __getstate__(self):
        state = super().__getstate__()
        state.pop("_file", None)
        return state

    def __repr__(self) -> str:
        return f"RemoteZipStore({self.url!r})"
