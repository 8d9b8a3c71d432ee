"""``datagen recipe``: write and check recipes (a full template, a dry check, the JSON Schema)."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from datagen.cli.common import console, handle_errors, hms
from datagen.recipe import load_recipe, recipe_json_schema, recipe_yaml


app = typer.Typer(name="recipe", no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False,
                  help="Write and check recipes: a full template, a dry check, the JSON Schema.")


@app.command("show")
@handle_errors
def recipe_show_cmd(
    entry: Annotated[str, typer.Argument(help="Catalog entry name or a recipe .yaml file.")],
):
    """Print a recipe with every default filled in (YAML): a template for a new entry."""
    print(recipe_yaml(load_recipe(entry)), end="")


@app.command("check")
@handle_errors
def recipe_check_cmd(
    entry: Annotated[str, typer.Argument(help="Catalog entry name or a recipe .yaml file.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the description as JSON.")] = False,
    time_samples: Annotated[int, typer.Option("--time", metavar="N",
                                              help="Also make N samples (in memory) to time the entry here.")] = 0,
):
    """Validate a recipe and say what it will make (counts, grids, largest model), generating nothing."""
    from datagen.recipe.describe import describe_recipe  # torch: loaded by the commands that need it

    recipe = load_recipe(entry)
    d = describe_recipe(recipe)
    if time_samples:
        from datagen.run import seconds_per_sample  # dask: loaded by the commands that need it

        d["seconds_per_sample"] = seconds_per_sample(recipe, time_samples)
        d["hours_one_worker"] = d["seconds_per_sample"] * d["samples"] / 3600
    if as_json:
        print(json.dumps(d, indent=2))
        return
    console.print(f"[bold]{d['name']}[/] {d['version']}: valid {d['generator']} recipe, recipe sha256 {d['recipe_sha256']}")
    classes = ", ".join(f"{k} {v}" for k, v in d["classes"].items()) or "fields of mixed particles"
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
    elif d["generator"] == "field":
        console.print(f"  fields {shape[0]}x{shape[1]} px of {d['pixel_size_nm'][0]:.4g}-{d['pixel_size_nm'][1]:.4g} nm "
                      f"({d['field_nm'][0]:.3g}-{d['field_nm'][1]:.3g} nm a side), at most "
                      f"{d['max_particles_per_field']} particles each; backend {d['backend']}")
        for w in d["warnings"]:
            console.print(f"  [yellow]warning:[/] {w}")
    else:
        console.print(f"  images {shape[0]}x{shape[1]} px")
    if "seconds_per_sample" in d:
        console.print(f"  {d['seconds_per_sample']:.3g} s per sample here (mean of {time_samples}): about "
                      f"{hms(d['hours_one_worker'] * 3600)} for all {d['samples']} on one worker")
    ref = d["reference_content_sha256"]
    if ref:
        refs = ref if isinstance(ref, dict) else {"any device": ref}
        console.print("  reference builds: " + ", ".join(f"{k} {v[:16]}…" for k, v in refs.items()))


@app.command("schema")
@handle_errors
def recipe_schema_cmd():
    """Print the JSON Schema of recipe files (for editor validation and completion)."""
    print(json.dumps(recipe_json_schema(), indent=1))
