"""A write that fails halfway (a full disk, Ctrl-C, a crash) leaves the previous file intact and no
partial file behind; a set of outputs lands together or not at all."""

from __future__ import annotations

import pytest

from datagen.files import atomic_path, atomic_paths, write_text


def test_a_failed_write_keeps_the_previous_file(tmp_path):
    target = tmp_path / "report.json"
    write_text(target, "old")
    with pytest.raises(OSError, match="No space left"):
        with atomic_path(target) as tmp:
            tmp.write_text("new, half writ")
            raise OSError(28, "No space left on device")
    assert target.read_text() == "old" and sorted(p.name for p in tmp_path.iterdir()) == ["report.json"]
    write_text(target, "new")
    assert target.read_text() == "new"


def test_a_set_of_outputs_lands_together_or_not_at_all(tmp_path):
    paths = {"report": tmp_path / "report.json", "table": tmp_path / "predictions.csv",
             "figure": tmp_path / "confusion.png"}
    with pytest.raises(KeyboardInterrupt):
        with atomic_paths(paths) as tmp:
            tmp["report"].write_text("{}")
            tmp["table"].write_text("a,b")
            raise KeyboardInterrupt  # before the figure
    assert list(tmp_path.iterdir()) == []  # nothing that would block a rerun without --force
    with atomic_paths(paths) as tmp:
        for p in tmp.values():
            p.write_text("x")
        assert tmp["figure"].suffix == ".png"  # writers that choose the format by suffix still can
    assert sorted(p.name for p in tmp_path.iterdir()) == ["confusion.png", "predictions.csv", "report.json"]


def test_evaluation_reports_are_not_left_half_written(tmp_path, monkeypatch):
    """classifier evaluate: when the last output (the figure) fails, neither the report nor the table
    of that run is left, and an earlier report is kept."""
    import numpy as np

    from classifier.data import CutoutSet, DatasetRef, Preprocessing
    from classifier.evaluate import Evaluation, output_paths
    from classifier.metrics import Report
    from classifier.modelfile import ModelInfo

    info = ModelInfo(arch="resnet18", classes=("amorphous", "monocrystalline", "polycrystalline"), mode="three",
                     preprocessing=Preprocessing(32, 0.1), threshold=0.8, datasets=[])
    ref = DatasetRef(path="d.zarr", name="d", version="1.0.0", content_sha256="0" * 64)
    cut = CutoutSet(x=np.zeros((3, 32, 32), np.float32), y=np.array([0, 1, 2]), index=np.arange(3),
                    origin=np.zeros(3, int), classes=info.classes, sources=(ref,))
    report = Report(info.classes, np.array([0, 1, 2]), np.eye(3), 0.8)
    ev = Evaluation(info, cut, report)
    out = tmp_path / "eval"
    first = ev.write(out)
    before = {k: p.read_bytes() for k, p in first.items()}

    def fails(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(Report, "plot", fails)
    with pytest.raises(OSError):
        ev.write(out, overwrite=True)
    assert {k: p.read_bytes() for k, p in output_paths(out).items()} == before
    assert sorted(p.name for p in out.iterdir()) == sorted(p.name for p in first.values())
