"""`classifier`: train, evaluate and apply crystallinity classifiers on datagen datasets and real particles.

The commands import the modules that do the work (and with them torch and torchvision) when they
run, so that start-up, ``--help`` and ``--version`` stay fast.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from classifier import __version__
from classifier.errors import ClassifierError, refuse_existing
from datagen.cli.common import handle_errors, version_callback

app = typer.Typer(name="classifier", help=__doc__.splitlines()[0], no_args_is_help=True,
                  add_completion=False, pretty_exceptions_enable=False)
console = Console(highlight=False)

Device = Annotated[str, typer.Option(help="'auto' (CUDA when present), 'cpu' or 'cuda[:N]'.")]


@app.callback()
def _main(
    version: Annotated[bool, typer.Option("--version", help="Show the version and exit.", is_eager=True,
                                          callback=version_callback("classifier", __version__))] = False,
):
    """Train, evaluate and apply crystallinity classifiers on datagen datasets."""


@app.command()
@handle_errors
def train(
    datasets: Annotated[list[str], typer.Argument(metavar="STORES...", help="Dataset stores (zarr folders, published .zip files or their http(s) URLs) to train on: their train splits, "
                                                        "with their val splits to pick the best epoch.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Model file to write.")] = Path("model.pt"),
    arch: Annotated[str, typer.Option(help="resnet18, resnet34, resnet50, resnet101 (the paper's) or resnet152.")] = "resnet18",
    mode: Annotated[str, typer.Option(help="'three' (amorphous/mono/poly) or 'two' (amorphous/crystalline) classes.")] = "three",
    size: Annotated[int, typer.Option(help="Input side [pixel] (the paper: 224).")] = 224,
    epochs: Annotated[int | None, typer.Option(help="Training epochs (at most, with --patience) [default: 30; paper: 80].")] = None,
    batch_size: Annotated[int, typer.Option(help="Images per step.")] = 64,
    lr: Annotated[float | None, typer.Option(help="Peak (cosine) or initial (step) learning rate of AdamW [default: 0.001; paper: 0.0085].")] = None,
    schedule: Annotated[str, typer.Option(help="'cosine' (one warm-up epoch, cosine decay), 'step' (x0.62 every 20 "
                                               "epochs) or 'paper' (the paper's: step from 0.0085, at most 80 epochs, "
                                               "patience 5).")] = "cosine",
    patience: Annotated[int | None, typer.Option(min=1, help="Stop when the validation loss has not improved for this many epochs [paper: 5].")] = None,
    class_weights: Annotated[str, typer.Option(help="'balanced' (inverse class frequency) or 'none'.")] = "balanced",
    augment: Annotated[str, typer.Option(help="'basic' (90-degree rotations and mirrors, contrast, noise), 'paper' (also "
                                              "any angle, scaling, brightness, blur up to 2 px, MTF, dose noise) or 'none'.")] = "basic",
    threshold: Annotated[float, typer.Option(help="Confidence below which a prediction is 'unknown'.")] = 0.8,
    min_visibility: Annotated[float | None, typer.Option(min=0, help="Leave out crystalline training particles whose "
                                                                     "lattice visibility is below this (1: no stronger "
                                                                     "than in 99 % of amorphous ones).")] = None,
    weights: Annotated[Path | None, typer.Option(help="Local ResNet weights file to start from (default: from scratch).")] = None,
    half: Annotated[bool, typer.Option("--half", help="Store the weights in half precision (half the file size).")] = False,
    seed: Annotated[int, typer.Option(help="Seed of initialisation, shuffling and augmentation.")] = 0,
    device: Device = "auto",
    force: Annotated[bool, typer.Option("--force", help="Replace an existing model file (and an unfinished run's checkpoint).")] = False,
    resume: Annotated[bool, typer.Option("--resume", help="Continue the unfinished run that writes --out, from its checkpoint.")] = False,
):
    """Train a ResNet on particle cut-outs of simulated datasets; writes the model file and a training-curve picture.

    The run's state is checkpointed after every epoch (beside the model file); after a crash, a full disk
    or Ctrl-C, the same command with --resume continues it to the weights an uninterrupted run reaches.
    """
    # lazy: torch (see the module docstring)
    from classifier.augment import Augmentation
    from classifier.train import PAPER_SCHEDULE, SCHEDULES, TrainConfig, train as run_train

    augmentations = {"basic": Augmentation(), "paper": Augmentation.paper(), "none": Augmentation.none()}
    if augment not in augmentations:
        raise ClassifierError(f"--augment: use {', '.join(augmentations)}, got {augment!r}")
    if schedule not in (*SCHEDULES, "paper"):
        raise ClassifierError(f"--schedule: use {', '.join(SCHEDULES)} or paper, got {schedule!r}")
    preset = dict(PAPER_SCHEDULE) if schedule == "paper" else {"schedule": schedule, "epochs": 30, "lr": 1e-3, "patience": None}
    preset.update({k: v for k, v in (("epochs", epochs), ("lr", lr), ("patience", patience)) if v is not None})
    config = TrainConfig(arch=arch, mode=mode, size=size, batch_size=batch_size, class_weights=class_weights,
                         seed=seed, threshold=threshold, augment=augmentations[augment], min_visibility=min_visibility,
                         half=half, **preset)
    result = run_train(datasets, out, config, weights=weights, device=device, overwrite=force, resume=resume)
    best = result.info.history[result.best_epoch - 1]
    console.print(f"wrote {result.path} ({config.arch}, {config.mode}-class, best epoch {result.best_epoch}: "
                  f"val accuracy {best['val_accuracy']:.1%}) in {result.seconds:.0f} s"
                  + (f", stopped after epoch {result.info.training['stopped_early_after_epoch']} (no better validation "
                     f"loss for {config.patience} epochs)" if "stopped_early_after_epoch" in result.info.training else "")
                  + "; "
                  f"curves in {result.path.with_suffix('.history.png')}")


@app.command()
@handle_errors
def evaluate(
    datasets: Annotated[list[str], typer.Argument(metavar="DATA...", help="Labelled dataset stores (zarr folders, published .zip files or their http(s) URLs), or folders of cut-out images "
                                                        "with one sub-folder per class (amorphous/, monocrystalline/, "
                                                        "polycrystalline/ or crystalline/).")],
    model: Annotated[Path | None, typer.Option("--model", "-m", help="Model file (default: the shipped model; a "
                                                                     "first argument ending in .pt is taken as it too).")] = None,
    split: Annotated[str, typer.Option(help="train, val, test or all (of a store; a folder is used whole).")] = "test",
    threshold: Annotated[float | None, typer.Option(help="Reject threshold (default: the model's).")] = None,
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Folder for report.json, predictions.csv and confusion.png.")] = None,
    device: Device = "auto",
    force: Annotated[bool, typer.Option("--force", help="Replace an existing report in the folder.")] = False,
):
    """Accuracy, per-class precision and recall, confusion matrix, and accuracy with coverage under the reject rule."""
    from classifier.evaluate import evaluate as run_evaluate, output_paths  # lazy: torch

    from classifier.modelfile import model_or_default

    if model is None and datasets and datasets[0].endswith(".pt"):  # `evaluate MODEL DATA...`, as before --model
        model, datasets = Path(datasets[0]), datasets[1:]
    if not datasets:
        raise ClassifierError("datasets: give at least one dataset store or folder of cut-outs")
    model = model_or_default(model)
    if out is not None and not force:  # before any work
        refuse_existing(output_paths(out).values())
    ev = run_evaluate(model, datasets, split=split, threshold=threshold, device=device, progress=True)
    s = ev.summary()
    table = Table(title=f"{model.name} on {', '.join(str(d) for d in ev.cutouts.sources)} ({split}, n = {s['n']})")
    table.add_column("class")
    table.add_column("precision", justify="right")
    table.add_column("recall", justify="right")
    table.add_column("n", justify="right")
    pct = lambda v: "-" if v is None else f"{v:.1%}"  # noqa: E731
    for c in ev.info.classes:
        table.add_row(c, pct(s["precision"][c]), pct(s["recall"][c]), str(s["support"][c]))
    console.print(table)
    console.print(f"accuracy {pct(s['accuracy'])}; with the reject rule (confidence < {s['threshold']:.2f} is unknown): "
                  f"accuracy {pct(s['accuracy_kept'])} at coverage {pct(s['coverage'])}")
    if "by_visibility" in s:
        vis = Table(title="by lattice visibility (peak ratio over amorphous particles' 99th percentile)")
        for col in ("visibility", "accuracy", "n", *ev.info.classes):
            vis.add_column(col, justify="left" if col == "visibility" else "right")
        for name, row in s["by_visibility"].items():
            vis.add_row(name, pct(row["accuracy"]), str(row["n"]), *[str(row["support"][c]) for c in ev.info.classes])
        console.print(vis)
        console.print(f"accuracy on clear particles (amorphous, and crystalline with visibility >= 1): "
                      f"{pct(s['accuracy_clear'])} (n = {s['n_clear']} of {s['visibility_measured']} measured)")
    if out is not None:
        paths = ev.write(out, overwrite=force)
        console.print(f"wrote {', '.join(str(p) for p in paths.values())}")


@app.command()
@handle_errors
def infer(
    images: Annotated[list[Path], typer.Argument(help="Particle images (cut-outs), or folders searched at any depth; "
                                                      "a mask may lie beside each (NAME.mask.png).")],
    model: Annotated[Path | None, typer.Option("--model", "-m", help="Model file (default: the shipped model).")] = None,
    out: Annotated[Path, typer.Option("--out", "-o", help="Predictions table to write (CSV).")] = Path("predictions.csv"),
    threshold: Annotated[float | None, typer.Option(help="Reject threshold (default: the model's).")] = None,
    device: Device = "auto",
    force: Annotated[bool, typer.Option("--force", help="Replace an existing table.")] = False,
):
    """Classify particle images: one row per file with the class ("unknown" under the threshold), confidence and probabilities."""
    from classifier.infer import infer as run_infer  # lazy: torch
    from classifier.modelfile import model_or_default

    model = model_or_default(model)
    if not force:  # before any work
        refuse_existing([out])
    result = run_infer(model, images, threshold=threshold, device=device, progress=True)
    labels = result.labels()
    counts = ", ".join(f"{c} {labels.count(c)}" for c in (*result.classes, "unknown") if labels.count(c))
    path = result.write_csv(out, overwrite=force)
    console.print(f"{len(labels)} particles ({counts}); wrote {path}")


@app.command()
@handle_errors
def analyse(
    micrographs: Annotated[list[Path], typer.Argument(help="Micrographs: DM3/DM4, EMD (Velox, Berkeley), SER/EMI, MRC, TIFF, PNG, JPEG or .npy.")],
    pixel_size_nm: Annotated[float | None, typer.Option("--pixel-size-nm", help="Pixel size [nm]: overrides the file's; required where a file holds none (PNG, JPEG, .npy, plain TIFF).")] = None,
    frame: Annotated[int | None, typer.Option("--frame", help="The frame of a stack to analyse (0 = first).")] = None,
    model: Annotated[Path | None, typer.Option("--model", "-m", help="Model file (default: the shipped model, where "
                                                                     "this checkout has one).")] = None,
    measure_only: Annotated[bool, typer.Option("--measure-only", help="Find and measure particles without classifying them.")] = False,
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder for the tables (.csv, .json), label images (.labels.tif), overlays (.png) and the summary.")] = Path("analysis"),
    detector: Annotated[str, typer.Option(help="Particle detector: unet (the shipped U-Net trained on simulated fields) or classical (band-pass and watershed).")] = "unet",
    min_diameter_nm: Annotated[float, typer.Option(help="Smallest particle kept (equivalent diameter) [nm].")] = 0.8,
    max_diameter_nm: Annotated[float, typer.Option(help="Largest particle kept (equivalent diameter) [nm].")] = 6.0,
    keep_border: Annotated[bool, typer.Option("--keep-border", help="Keep particles cut by the image edge (dropped by default).")] = False,
    threshold: Annotated[float | None, typer.Option(help="Reject threshold (default: the model's).")] = None,
    device: Device = "auto",
    force: Annotated[bool, typer.Option("--force", help="Replace existing outputs in the folder.")] = False,
):
    """Find particles in whole micrographs, measure them, cut them out and classify them: a table, a label
    image and an overlay per micrograph, and a summary of the folder."""
    import dataclasses

    from rich.progress import Progress

    # lazy: torch, scikit-image
    from classifier.detection import get_detector
    from classifier.detection.classical import ClassicalSettings
    from classifier.micrograph import FolderSummary, analyse as run_analyse, output_paths, output_stems, summary_paths, write_summary
    from classifier.modelfile import DEFAULT_MODEL, check_threshold, load_model
    from classifier.readers import check_pixel_size, read_micrograph
    from datagen.device import resolve_device

    if pixel_size_nm is not None:
        check_pixel_size(pixel_size_nm, "--pixel-size-nm")  # before any micrograph is read
    get_detector(detector)
    settings = dataclasses.replace(ClassicalSettings(), diameter_nm=(min_diameter_nm, max_diameter_nm),
                                   exclude_border=not keep_border)
    if threshold is not None:
        check_threshold(threshold)
    stems = output_stems(micrographs)
    if not force:  # before any work
        refuse_existing([*(q for stem in stems for q in output_paths(out, stem).values()), *summary_paths(out).values()])
    for p in micrographs:  # every file checked before any work
        read_micrograph(p, pixel_size_nm=pixel_size_nm, frame=frame)
    net = info = None
    if model is None and not measure_only:
        if DEFAULT_MODEL.is_file():
            model = DEFAULT_MODEL
        else:
            console.print(f"no model given and none shipped ({DEFAULT_MODEL.name}): particles are found and measured, "
                          f"not classified (pass --model M.pt to classify them)")
    if model is not None and not measure_only:
        net, info = load_model(model, resolve_device(device))
    summary = FolderSummary()
    with Progress(console=console, transient=True) as bar:
        task = bar.add_task("analysing", total=len(micrographs))
        for path, stem in zip(micrographs, stems):
            micrograph = read_micrograph(path, pixel_size_nm=pixel_size_nm, frame=frame)
            for note in micrograph.notes:
                console.print(f"{path}: {note}")
            result = run_analyse(micrograph.image, micrograph.pixel_size_nm, net, info, path=str(path),
                                 detector=detector, settings=settings, device=device, threshold=threshold)
            written = result.write(out, stem, overwrite=force)
            summary.add(result)
            counts = ", ".join(f"{c} {n}" for c, n in result.counts().items() if n)
            console.print(f"{path}: {len(result.particles)} particles" + (f" ({counts})" if counts else "")
                          + f" at {micrograph.pixel_size_nm:.4g} nm/px; wrote {written['table']}, "
                            f"{written['labels']}, {written['figure']}")
            bar.advance(task)
    written = write_summary(summary, out, overwrite=force)
    console.print(f"summary of {len(micrographs)} micrographs: {written['table']}, {written['figure']}")


@app.command()
@handle_errors
def card(
    model: Annotated[Path, typer.Argument(help="Model file.")],
    reports: Annotated[list[Path], typer.Argument(help="`evaluate --out` folders (or their report.json) to include.")] = None,
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Markdown file to write (default: beside the model, .md).")] = None,
    rebuild: Annotated[str, typer.Option(help="The command that rebuilds the model, shown on the card.")] = "",
    force: Annotated[bool, typer.Option("--force", help="Replace an existing card.")] = False,
):
    """Write a model card: training data with content hashes, settings, test metrics per dataset and lattice-visibility bin, known limits."""
    from classifier.card import write_card  # lazy: torch

    path = write_card(model, list(reports or []), out or model.with_suffix(".md"), rebuild=rebuild, overwrite=force)
    console.print(f"wrote {path}")


@app.command()
@handle_errors
def info(model: Annotated[Path, typer.Argument(help="Model file.")]):
    """What a model file holds: architecture, classes, preprocessing, threshold, training datasets and history."""
    from classifier.modelfile import read_info  # lazy: torch

    mi, state = read_info(model)
    n_params = sum(v.numel() for v in state.values() if v.is_floating_point())
    console.print(f"{model}: {mi.arch} ({n_params / 1e6:.1f} M parameters), {mi.mode}-class {list(mi.classes)}")
    console.print(f"input: cut-out {mi.preprocessing.size} x {mi.preprocessing.size} px, margin {mi.preprocessing.margin}; "
                  f"reject threshold {mi.threshold}")
    for d in mi.datasets:
        console.print(f"trained on: {d.name} {d.version}  content sha256 {d.content_sha256}")
    if mi.history:
        best = mi.training.get("best_epoch")
        h = mi.history[best - 1] if best else mi.history[-1]
        console.print(f"{len(mi.history)} epochs; best epoch {best}: val accuracy {h['val_accuracy']:.1%}"
                      + (f" (interrupted after epoch {mi.training['interrupted_after_epoch']})"
                         if "interrupted_after_epoch" in mi.training else ""))
    console.print(f"created {mi.created} with {', '.join(f'{k} {v}' for k, v in mi.software.items() if k != 'host')}")


segment = typer.Typer(name="segment", help="The learned particle detector (U-Net) of `analyse --detector unet`.",
                      no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False)
app.add_typer(segment)


@segment.command("train")
@handle_errors
def segment_train(
    fields: Annotated[list[Path], typer.Argument(help="Field stores (datagen field entries such as fields-v1): "
                                                      "train split to learn, val split to pick the best epoch.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Weights file to write.")] = Path("unet.pt"),
    epochs: Annotated[int, typer.Option(min=1, max=1000)] = 16,
    steps: Annotated[int, typer.Option("--steps", min=1, max=100_000, help="Batches per epoch.")] = 150,
    batch_size: Annotated[int, typer.Option(min=1, max=1024)] = 12,
    seed: Annotated[int, typer.Option(min=0)] = 0,
    device: Device = "auto",
    force: Annotated[bool, typer.Option("--force", help="Replace an existing weights file.")] = False,
):
    """Train the U-Net on simulated fields; the weights file records the datasets, seed, settings and scores."""
    from classifier.detection.unet import TrainSettings, train as run_train  # lazy: torch
    from datagen.device import resolve_device

    if not force:
        refuse_existing([out])
    dev = str(resolve_device(device))

    def show(row):
        console.print(f"epoch {row['epoch']}: loss {row['loss']:.4f}, val recall {row['val_recall']:.1%}, "
                      f"precision {row['val_precision']:.1%}, F1 {row['val_f1']:.3f}")

    meta = run_train(fields, out, TrainSettings(epochs=epochs, steps_per_epoch=steps, batch_size=batch_size, seed=seed),
                     device=dev, progress=show)
    b = meta["best_epoch"]
    console.print(f"wrote {out}: best epoch {b['epoch']} (val F1 {b['val_f1']:.3f}) in {meta['seconds'] / 60:.1f} min")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
