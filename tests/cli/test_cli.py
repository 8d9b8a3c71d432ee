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
    assert re.fullmatch(r"error: \S+: chunk 1 is corrupt \(.*\); 1 bad of 5 chunks; `datagen generate tiny --out \S+` rewrites it\n", r.output.replace("\n", " ", r.output.count("\n") - 1))
    # info --check says so too, and exits non-zero without reading the corrupt data
    r = _run("info", out, "--check")
    assert r.exit_code == 1 and "Traceback" not in r.output
    assert "error:" in r.output and "chunk 1 is corrupt" in r.output.replace("\n", " ")
    r = _run("info", out, "--check", "--json")
    assert r.exit_code == 1 and '"corrupt_chunks": [' in r.output
    assert _run("info", out).exit_code == 0  # without --check nothing is recomputed


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
    from datagen.run import generate

    generate(tiny_recipe, tmp_path / "d.zarr", workers=0)
    r = _run("preview", tmp_path / "d.zarr", "--out", tmp_path / "grid.jpg")
    assert r.exit_code == 1 and "give a .png file name" in r.output


def test_recipe_show_is_a_template_that_round_trips(tmp_path):
    """`recipe show` prints the entry with every default filled in; saved under a new name it is a valid
    recipe with the same content (same hash but for the name)."""
    import yaml

    from datagen.recipe import load_recipe, load_recipe_file

    r = _run("recipe", "show", "simulation-c-v1")
    assert r.exit_code == 0, r.output
    data = yaml.safe_load(r.output)
    original = load_recipe("simulation-c-v1")
    assert data["reference_content_sha256"] == original.reference_content_sha256
    assert data["simulation"]["numerics"]["parametrization"] == "lobato"  # a default, not in the file
    data["name"] = "my-entry"
    (tmp_path / "my-entry.yaml").write_text(yaml.safe_dump(data))
    copy = load_recipe_file(tmp_path / "my-entry.yaml")
    assert copy.to_json_dict() == {**original.to_json_dict(), "name": "my-entry"}


def test_recipe_check_describes_without_generating(tmp_path, tiny_dict, write_recipe):
    import json

    from datagen.recipe import load_recipe
    from datagen.generators.simulated import image_shape

    r = _run("recipe", "check", "simulation-c-v1", "--json")
    assert r.exit_code == 0, r.output
    d = json.loads(r.output)
    assert d["samples"] == 3565 and d["chunks"] == 223 and d["simulation_grid"] == [1200, 1200]
    assert d["image_shape"] == list(image_shape(load_recipe("simulation-c-v1").simulation)) == [240, 240]
    assert d["slices"] == 41 and abs(d["wavelength_pm"] - 1.9687) < 1e-4
    # a 30 mrad aperture at 300 kV passes |k| <= 1.52/Å (index 92 over 60 Å): 4·92+1 = 369 -> 375, a fast FFT length
    assert d["image_formation_grid"] == [375, 375]
    r = _run("recipe", "check", write_recipe(tiny_dict), "--time", "2")
    assert r.exit_code == 0 and "18 samples" in r.output and "48x48" in r.output
    assert re.search(r"[\d.e-]+ s per sample here \(mean of 2\): about \d+:\d\d:\d\d for all 18", r.output), r.output
    r = _run("recipe", "check", write_recipe(tiny_dict), "--time", "18")
    assert r.exit_code == 1 and "--time: between 1 and 17 samples" in r.output
    bad = write_recipe({**tiny_dict, "chunk_size": 0})
    r = _run("recipe", "check", bad)
    assert r.exit_code == 1 and "chunk_size" in r.output and r.output.count("\n") == 1
    assert not list(tmp_path.glob("*.zarr"))


def test_recipe_schema_is_json_schema_of_every_generator():
    import json

    r = _run("recipe", "schema")
    assert r.exit_code == 0
    schema = json.loads(r.output)
    assert set(schema["discriminator"]["mapping"]) == {"pattern", "simulation", "field"}
    optics = schema["$defs"]["OpticsParams"]
    assert optics["additionalProperties"] is False and optics["properties"]["voltage_kv"]["minimum"] == 10
