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
    http_concurrency: int = typer.Option(
        None, "--http-concurrency", min=1, metavar="N",
        help="Model requests in flight per server given as a URL (default 8); several servers: "
             "--model http://a:8000/v1,http://b:8000/v1.",
    ),
    http_routing: str = typer.Option(
        None, "--http-routing", metavar="POLICY",
        help="How model requests are spread over several servers: least_loaded (default) or round_robin.",
    ),
) -> None:
    """hiexp: search agents guided by Hierarchical Experience."""
    from hiexp.components import HTTP
    from hiexp.progress import show_logs

    show_logs()
    HTTP.timeout, HTTP.retries = http_timeout, http_retries
    HTTP.concurrency, HTTP.routing = http_concurrency, http_routing


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
    "hiexp.cli.browse",
    "hiexp.cli.train",
]

for _name in COMMAND_MODULES:
    importlib.import_module(_name).register(app)


@app.command()
def version() -> None:
    """Print the hiexp version."""
    typer.echo(__version__)


def _has_option(argv: list[str], option: str) -> bool:
    """Whether the command named in ``argv`` (after the root options) takes ``option``."""
    import typer.main

    group = typer.main.get_command(app)
    takes_value = {opt for p in group.params if not getattr(p, "is_flag", False) for opt in p.opts}
    words = iter(argv)
    for word in words:
        if word in takes_value:
            next(words, None)
        elif not word.startswith("-"):
            command = group.commands.get(word)  # type: ignore[attr-defined]
            return command is not None and any(option in p.opts for p in command.params)
    return False


def error_line(exc: HiexpError, argv: list[str]) -> str:
    """The one line a user sees; a skippable bad record names ``--skip-bad`` only where the command has it."""
    from hiexp.io import InputError

    message = " ".join(str(exc).split("\n"))
    if isinstance(exc, InputError) and exc.skippable and _has_option(argv, "--skip-bad"):
        message += "; use --skip-bad to skip such records"
    return f"error: {message}"


def main() -> None:
    """Entry point: run the app, turning user-facing errors into one line on stderr."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    try:
        app()
    except HiexpError as exc:
        typer.secho(error_line(exc, sys.argv[1:]), fg="red", err=True)
        sys.exit(2)
    except KeyboardInterrupt:
        typer.secho("interrupted: finished work is saved; re-run the same command to resume", err=True)
        sys.exit(130)
