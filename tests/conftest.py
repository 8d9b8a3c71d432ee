"""Shared fixtures: tiny recipes that generate in well under a second, the compute devices every
device-dependent test runs on, and the paths of the shared data."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch
import yaml

from datagen.recipe import parse_recipe

#: ../shared/data beside the project (tests that need it skip with a message where it is absent).
SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
#: Stand-ins for Dr Probe's programs (tests/simulate/drprobe_standins).
DRPROBE_STANDINS = Path(__file__).resolve().parent / "simulate" / "drprobe_standins"
#: Dr Probe's real programs, as `make drprobe` builds them (tests that need them skip where they are absent).
DRPROBE_BUILT = Path(__file__).resolve().parents[1] / ".drprobe" / "bin"
#: The devices a physics test runs on: the CPU always, CUDA where there is one.
DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA"))]

TINY = {
    "format": 1,
    "name": "tiny",
    "version": "1.0.0",
    "description": "tiny pattern recipe for tests",
    "generator": "pattern",
    "seed": 7,
    "chunk_size": 4,
    "classes": {"amorphous": 6, "monocrystalline": 5, "polycrystalline": 7},
    "pattern": {"image_size": 48, "diameter_px": [20, 40]},
}


#: A tiny field recipe: a few 72-80 px fields of particles on a thin film (seconds to simulate).
FIELD_TINY = {
    "format": 1, "name": "fieldtiny", "version": "1.0.0", "description": "tiny fields",
    "generator": "field", "seed": 5, "chunk_size": 2, "fields": 4,
    "field": {
        "image_px": 72, "guard_nm": 1.0,
        "particle": {"diameter_nm": [1.0, 1.6],
                     "kinds": {"amorphous": {"amorphous": 1}, "monocrystalline": {"sphere": 1},
                               "polycrystalline": {"stitched": 1}}},
        "particles": {"per_100nm2": [20.0, 30.0], "touching_probability": 0.5},
        "support": {"thickness_nm": [0.5, 1.0]},
        "recording": {"pixel_size_nm": [0.06, 0.08], "eight_bit_probability": 0.5, "blur_probability": 0.5},
        "numerics": {"sampling_A": 0.2},
    },
}


@pytest.fixture
def tiny_dict():
    return copy.deepcopy(TINY)


@pytest.fixture
def tiny_recipe(tiny_dict):
    return parse_recipe(tiny_dict)


@pytest.fixture
def write_recipe(tmp_path):
    """Write a recipe dict to ``tmp_path/<name>.yaml`` and return the path."""

    def write(data: dict, name: str | None = None):
        path = tmp_path / f"{name or data['name']}.yaml"
        path.write_text(yaml.safe_dump(data))
        return path

    return write


@pytest.fixture(scope="module")
def one_torch_thread():
    """Small tensors: one intra-op thread, so OpenMP spin-waits on a busy shared machine cannot stall them."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(params=DEVICES)
def device(request) -> str:
    """Each test that takes ``device`` runs once per entry of ``DEVICES``."""
    return request.param


def _range_handler(directory: str, counter: dict):
    """http.server's handler for ``directory`` with HTTP range requests (fsspec reads zip files by them),
    counting the bytes it sends in ``counter["bytes"]``."""
    import os
    import re
    from http.server import SimpleHTTPRequestHandler

    class Handler(SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, directory=directory, **kwargs)

        def send_head(self):
            wanted = self.headers.get("Range")
            path = self.translate_path(self.path)
            self._length = None
            if not wanted or not os.path.isfile(path):
                return super().send_head()
            size = os.path.getsize(path)
            first, last = re.fullmatch(r"bytes=(\d*)-(\d*)", wanted.strip()).groups()
            start, end = (size - int(last), size - 1) if first == "" else (int(first), min(int(last or size - 1), size - 1))
            fh = open(path, "rb")
            fh.seek(start)
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
            self.send_header("Content-Length", str(end - start + 1))
            self.send_header("Accept-Ranges", "bytes")
            self.end_headers()
            self._length = end - start + 1
            return fh

        def copyfile(self, source, outputfile):
            data = source.read() if self._length is None else source.read(self._length)
            counter["bytes"] += len(data)
            outputfile.write(data)

        def log_message(self, *args):
            pass

    return Handler


@pytest.fixture
def http_folder():
    """Serve a folder on 127.0.0.1 (with range requests): ``serve(folder)`` returns its base URL and a dict
    whose "bytes" counts what was sent."""
    import threading
    from http.server import ThreadingHTTPServer

    servers = []

    def serve(folder):
        counter = {"bytes": 0}
        server = ThreadingHTTPServer(("127.0.0.1", 0), _range_handler(str(folder), counter))
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}", counter

    yield serve
    for server in servers:
        server.shutdown()
        server.server_close()


@pytest.fixture(autouse=True)
def _no_default_drprobe(monkeypatch, tmp_path_factory):
    """No test finds Dr Probe's built programs by default: those that run the real ones ask for them
    (``drprobe_bin``); the others see stand-ins or nothing, as they arrange."""
    from datagen.simulate.backends import drprobe

    monkeypatch.setattr(drprobe, "BUILT_BIN", tmp_path_factory.getbasetemp() / "no-drprobe-build")


@pytest.fixture
def drprobe_bin() -> Path:
    """The folder of Dr Probe's real programs (`make drprobe`, or $DATAGEN_TEST_DRPROBE_BIN)."""
    import os

    folder = Path(os.environ.get("DATAGEN_TEST_DRPROBE_BIN") or DRPROBE_BUILT)
    if not all((folder / name).is_file() for name in ("celslc", "msa", "wavimg")):
        pytest.skip(f"Dr Probe's programs are not built at {folder}: `make drprobe` builds them from "
                    f"../shared/vendor/drprobe_clt")
    return folder
