"""The command line: thin commands, one-line errors, non-zero exits."""

from __future__ import annotations

import re

import pytest
from typer.testing import CliRunner

from classifier.cli import app as classifier_app
from datagen import __version__
from datagen.cli import app

runner = CliRunner()


def _run(*args):
    return runner.invoke(app, [str(a) for a in args])


def test_version_and_help():
    for application, name in [(app, "datagen"), (classifier_app, "classifier")]:
        r = runner.invoke(application, ["--version"])
        assert r.exit_code == 0 and r.output.strip() == f"{name} {__version__}"
        assert runner.invoke(application, ["--help"]).exit_code == 0


def test_catalogs_lists_entries():
    r = _run("catalogs")
    assert r.exit_code == 0
    assert "pattern-demo" in r.output and "pattern-v1" in r.output


def test_generate_info_preview_verify(tmp_path, tiny_dict, write_recipe):
    recipe = write_recipe(tiny_dict)
    out = tmp_path / "d.zarr"
    r = _run("generate", recipe, "--out", out, "--workers", "0")
    assert r.exit_code == 0, r.output
    sha = re.search(r"content sha256: ([0-9a-f]{64})", r.output).group(1)
    # not a terminal: plain progress lines, one per tenth of the work (5 chunks here), ending at the total
    lines = re.findall(r"(\d+)/(\d+) images, [\d.]+ images/s, elapsed \d+:\d\d:\d\d, ETA (\S+)", r.output)
    assert [(int(d), int(t)) for d, t, _ in lines] == [(4, 18), (8, 18), (12, 18), (16, 18), (18, 18)], r.output
    assert lines[-1][0] == lines[-1][1] and lines[-1][2] == "0:00:00"
    r = _run("info", out, "--check")
    assert r.exit_code == 0 and "complete" in r.output and "all 5 chunks verified" in r.output
    assert sha in r.output.replace("\n", "")
    r = _run("preview", out, "--out", tmp_path / "grid.png")
    assert r.exit_code == 0
    assert (tmp_path / "grid.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert _run("verify", out).exit_code == 0
    r = _run("generate", recipe, "--out", out, "--workers", "0")
    assert r.exit_code == 0 and "already complete" in r.output

    # corrupt a chunk: verify fails with one line naming it
    f = out / "samples" / "image" / "c" / "1" / "0" / "0"
    raw = bytearray(f.read_bytes())
    raw[-10] ^= 0x55
    f.write_bytes(bytes(raw))
    r = _run("verify", out)
    assert r.exit_code == 1
    assert re.fullmatch(r"error: \S+: chunk 1 is corrupt \(.*\); 1 bad of 5 chunks\n", r.output.replace("\n", " ", r.output.count("\n") - 1))


@pytest.mark.parametrize("args, message", [
    (["generate", "nope", "--out", "x.zarr"], "unknown catalog entry 'nope'"),
    (["info", "missing.zarr"], "no dataset store at missing.zarr"),
    (["verify", "missing.zarr"], "no dataset store at missing.zarr"),
])
def test_errors_are_one_line(tmp_path, monkeypatch, args, message):
    monkeypatch.chdir(tmp_path)
    r = _run(*args)
    assert r.exit_code == 1
    assert r.output.count("\n") == 1 and message in r.output and "Traceback" not in r.output


def test_bad_recipe_exits_nonzero_without_writing(tmp_path, tiny_dict, write_recipe):
    recipe = write_recipe({**tiny_dict, "seed": "many"})
    r = _run("generate", recipe, "--out", tmp_path / "d.zarr")
    assert r.exit_code == 1 and "seed: Input should be a valid integer" in r.output
    assert not (tmp_path / "d.zarr").exists()


def test_preview_refuses_non_png(tmp_path, tiny_recipe):
    from datagen.generate import generate

    generate(tiny_recipe, tmp_path / "d.zarr", workers=0)
    r = _run("preview", tmp_path / "d.zarr", "--out", tmp_path / "grid.jpg")
    assert r.exit_code == 1 and "give a .png file name" in r.output
