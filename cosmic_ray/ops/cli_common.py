"""What every ``cosmic-ray`` command shares: the settings, a failure with its reason, one JSON line out."""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING, NoReturn

import typer

if TYPE_CHECKING:
    from cosmic_ray.core.config import Settings


def settings() -> Settings:
    """The settings from the environment (and ``.env``)."""
    from cosmic_ray.core.config import Settings  # deferred: pydantic-settings (~0.3 s) is not needed by --help

    return Settings()


def fail(message: str, code: int = 1) -> NoReturn:
    """End the command with ``error: message`` on stderr and exit status ``code``."""
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def emit(obj: object) -> None:
    """The command's result: one JSON line on stdout (logs go to stderr)."""
    sys.stdout.write(json.dumps(obj, default=str) + "\n")
    sys.stdout.flush()
