"""`datagen`: generate, inspect, preview and verify simulated-HRTEM nanoparticle datasets.

Each command parses its options and calls one library function; errors become one line on stderr.
"""

from __future__ import annotations

import json
import shlex
import sys
import time
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from datagen import __version__
from datagen.clitools import handle_errors, version_callback

app = typer.Typer(name="datagen", help=__doc__.splitlines()[0], no_args_is_help=True,
                  add_completion=False, pretty_exceptions_enable=False)
console = Console(highlight=False, soft_wrap=True)


@app.callback()
def _main(
    version: Annotated[bool, typer.Option("--version", help="Show the version and exit.", is_eager=True,
                                          callback=version_callback("datagen", __version__))] = False,
):
    """Generate, inspect, preview and verify simulated-HRTEM nanoparticle datasets."""


@app.command("catalogs")
@handle_errors
def catalogs_cmd():
    """List the catalog entries (recipes) with one-line descriptions."""
    from datagen.recipe import catalog_entries, load_recipe_file

    table = Table("entry", "version", "samples", "generator", "description", box=None)
    for name, path in catalog_entries().items():
        try:
            r = load_recipe_file(path)
            table.add_row(name, r.version, str(r.n_samples), r.generator, r.description)
        except Exception as err:  # list the others even if one recipe is broken
            table.add_row(name, "-", "-", "-", f"[red]invalid: {err}[/]")
    console.print(table)


@app.command("generate")
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
):
    """Generate a dataset from a catalog entry into a versioned zarr store (resumes an incomplete one)."""
    import os

    from datagen.generate import generate
    from datagen.recipe import load_recipe, with_backend

    recipe = load_recipe(entry)
    if backend is not None:
        recipe = with_backend(recipe, backend)
    if recipe.generator == "simulation":
        from datagen.recipe import describe_recipe

        for warning in describe_recipe(recipe)["warnings"]:
            console.print(f"[yellow]warning:[/] {recipe.name}: {warning}")
    # Worker processes inherit the environment: the one way to reach backends built there.
    if device is not None:
        from datagen.device import resolve_device

        os.environ["DATAGEN_DEVICE"] = str(resolve_device(device))
    if drprobe_bin is not None:
        os.environ["DATAGEN_DRPROBE_BIN"] = str(drprobe_bin)
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
        state.update(task=progress.add_task(recipe.name, total=todo, rate=""), todo=todo, done=0,
                     t0=time.monotonic(), logged=(0.0, 0))

    def on_chunk(chunk: int, n: int, digest: str):
        progress.advance(state["task"], n)
        state["done"] += n
        elapsed = time.monotonic() - state["t0"]
        rate = state["done"] / elapsed if elapsed else 0.0
        progress.update(state["task"], rate=f"{rate:.1f}/s")
        t_last, tenth_last = state["logged"]
        tenth = 10 * state["done"] // max(state["todo"], 1)
        if not live and (tenth > tenth_last or elapsed - t_last >= 60):
            state["logged"] = (elapsed, tenth)
            eta = (state["todo"] - state["done"]) / rate if rate else float("nan")
            console.print(f"{recipe.name}: {state['done']}/{state['todo']} images, {rate:.2f} images/s, "
                          f"elapsed {_hms(elapsed)}, ETA {_hms(eta)}")

    with progress:
        result = generate(recipe, out, workers=workers, scheduler=scheduler, on_start=on_start,
                          on_chunk=on_chunk, command=command)
    if result.already_complete:
        console.print(f"{out} is already complete ({recipe.name} {recipe.version}); nothing to do")
    else:
        extra = f", {result.chunks_repaired} corrupt chunks rewritten" if result.chunks_repaired else ""
        console.print(f"wrote {result.chunks_written} of {result.n_chunks} chunks ({result.n_samples} images) "
                      f"to {out} in {result.seconds:.1f} s{extra}")
    console.print(f"content sha256: {result.content_sha256}")


def _hms(seconds: float) -> str:
    if seconds != seconds:
        return "-"
    s = int(round(seconds))
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"


