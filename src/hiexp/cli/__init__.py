"""The ``hiexp`` command, the top layer: one module here per group of commands, each adding its commands
to the app with ``register(app)``; heavy imports stay inside the commands, so ``hiexp --help`` is fast.

A ``HiexpError`` raised anywhere below is printed as one clear line and exits with status 2.
"""

from __future__ import annotations

import importlib
import os
import sys

import typer

from hiexp import __version__
from hiexp.errors import HiexpError

app = typer.Typer(
    name="hiexp",
    help="Search agents guided by Hierarchical Experience: rollouts, distillation, HEK, guided search, RL.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)



@app.callback()
def _root(
    http_timeout: float = typer.Option(
        None, "--http-timeout", min=0.001, metavar="SECONDS",
        help="Deadline of one try for the whole answer of a server given as a URL (model or retriever); "
             "default 120 s for models, 30 s for retrievers.",
    ),
    http_retries: int = typer.Option(
        None, "--http-retries", min=0, metavar="N",
        help="Retries of a server request after a connection error, time-out, 429 or 5xx (default 4 for "
             "models, 3 for retrievers).",
    ),
) -> None:
    """hiexp: search agents guided by Hierarchical Experience."""
    from hiexp.components import HTTP

    HTTP.timeout, HTTP.retries = http_timeout, http_retries


# Modules that expose ``register(app)``; the order is the order of ``hiexp --help``.
COMMAND_MODULES = [
    "hiexp.cli.demo",
    "hiexp.cli.data",
    "hiexp.cli.search",
    "hiexp.cli.llm",
    "hiexp.cli.agent",
    "hiexp.cli.eval",
    "hiexp.cli.score",
    "hiexp.cli.compare",
    "hiexp.cli.experience",
    "hiexp.cli.train",
]

for _name in COMMAND_MODULES:
    importlib.import_module(_name).register(app)


@app.command()
def version() -> None:
    """Print the hiexp version."""
    typer.echo(__version__)


def main() -> None:
    """Entry point: run the app, turning user-facing errors into one line on stderr."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    try:
        app()
    except HiexpError as exc:
        typer.secho(f"error: {exc}", fg="red", err=True)
        sys.exit(2)
    except KeyboardInterrupt:
        typer.secho("interrupted: finished work is saved; re-run the same command to resume", err=True)
        sys.exit(130)
