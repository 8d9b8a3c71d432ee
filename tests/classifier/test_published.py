"""The classifier reads a published store (`datagen publish`) from its zip file or over HTTP and scores
it exactly as the store folder it came from."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from classifier.cli import app
from classifier.evaluate import evaluate
from datagen.publish import publish

runner = CliRunner()


def test_evaluate_on_the_zip_and_its_url_matches_the_store(pattern_store, model, tmp_path, http_folder):
    result = publish(pattern_store, tmp_path / "pub", authors=["Jane Doe"])
    base, served = http_folder(result.path)
    url = f"{base}/{result.archive.name}"
    folder = evaluate(model, [pattern_store], split="test", device="cpu")
    for data in (result.archive, url):
        ev = evaluate(model, [data], split="test", device="cpu")
        assert ev.report.summary() == folder.report.summary()
        assert ev.cutouts.sources[0].content_sha256 == folder.cutouts.sources[0].content_sha256
    assert served["bytes"] > 0
    r = runner.invoke(app, ["evaluate", url, "--model", str(model), "--device", "cpu", "--out", str(tmp_path / "ev")])
    assert r.exit_code == 0, r.output
    report = json.loads((tmp_path / "ev" / "report.json").read_text())
    assert report["accuracy"] == folder.report.summary()["accuracy"]
