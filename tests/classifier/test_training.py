"""Metrics, training end to end (reproducible, interruptible) and evaluation of the model written."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import numpy as np
import pytest
import torch

from classifier.classes import class_names
from classifier.errors import ClassifierError
from classifier.evaluate import evaluate
from classifier.metrics import Report, confusion_matrix
from classifier.modelfile import read_info
from classifier.train import TrainConfig, train
from datagen.store import open_samples


# --- metrics -------------------------------------------------------------------------------------------

def test_confusion_matrix_counts_every_pair():
    rng = np.random.default_rng(0)
    t, p = rng.integers(0, 3, 500), rng.integers(0, 3, 500)
    cm = confusion_matrix(t, p, 3)
    for i in range(3):
        for j in range(3):
            assert cm[i, j] == np.sum((t == i) & (p == j))
    assert cm.sum() == 500


def test_metrics_and_reject_rule_on_a_worked_example():
    # true: a a a m m p ; predicted (confidence): a(.9) a(.7) m(.95) m(.85) a(.6) p(.99)
    classes = ("amorphous", "monocrystalline", "polycrystalline")
    y = np.array([0, 0, 0, 1, 1, 2])
    pred, conf = np.array([0, 0, 1, 1, 0, 2]), np.array([0.9, 0.7, 0.95, 0.85, 0.6, 0.99])
    probs = np.full((6, 3), 0.0)
    probs[np.arange(6), pred] = conf
    for n in range(6):  # the rest of the probability on the next class
        probs[n, (pred[n] + 1) % 3] = 1 - conf[n]
    r = Report(classes, y, probs, threshold=0.8)
    s = r.summary()
    assert s["accuracy"] == pytest.approx(4 / 6)
    assert s["precision"] == pytest.approx({"amorphous": 2 / 3, "monocrystalline": 1 / 2, "polycrystalline": 1.0})
    assert s["recall"] == pytest.approx({"amorphous": 2 / 3, "monocrystalline": 1 / 2, "polycrystalline": 1.0})
    # kept (>= 0.8): samples 0, 2, 3, 5 -> right: 0, 3, 5
    assert s["coverage"] == pytest.approx(4 / 6) and s["accuracy_kept"] == pytest.approx(3 / 4)
    assert r.labels() == ["amorphous", "unknown", "monocrystalline", "monocrystalline", "unknown", "polycrystalline"]
    t, cov, acc = r.coverage_curve(np.array([0.0, 0.8, 0.999]))
    assert cov.tolist() == pytest.approx([1.0, 4 / 6, 0.0]) and acc[0] == pytest.approx(s["accuracy"])
    assert np.isnan(acc[2])


def test_report_plot_writes_a_png(tmp_path):
    rng = np.random.default_rng(1)
    probs = rng.dirichlet([1, 1, 1], 40)
    path = Report(class_names("three"), rng.integers(0, 3, 40), probs, 0.8).plot(tmp_path / "cm.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# --- training end to end -------------------------------------------------------------------------------

@pytest.mark.slow
def test_training_learns_the_pattern_classes_and_evaluation_reads_the_model_back(pattern_store, tmp_path):
    """Dots (amorphous) against sinusoids (crystalline): a two-class ResNet-18 from scratch on 72
    training cut-outs learns them (val accuracy >= 0.8; predicting the majority class gives 0.67), and
    the written model reproduces its validation accuracy."""
    config = TrainConfig(arch="resnet18", mode="two", size=48, epochs=15, batch_size=16, seed=0)
    result = train([pattern_store], tmp_path / "m.pt", config, device="cpu", progress=False)
    assert len(result.info.history) == 15 and result.path.with_suffix(".history.png").exists()
    best = result.info.history[result.best_epoch - 1]["val_accuracy"]
    assert best >= 0.8, result.info.history
    ev = evaluate(result.path, [pattern_store], split="val", device="cpu")
    assert ev.report.summary()["accuracy"] == pytest.approx(best, abs=1e-6)
    assert ev.info.datasets[0].content_sha256 == open_samples(pattern_store).attrs["content_sha256"]
    paths = ev.write(tmp_path / "report")
    assert paths["figure"].exists() and len(paths["predictions"].read_text().splitlines()) == 1 + len(ev.cutouts)


def test_training_is_reproducible_from_its_seed(pattern_store, tmp_path):
    def weights(seed, name):
        config = TrainConfig(arch="resnet18", mode="three", size=32, epochs=2, batch_size=16, seed=seed)
        result = train([pattern_store], tmp_path / name, config, device="cpu", progress=False)
        return read_info(result.path)[1], result.info.history

    (w1, h1), (w2, h2), (w3, _) = weights(3, "a.pt"), weights(3, "b.pt"), weights(4, "c.pt")
    assert all(torch.equal(w1[k], w2[k]) for k in w1) and h1 == [{**h, "seconds": h1[i]["seconds"]} for i, h in enumerate(h2)]
    assert not torch.equal(w1["fc.weight"], w3["fc.weight"])


@pytest.mark.slow
def test_ctrl_c_during_training_keeps_the_best_epoch_so_far(pattern_store, tmp_path):
    model = tmp_path / "m.pt"
    cmd = [sys.executable, "-m", "classifier.cli", "train", str(pattern_store), "--out", str(model), "--size", "32",
           "--epochs", "200", "--batch-size", "16", "--device", "cpu"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, "COLUMNS": "200", "OMP_NUM_THREADS": "1"})  # no OpenMP spin-waits on a busy machine
    seen = []
    for line in proc.stdout:
        seen.append(line)
        if line.startswith("epoch 2/200"):
            proc.send_signal(signal.SIGINT)
            break
    out = proc.communicate(timeout=120)[0]
    assert proc.returncode == 130, "".join(seen) + out
    info, _ = read_info(model)
    assert info.training["interrupted_after_epoch"] >= 2 and len(info.history) == info.training["interrupted_after_epoch"]
    assert 1 <= info.training["best_epoch"] <= len(info.history)


def test_a_run_that_dies_mid_epoch_resumes_to_the_weights_of_an_uninterrupted_run(pattern_store, tmp_path,
                                                                                   monkeypatch):
    import classifier.train as training
    from classifier.errors import ClassifierError
    from classifier.train import checkpoint_path

    config = TrainConfig(arch="resnet18", mode="three", size=32, epochs=4, batch_size=16, seed=5)
    whole = train([pattern_store], tmp_path / "new" / "whole.pt", config, device="cpu", progress=False)
    assert whole.path.is_file()  # --out in a folder that did not exist: made before the first checkpoint
    assert not checkpoint_path(whole.path).exists()  # removed once the model file is written

    calls = {"n": 0}
    validate = training._validate

    def dies_in_epoch_3(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            raise OSError(28, "No space left on device")  # as a full disk would, mid-run
        return validate(*args, **kwargs)

    monkeypatch.setattr(training, "_validate", dies_in_epoch_3)
    out = tmp_path / "cut.pt"
    with pytest.raises(OSError, match="No space left"):
        train([pattern_store], out, config, device="cpu", progress=False)
    monkeypatch.setattr(training, "_validate", validate)
    assert not out.exists() and checkpoint_path(out).is_file()  # at most the epoch under way is lost
    with pytest.raises(ClassifierError, match="an unfinished run; pass --resume to continue it or --force"):
        train([pattern_store], out, config, device="cpu", progress=False)
    with pytest.raises(ClassifierError, match="--resume: .* is a run with seed = 5, not 6"):
        train([pattern_store], out, TrainConfig(**{**config.as_dict(), "seed": 6, "augment": config.augment}),
              device="cpu", progress=False, resume=True)

    resumed = train([pattern_store], out, config, device="cpu", progress=False, resume=True)
    a, b = read_info(whole.path)[1], read_info(resumed.path)[1]
    assert all(torch.equal(a[k], b[k]) for k in a)
    strip = [{k: v for k, v in h.items() if k != "seconds"} for h in whole.info.history]
    assert [{k: v for k, v in h.items() if k != "seconds"} for h in resumed.info.history] == strip
    assert resumed.best_epoch == whole.best_epoch and not checkpoint_path(out).exists()
    with pytest.raises(ClassifierError, match="--resume: no checkpoint"):
        train([pattern_store], out, config, device="cpu", progress=False, resume=True)


def test_the_step_schedule_early_stopping_and_the_paper_presets(pattern_store, tmp_path):
    from classifier.train import PAPER_SCHEDULE, TrainConfig, stalled, train

    # the step schedule multiplies the learning rate by its factor every step_epochs epochs
    config = TrainConfig(size=32, batch_size=8, epochs=3, schedule="step", step_epochs=1, step_factor=0.5, lr=0.004)
    result = train([pattern_store], tmp_path / "s.pt", config, device="cpu", progress=False)
    lrs = [h["lr"] for h in result.info.history]
    assert np.allclose(lrs, [0.002, 0.001, 0.0005]), lrs  # (recorded after each epoch's last step)
    # stopping: the loss's best epoch lies `patience` epochs back
    assert stalled([{"val_loss": v} for v in (1.0, 0.5, 0.6, 0.7)], 2) and not stalled([{"val_loss": v} for v in (1.0, 0.5, 0.6)], 2)
    assert not stalled([{"val_loss": 1.0}] * 9, None)
    config = TrainConfig(size=32, batch_size=8, epochs=30, lr=0.05, patience=1)  # stops at the first epoch not better
    result = train([pattern_store], tmp_path / "p.pt", config, device="cpu", progress=False)
    stop = result.info.training.get("stopped_early_after_epoch")
    losses = [h["val_loss"] for h in result.info.history]
    assert stop == len(losses) < 30 and losses[-1] >= min(losses[:-1]) and losses[:-1] == sorted(losses[:-1], reverse=True)
    with pytest.raises(ClassifierError, match="schedule: use"):
        TrainConfig(schedule="linear")
    # the command line's preset: the paper's settings, recorded in the model file
    from typer.testing import CliRunner

    from classifier.cli import app

    r = CliRunner().invoke(app, ["train", str(pattern_store), "--out", str(tmp_path / "paper.pt"), "--schedule", "paper",
                                 "--augment", "paper", "--epochs", "1", "--size", "32", "--batch-size", "8", "--device", "cpu"])
    assert r.exit_code == 0, r.output
    training = read_info(tmp_path / "paper.pt")[0].training
    assert {k: training[k] for k in PAPER_SCHEDULE} == {**PAPER_SCHEDULE, "epochs": 1}
    assert training["augment"]["rotation"] and tuple(training["augment"]["blur_sigma_px"]) == (0.0, 2.0)
