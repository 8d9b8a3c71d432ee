"""`classifier train`, `info` and `evaluate` on the command line, and their one-line errors."""

from __future__ import annotations

from typer.testing import CliRunner

from classifier.cli import app

runner = CliRunner()


# --- command line --------------------------------------------------------------------------------------

def test_cli_train_info_evaluate_and_one_line_errors(pattern_store, tmp_path):
    model = tmp_path / "m.pt"
    r = runner.invoke(app, ["train", str(pattern_store), "--out", str(model), "--size", "32", "--epochs", "1",
                            "--batch-size", "8", "--device", "cpu"])
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["info", str(model)])
    assert r.exit_code == 0 and "resnet18" in r.output and "clf 1.0.0" in r.output
    r = runner.invoke(app, ["evaluate", str(model), str(pattern_store), "--out", str(tmp_path / "ev")])
    assert r.exit_code == 0 and "accuracy" in r.output and (tmp_path / "ev" / "confusion.png").exists()
    before = model.read_bytes()
    report = (tmp_path / "ev" / "report.json").read_bytes()
    for args, message in [
        (["evaluate", str(model), str(pattern_store), "--split", "val", "--out", str(tmp_path / "ev")],
         "report.json exists; pass --force"),
        (["train", str(pattern_store), "--out", str(model)], "m.pt exists; pass --force"),
        (["train", str(pattern_store), "--out", str(tmp_path / "n.pt"), "--arch", "vgg"], "unknown architecture 'vgg'"),
        (["train", str(tmp_path / "none.zarr"), "--out", str(tmp_path / "n.pt")], "no dataset store at"),
        (["evaluate", str(tmp_path / "none.pt"), str(pattern_store)], "none.pt: model file not found"),
        (["evaluate", str(model), str(pattern_store), "--threshold", "1.5"], "threshold: confidence threshold must be in [0, 1)"),
    ]:
        r = runner.invoke(app, args)
        assert r.exit_code == 1 and message in r.output.replace("\n", " ") and "Traceback" not in r.output, r.output
    assert model.read_bytes() == before and not (tmp_path / "n.pt").exists()
    assert (tmp_path / "ev" / "report.json").read_bytes() == report
