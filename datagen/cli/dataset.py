"""The dataset commands: catalogs, generate, info, preview, verify, compare, card, reference, export, publish.

Each parses its options and calls one library function; errors become one line on stderr
(``common.handle_errors``). Library modules that load torch or matplotlib are imported inside the
commands that use them, so ``datagen --help`` and the light commands start fast.
"""

from __future__ import annotations

import json
import shlex
import sys
import time
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from datagen.cli.common import console, handle_errors, hms
from datagen.errors import DatagenError, StoreError, refuse_existing
from datagen.recipe import catalog_entries, load_recipe, load_recipe_file, with_backend
from datagen.report.summary import compare, summarize
from datagen.store import Store


@handle_errors
def catalogs_cmd():
    """List the catalog entries (recipes) with one-line descriptions."""
    table = Table("entry", "version", "samples", "generator", "description", box=None)
    for name, path in catalog_entries().items():
        try:
            r = load_recipe_file(path)
            table.add_row(name, r.version, str(r.n_samples), r.generator, r.description)
        except Exception as err:  # list the others even if one recipe is broken
            table.add_row(name, "-", "-", "-", f"[red]invalid: {err}[/]")
    console.print(table)


@handle_errors
def generate_cmd(
    entry: Annotated[str, typer.Argument(help="Catalog entry name (see `datagen catalogs`) or a recipe .yaml file.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Path of the zarr store to write (created, or resumed).")],
    workers: Annotated[Optional[int], typer.Option(
        help="Worker processes on a local dask cluster (default: one per core); 0 runs in this process.")] = None,
    scheduler: Annotated[Optional[str], typer.Option(
        help="Address of an existing dask scheduler, e.g. tcp://host:8786, instead of a local cluster.")] = None,
    backend: Annotated[Optional[str], typer.Option(
        help="Simulation backend instead of the recipe's: multislice, abtem or drprobe (a different dataset).")] = None,
    device: Annotated[Optional[str], typer.Option(
        help="Compute device of the built-in engine: auto (CUDA when present), cpu, cuda, cuda:N.")] = None,
    drprobe_bin: Annotated[Optional[Path], typer.Option(
        help="Folder holding Dr Probe's celslc, msa and wavimg (default: found on PATH).")] = None,
    images_from: Annotated[Optional[Path], typer.Option(
        help="For an entry with a recording block: a complete store of the same recipe without it (e.g. "
             "data/poly-v1.zarr for poly-rec-v1), whose noise-free images are recorded instead of simulated "
             "again (the same dataset, in minutes).")] = None,
):
    """Generate a dataset from a catalog entry into a versioned zarr store (resumes an incomplete one)."""
    from datagen.recipe.describe import describe_recipe  # torch: loaded by the commands that need it
    from datagen.run import generate  # torch and dask: loaded by the commands that need them

    recipe = load_recipe(entry)
    if backend is not None:
        recipe = with_backend(recipe, backend)
    if images_from is not None and getattr(getattr(recipe, "simulation", None), "recording", None) is None:
        raise DatagenError(f"--images-from: {recipe.name} is not a simulation recipe with a recording block")
    for warning in describe_recipe(recipe)["warnings"]:
        console.print(f"[yellow]warning:[/] {recipe.name}: {warning}")
    options = {"device": device, "bin_dir": None if drprobe_bin is None else str(drprobe_bin),
               "images_from": None if images_from is None else str(images_from)}
    backend_options = {k: v for k, v in options.items() if v is not None}
    command = shlex.join(["datagen", *sys.argv[1:]]) if sys.argv else ""
    # On a terminal a live bar; in a log (nohup, a batch job) one plain line per tenth of the work or minute.
    live = console.is_terminal
    progress = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                        TextColumn("images"), TextColumn("{task.fields[rate]}"), TimeElapsedColumn(),
                        TextColumn("ETA"), TimeRemainingColumn(), console=console, transient=False,
                        disable=not live)
    state = {}

    def on_start(todo: int, total: int):
        if todo < total:
            console.print(f"resuming {out}: {total - todo} of {total} images already written")
        state.update(task=progress.add_task(recipe.name, total=todo, rate=""), todo=todo, done=0, seen=0,
                     t0=time.monotonic(), logged=(0.0, 0))

    def show():
        # images written (per chunk), or simulated so far where a slow backend reports single samples
        shown = max(state["done"], min(state["seen"], state["todo"]))
        elapsed = time.monotonic() - state["t0"]
        rate = shown / elapsed if elapsed else 0.0
        progress.update(state["task"], completed=shown, rate=f"{rate:.1f}/s")
        t_last, tenth_last = state["logged"]
        tenth = 10 * shown // max(state["todo"], 1)
        if not live and (tenth > tenth_last or elapsed - t_last >= 60):
            state["logged"] = (elapsed, tenth)
            eta = (state["todo"] - shown) / rate if rate else float("nan")
            console.print(f"{recipe.name}: {shown}/{state['todo']} images, {rate:.2f} images/s, "
                          f"elapsed {hms(elapsed)}, ETA {hms(eta)}")

    def on_chunk(chunk: int, n: int, digest: str):
        state["done"] += n
        show()

    def on_sample(n: int):
        state["seen"] += n
        show()

    with progress:
        result = generate(recipe, out, workers=workers, scheduler=scheduler, on_start=on_start,
                          on_chunk=on_chunk, on_sample=on_sample, command=command, backend_options=backend_options)
    if result.already_complete:
        console.print(f"{out} is already complete ({recipe.name} {recipe.version}); nothing to do")
    else:
        extra = f", {result.chunks_repaired} corrupt chunks rewritten" if result.chunks_repaired else ""
        console.print(f"wrote {result.chunks_written} of {result.n_chunks} chunks ({result.n_samples} images) "
                      f"to {out} in {result.seconds:.1f} s{extra}")
    console.print(f"content sha256: {result.content_sha256}")


