"""``datagen structure``: build one atomic model and write it to a file for inspection.

Thin: parses options (lengths in nm, as in the recipes), calls :func:`build_sample`, writes with
``ase.io.write`` and prints one summary line.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import ase.io
import numpy as np
import typer

from datagen.cli.common import handle_errors
from datagen.errors import DatagenError
from datagen.structures import PARTICLE_KINDS, SampleSpec, build_sample

FORMATS = {".xyz": "extxyz", ".extxyz": "extxyz", ".cif": "cif", ".traj": "traj"}
SUPPORTS = {"c": ("C", None), "si": ("C", "Si"), "none": (None, None)}

app = typer.Typer(help="Atomic models: nanoparticles (crystalline, twinned, amorphous) on amorphous films.",
                  no_args_is_help=True, add_completion=False)


@app.callback()
def _group() -> None:
    """Atomic models: nanoparticles (crystalline, twinned, amorphous) on amorphous films."""


def spec_from_options(kind: str, element: str, diameter_nm: float, support: str, thickness_nm: float,
                      box_nm: float, lattice_constant: float | None) -> SampleSpec:
    """The :class:`SampleSpec` for the CLI options (nm → Å); DatagenError naming a bad option."""
    if kind not in PARTICLE_KINDS:
        raise DatagenError(f"KIND must be one of {', '.join(PARTICLE_KINDS)}, got {kind!r}")
    if support.lower() not in SUPPORTS:
        raise DatagenError(f"--support must be C, Si or none, got {support!r}")
    film, replacement = SUPPORTS[support.lower()]
    return SampleSpec(kind=kind, element=element, diameter=10.0 * diameter_nm, support=film,
                      support_substitute=replacement, thickness=10.0 * thickness_nm, box=(10.0 * box_nm,) * 3,
                      lattice_constant=lattice_constant)


@app.command()
@handle_errors
def build(
    kind: Annotated[str, typer.Argument(help=f"Particle kind: {', '.join(PARTICLE_KINDS)}.")],
    out: Annotated[Path, typer.Option("--out", help="Output file: .xyz/.extxyz, .cif or .traj (via ase).")],
    element: Annotated[str, typer.Option(help="Particle element (chemical symbol).")] = "Au",
    diameter_nm: Annotated[float, typer.Option(help="Particle diameter [nm] (the paper: 1–3).")] = 2.0,
    support: Annotated[str, typer.Option(help="Film: C (amorphous carbon), Si (the same film with C→Si, "
                                               "the paper's stronger background) or none.")] = "C",
    thickness_nm: Annotated[float, typer.Option(help="Film thickness [nm] (the paper: 1–3).")] = 2.0,
    box_nm: Annotated[float, typer.Option(help="Edge of the cubic box [nm] (the paper: 6).")] = 6.0,
    seed: Annotated[int, typer.Option(help="Seed of the random generator; a seed fixes the model.")] = 0,
    lattice_constant: Annotated[float | None, typer.Option(help="Lattice constant [Å]; default ase's.")] = None,
) -> None:
    """Build one sample model (particle on film in a box) and write it to --out.

    Atom tags are 1 for the particle and 0 for the film (kept by .xyz and .traj; .xyz also keeps the
    "part" and "domain" arrays and the provenance; .cif keeps positions and cell only).
    """
    fmt = FORMATS.get(out.suffix.lower())
    if fmt is None:
        raise DatagenError(f"--out must end in {', '.join(FORMATS)}, got {out.name!r}")
    spec = spec_from_options(kind, element, diameter_nm, support, thickness_nm, box_nm, lattice_constant)
    try:
        atoms = build_sample(spec, np.random.default_rng(seed))
    except ValueError as exc:
        raise DatagenError(str(exc)) from None
    atoms.set_tags(atoms.arrays["part"])
    out.parent.mkdir(parents=True, exist_ok=True)
    ase.io.write(out, atoms, format=fmt)
    info = atoms.info
    n_particle = int((atoms.arrays["part"] == 1).sum())
    typer.echo(f"wrote {out}: {kind} ({PARTICLE_KINDS[kind]}) {element}, {n_particle} atoms, "
               f"d = {info['diameter'] / 10:.2f} nm, {info['n_domains']} domain(s); "
               f"film {info['support_element']} {len(atoms) - n_particle} atoms; box {box_nm:g} nm; seed {seed}")
