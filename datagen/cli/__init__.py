"""`datagen`: generate, inspect, preview and verify simulated-HRTEM nanoparticle datasets.

The command groups live one per module: ``dataset`` (catalogs, generate, info, preview, verify,
compare, card), ``recipe`` (``datagen recipe``) and ``structure`` (``datagen structure``); ``common``
holds the error handling both programs share. To add a command: a function in the module of its
group (or a new module with its own ``typer.Typer``), registered below.
"""

from __future__ import annotations

from typing import Annotated

import typer

from datagen import __version__
from datagen.cli import dataset, recipe, structure
from datagen.cli.common import version_callback

app = typer.Typer(name="datagen", help=__doc__.splitlines()[0].strip("`").split(": ", 1)[-1], no_args_is_help=True,
                  add_completion=False, pretty_exceptions_enable=False)


@app.callback()
def _main(
    version: Annotated[bool, typer.Option("--version", help="Show the version and exit.", is_eager=True,
                                          callback=version_callback("datagen", __version__))] = False,
):
    """Generate, inspect, preview and verify simulated-HRTEM nanoparticle datasets."""


for _name, _command in dataset.COMMANDS.items():
    app.command(_name)(_command)
app.add_typer(recipe.app, name="recipe")
app.add_typer(structure.app, name="structure", help="Build and inspect single atomic models.")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
