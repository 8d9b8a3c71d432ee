"""What both command-line programs (datagen, classifier) share: the one error handler, the --version
option and the consoles."""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable

import typer
from rich.console import Console

from datagen.errors import DatagenError

console = Console(highlight=False, soft_wrap=True)
err_console = Console(stderr=True, highlight=False, soft_wrap=True)


def handle_errors(func: Callable) -> Callable:
    """Turn user errors into one line on stderr and a non-zero exit; Ctrl-C into exit code 130.

    DatagenError (bad recipe, store, parameter, missing program), ValueError from parameter
    checks and OSError (unreadable or unwritable files) are the user's to fix, so they are shown as
    one line; anything else is a bug and keeps its traceback.
    """

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        except BrokenPipeError:  # output piped into a reader that stopped (`| head`): not an error
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit
            raise typer.Exit(0) from None
        except (DatagenError, ValueError, OSError) as err:
            text = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            err_console.print(f"[bold red]error:[/] {text}", markup=True)
            raise typer.Exit(1) from None
        except KeyboardInterrupt:
            err_console.print("interrupted: what was written is kept; rerun the same command to resume")
            raise typer.Exit(130) from None

    return wrapper


def version_callback(name: str, version: str) -> Callable[[bool], None]:
    def callback(value: bool):
        if value:
            typer.echo(f"{name} {version}")
            raise typer.Exit()

    return callback


def hms(seconds: float) -> str:
    """``seconds`` as H:MM:SS ("-" for NaN)."""
    if seconds != seconds:
        return "-"
    s = int(round(seconds))
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"
