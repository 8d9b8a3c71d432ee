"""`classifier`: train, evaluate and apply crystallinity classifiers on datagen datasets."""

from __future__ import annotations

from typing import Annotated

import typer

from classifier import __version__
from datagen.clitools import version_callback

app = typer.Typer(name="classifier", help=__doc__.splitlines()[0], no_args_is_help=True,
                  add_completion=False, pretty_exceptions_enable=False)


@app.callback()
def _main(
    version: Annotated[bool, typer.Option("--version", help="Show the version and exit.", is_eager=True,
                                          callback=version_callback("classifier", __version__))] = False,
):
    """Train, evaluate and apply crystallinity classifiers on datagen datasets."""


def main() -> None:
    app()