@handle_errors
def info_cmd(
    path: Annotated[str, typer.Argument(metavar="STORE", help="A dataset store: a folder, a published .zip, or its http(s) URL.")],
    check: Annotated[bool, typer.Option(help="Also recompute every chunk checksum.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
):
    """Summarize a dataset: size, state, class balance per split, provenance ranges, checksums."""
    s = summarize(path, check=check)
    if as_json:
        print(json.dumps(s, indent=2))
        _refuse_corrupt(path, s)
        return
    state = "complete" if s["complete"] else "[yellow]incomplete[/]"
    console.print(f"[bold]{s['path']}[/]: {s['catalog']}, {s['n_samples']} samples of "
                  f"{s['image_shape'][0]}x{s['image_shape'][1]} px, {state}")
    console.print(f"  {s['summary']}")
    console.print(f"  source {s['source']}, backend {s['backend']}, created {s['date_created']}, license {s['license']}")
    ch = s["chunks"]
    console.print(f"  chunks: {ch['written']} of {ch['total']} written ({ch['chunk_size']} samples each); "
                  f"content sha256 {s['content_sha256'] or '-'}")
    if "verify" in s:
        console.print(f"  checksums: {s['verify']}")
    _refuse_corrupt(path, s)
    if "balance" in s:
        t = Table("split", *s["balance"]["train"].keys(), "total", title="class balance" + (" (particles)" if s.get("balance_unit") == "particles" else ""), box=None)
        for split, counts in s["balance"].items():
            t.add_row(split, *map(str, counts.values()), str(sum(counts.values())))
        console.print(t)
        t = Table("provenance", "min", "max", "units", title="provenance ranges", box=None)
        for name, r in s["provenance"].items():
            if "values" in r:
                t.add_row(name, ", ".join(f"{k}: {v}" for k, v in r["values"].items()), "", r["units"])
            elif r["n"]:
                t.add_row(name, f"{r['min']:.4g}", f"{r['max']:.4g}", r["units"])
            else:
                t.add_row(name, "-", "-", r["units"])
        console.print(t)


def _refuse_corrupt(path: Path, summary: dict) -> None:
    """A non-zero exit, naming the first bad chunk, when ``info --check`` found corrupt chunks."""
    if summary.get("corrupt_chunks"):
        raise StoreError(f"{path}: {summary['verify']}")


@handle_errors
def preview_cmd(
    path: Annotated[str, typer.Argument(metavar="STORE", help="A complete dataset store (folder, .zip or URL).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="PNG file to write.")],
    per_class: Annotated[int, typer.Option(min=1, max=64, help="Samples shown per class.")] = 8,
    force: Annotated[bool, typer.Option("--force", help="Replace an existing file.")] = False,
):
    """Write a montage of samples, one row per class, with the particle masks outlined."""
    from datagen.report.preview import write_montage  # matplotlib: loaded by the commands that need it

    if not force:
        refuse_existing([out])
    written = write_montage(path, out, per_class=per_class)
    console.print(f"wrote {written}")


@handle_errors
def verify_cmd(
    path: Annotated[str, typer.Argument(metavar="STORE", help="A dataset store: a folder, a published .zip, or its http(s) URL.")],
    against: Annotated[Optional[str], typer.Option(
        help="Catalog entry whose reference build the store must reproduce: bit for bit, or within numerical "
             "noise (judged from the fingerprint shipped with the entry); exits 1 on different content.")] = None,
):
    """Recompute every chunk's sha256; name the first bad chunk and exit non-zero if any is wrong."""
    if against is not None:
        from datagen.store.reference import check_against  # torch: loaded by the commands that need it

        console.print(f"{path}: {check_against(path, load_recipe(against)).summary()}")
        return
    store = Store.open(path, mode="r")
    report = store.verify()
    if not report.ok:
        raise StoreError(f"{path}: {report.summary()}" + (f"; {store.repair_hint()}" if report.bad else ""))
    console.print(f"{path}: {report.summary()}; content sha256 {store.content_sha256()}")


@handle_errors
def compare_cmd(
    a: Annotated[str, typer.Argument(metavar="STORE_A", help="A complete dataset store (folder, .zip or URL).")],
    b: Annotated[str, typer.Argument(metavar="STORE_B", help="Another one of the same size.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the comparison as JSON.")] = False,
):
    """How two datasets differ, variable by variable (e.g. a rebuild that does not match its reference)."""
    c = compare(a, b)
    if as_json:
        print(json.dumps(c, indent=2))
        return
    if not c["same_recipe"]:
        console.print("[yellow]the two stores were made from different recipes[/]")
    if c["identical"]:
        console.print(f"{a} and {b} hold identical data")
        return
    t = Table("group", "variable", "differing", "max |Δ|", "relative", box=None)
    for r in c["variables"]:
        if r["differing"] != 0:
            diff = r.get("max_abs_difference")
            t.add_row(r["group"], r["variable"], str(r["differing"]), "" if diff is None else f"{diff:.3g}",
                      "" if diff is None else f"{r['relative']:.2e}")
    console.print(t)
    same = [r["variable"] for r in c["variables"] if r["differing"] == 0]
    console.print(f"equal: {', '.join(same) or 'nothing'}")


@handle_errors
def card_cmd(
    path: Annotated[str, typer.Argument(metavar="STORE", help="A complete dataset store (folder, .zip or URL).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Markdown file to write (pictures go beside it).")],
    force: Annotated[bool, typer.Option("--force", help="Replace an existing card and its pictures.")] = False,
):
    """Write a dataset card (Markdown): description, recipe, balance, histograms, preview, cost, licence, citation."""
    from datagen.report.card import write_card  # matplotlib: loaded by the commands that need it

    if not force:
        refuse_existing([out, out.parent / f"{out.stem}_files"])

    console.print(f"wrote {write_card(path, out)}")



@handle_errors
def reference_cmd(
    path: Annotated[Path, typer.Argument(help="A complete build of a catalog entry.")],
    recipe_file: Annotated[Optional[Path], typer.Option(
        "--recipe", help="The entry's recipe file to record it in (default: the catalog entry of the same name).")] = None,
    force: Annotated[bool, typer.Option("--force", help="Replace the entry's existing reference build.")] = False,
):
    """Record a build as its entry's reference: the content hash in the recipe, a fingerprint beside it."""
    from datagen.store.reference import record_reference  # torch: loaded by the commands that need it

    if recipe_file is None:
        name = Store.open(path, mode="r").attrs.get("catalog_name")
        entries = catalog_entries()
        if name not in entries:
            raise StoreError(f"{path}: its catalog entry {name!r} is not in the catalogs; pass --recipe FILE")
        recipe_file = entries[name]
    content, fingerprint = record_reference(path, recipe_file, force=force)
    console.print(f"recorded {path} as the reference build of {recipe_file} (content sha256 {content}); "
                  f"fingerprint {fingerprint}")


#: Command name → function, in the order ``datagen --help`` lists them.
@handle_errors
def export_cmd(
    path: Annotated[str, typer.Argument(metavar="STORE", help="A complete dataset store (folder, .zip or URL).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder to write (SPLIT/CLASS/NAME.tif, masks, samples.csv).")],
    format: Annotated[str, typer.Option("--format", help="tiff (float32, the stored values) or png (16-bit, stretched per image).")] = "tiff",
    split: Annotated[Optional[str], typer.Option(help="Only this split (train, val or test).")] = None,
    cutouts: Annotated[bool, typer.Option("--cutouts", help="Also the particles with the support outside the mask set to 0.")] = False,
    force: Annotated[bool, typer.Option("--force", help="Replace an existing folder.")] = False,
):
    """Export a store as image files with masks and a provenance table, for MATLAB, ImageJ and plain Python."""
    from datagen.export import export_images

    result = export_images(path, out, fmt=format, split=split, cutouts=cutouts, overwrite=force, progress=True)
    console.print(f"wrote {result.n_images} images ({', '.join(f'{k} {v}' for k, v in result.splits.items())}) "
                  f"to {result.path}, with samples.csv")


@handle_errors
def publish_cmd(
    path: Annotated[Path, typer.Argument(metavar="STORE", help="A complete dataset store folder.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder to write: NAME.zarr.zip, README.md, samples.csv, "
                                                          "croissant.json, LICENSE, CITATION.cff, SHA256SUMS.")],
    author: Annotated[list[str], typer.Option("--author", "-a", help="A creator of the dataset, \"Given Family\" "
                                                                    "(repeat for each).")] = [],
    url: Annotated[Optional[str], typer.Option(help="The http(s) address the files will be downloaded from "
                                                    "(recorded in croissant.json, CITATION.cff and the card).")] = None,
    license_file: Annotated[Optional[Path], typer.Option(help="The licence's full text, for a licence with no "
                                                              "bundled text.")] = None,
    force: Annotated[bool, typer.Option("--force", help="Replace an existing folder.")] = False,
):
    """Publish a store for upload: one zip file, dataset card, Croissant 1.1, licence, citation, sha256 list."""
    from datagen.publish import publish

    result = publish(path, out, authors=author, url=url, license_file=license_file, overwrite=force, progress=True)
    console.print(f"wrote {result.path}: {', '.join(n for n in result.files if '/' not in n)}, SHA256SUMS "
                  f"(content sha256 {result.content_sha256})")


COMMANDS = {
    "catalogs": catalogs_cmd,
    "generate": generate_cmd,
    "info": info_cmd,
    "preview": preview_cmd,
    "verify": verify_cmd,
    "compare": compare_cmd,
    "card": card_cmd,
    "reference": reference_cmd,
    "export": export_cmd,
    "publish": publish_cmd,
}