@app.command("info")
@handle_errors
def info_cmd(
    path: Annotated[Path, typer.Argument(help="A dataset store.")],
    check: Annotated[bool, typer.Option(help="Also recompute every chunk checksum.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
):
    """Summarize a dataset: size, state, class balance per split, provenance ranges, checksums."""
    from datagen.summary import summarize

    s = summarize(path, check=check)
    if as_json:
        print(json.dumps(s, indent=2))
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
    if "balance" in s:
        t = Table("split", *s["balance"]["train"].keys(), "total", title="class balance", box=None)
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


@app.command("preview")
@handle_errors
def preview_cmd(
    path: Annotated[Path, typer.Argument(help="A complete dataset store.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="PNG file to write.")],
    per_class: Annotated[int, typer.Option(min=1, max=64, help="Samples shown per class.")] = 8,
):
    """Write a montage of samples, one row per class, with the particle masks outlined."""
    from datagen.preview import write_montage

    written = write_montage(path, out, per_class=per_class)
    console.print(f"wrote {written}")


@app.command("verify")
@handle_errors
def verify_cmd(
    path: Annotated[Path, typer.Argument(help="A dataset store.")],
    against: Annotated[Optional[str], typer.Option(
        help="Catalog entry whose reference build the store must reproduce (same recipe, same content hash).")] = None,
):
    """Recompute every chunk's sha256; name the first bad chunk and exit non-zero if any is wrong."""
    from datagen.errors import StoreError
    from datagen.store import Store

    if against is not None:
        from datagen.generate import check_against
        from datagen.recipe import load_recipe

        content = check_against(path, load_recipe(against))
        console.print(f"{path}: matches the reference build of {against} (content sha256 {content})")
        return
    store = Store.open(path, mode="r")
    report = store.verify()
    if not report.ok:
        raise StoreError(f"{path}: {report.summary()}")
    console.print(f"{path}: {report.summary()}; content sha256 {store.content_sha256()}")


@app.command("compare")
@handle_errors
def compare_cmd(
    a: Annotated[Path, typer.Argument(help="A complete dataset store.")],
    b: Annotated[Path, typer.Argument(help="Another one of the same size.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the comparison as JSON.")] = False,
):
    """How two datasets differ, variable by variable (e.g. a rebuild that does not match its reference)."""
    from datagen.summary import compare

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


@app.command("card")
@handle_errors
def card_cmd(
    path: Annotated[Path, typer.Argument(help="A complete dataset store.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Markdown file to write (pictures go beside it).")],
):
    """Write a dataset card (Markdown): description, recipe, balance, histograms, preview, cost, licence, citation."""
    from datagen.card import write_card

    console.print(f"wrote {write_card(path, out)}")


recipe_app = typer.Typer(name="recipe", no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False,
                         help="Write and check recipes: a full template, a dry check, the JSON Schema.")
app.add_typer(recipe_app, name="recipe")


@recipe_app.command("show")
@handle_errors
def recipe_show_cmd(
    entry: Annotated[str, typer.Argument(help="Catalog entry name or a recipe .yaml file.")],
):
    """Print a recipe with every default filled in (YAML): a template for a new entry."""
    from datagen.recipe import load_recipe, recipe_yaml

    print(recipe_yaml(load_recipe(entry)), end="")


@recipe_app.command("check")
@handle_errors
def recipe_check_cmd(
    entry: Annotated[str, typer.Argument(help="Catalog entry name or a recipe .yaml file.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the description as JSON.")] = False,
    time_samples: Annotated[int, typer.Option("--time", metavar="N",
                                              help="Also make N samples (in memory) to time the entry here.")] = 0,
):
    """Validate a recipe and say what it will make (counts, grids, largest model), generating nothing."""
    from datagen.recipe import describe_recipe, load_recipe

    recipe = load_recipe(entry)
    d = describe_recipe(recipe)
    if time_samples:
        from datagen.generate import seconds_per_sample

        d["seconds_per_sample"] = seconds_per_sample(recipe, time_samples)
        d["hours_one_worker"] = d["seconds_per_sample"] * d["samples"] / 3600
    if as_json:
        print(json.dumps(d, indent=2))
        return
    console.print(f"[bold]{d['name']}[/] {d['version']}: valid {d['generator']} recipe, recipe sha256 {d['recipe_sha256']}")
    classes = ", ".join(f"{k} {v}" for k, v in d["classes"].items())
    console.print(f"  {d['samples']} samples ({classes}) in {d['chunks']} chunks of {d['chunk_size']}")
    shape = d["image_shape"]
    if d["generator"] == "simulation":
        console.print(f"  images {shape[0]}x{shape[1]} px of {d['pixel_size_nm'][0]:.4g} nm; simulated on "
                      f"{d['simulation_grid'][0]}x{d['simulation_grid'][1]} points at {d['sampling_A'][0]:.4g} Å, "
                      f"{d['slices']} slices, images formed on {d['image_formation_grid'][0]}x"
                      f"{d['image_formation_grid'][1]}; λ = {d['wavelength_pm']:.4f} pm; backend {d['backend']}")
        console.print(f"  at most {d['max_atoms_per_model']} atoms per model")
        fringes = d["lattice_fringes"]
        if fringes["reflections"]:
            shown = ", ".join(f"{{{''.join(map(str, r['hkl']))}}} {r['d_A']:.3g} Å "
                              f"({'passed' if r['passed'] else 'blocked'}, envelope {r['temporal_envelope']:.2f})"
                              for r in fringes["reflections"])
            console.print(f"  lattice fringes through the optics: {shown}")
        for w in d["warnings"]:
            console.print(f"  [yellow]warning:[/] {w}")
    else:
        console.print(f"  images {shape[0]}x{shape[1]} px")
    if "seconds_per_sample" in d:
        console.print(f"  {d['seconds_per_sample']:.3g} s per sample here (mean of {time_samples}): about "
                      f"{_hms(d['hours_one_worker'] * 3600)} for all {d['samples']} on one worker")
    ref = d["reference_content_sha256"]
    if ref:
        refs = ref if isinstance(ref, dict) else {"any device": ref}
        console.print("  reference builds: " + ", ".join(f"{k} {v[:16]}…" for k, v in refs.items()))


@recipe_app.command("schema")
@handle_errors
def recipe_schema_cmd():
    """Print the JSON Schema of recipe files (for editor validation and completion)."""
    from datagen.recipe import recipe_json_schema

    print(json.dumps(recipe_json_schema(), indent=1))


def _mount_structure() -> None:
    from datagen.structures.cli import app as structure_app

    app.add_typer(structure_app, name="structure", help="Build and inspect single atomic models.")


_mount_structure()


def main() -> None:
    app()


if __name__ == "__main__":
    main()
