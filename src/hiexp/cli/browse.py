"""``hiexp browse``: the HEK browser, as a local web app or as pages written to disk."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from hiexp.cli.checks import cosine


def browse_command(
    hek_dir: Annotated[str, typer.Argument(metavar="HEK", help="HEK directory (or a shipped name such as demo).")],
    runs: Annotated[list[Path] | None, typer.Argument(metavar="[RUN_WITHOUT RUN_WITH]", help="Two `hiexp eval` "
                                                       "run directories on the same questions, without and with "
                                                       "the HEK, for the Runs page.")] = None,
    static: Annotated[Path | None, typer.Option("--static", help="Write the pages into this directory (they work "
                                                                 "opened from disk) instead of serving them.")]
    = None,
    host: Annotated[str, typer.Option(help="Address to serve on (local only by default).")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535, help="Port (0 = a free one, printed).")] = 0,
    trajectories: Annotated[list[Path] | None, typer.Option("--trajectories", help="Trajectory files the E1 "
                                                             "entries were distilled from, when the paths in the "
                                                             "HEK manifest do not resolve here.")] = None,
    threshold: Annotated[float, typer.Option(callback=cosine, help="E1 threshold shown by the search page (the agent's "
                                                  "--threshold).")] = 0.8,
    open_browser: Annotated[bool, typer.Option("--open/--no-open", help="Open the page in a browser when one "
                                                                        "is available.")] = True,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="With --static: write into a directory that is "
                                                                "not empty and not an earlier output.")] = False,
) -> None:
    """Browse a HEK: the hierarchy with usage and usefulness, search by words and meaning, each E1 entry's
    successful and failed source trajectories, runs with vs without experience, and versions."""
    from hiexp.browse.data import BrowseData
    from hiexp.errors import HiexpError

    run_dirs = list(runs or [])
    if len(run_dirs) not in (0, 2):
        raise HiexpError(f"give two run directories (without, with the HEK), not {len(run_dirs)}")
    data = BrowseData(hek_dir, run_dirs, trajectories=list(trajectories or []), threshold=threshold)
    if static is not None:
        from hiexp.browse.pages import is_static_site, write_static
        from hiexp.io import check_output_dir

        check_output_dir(static, is_static_site, overwrite, what="copy of the browser pages",
                         inputs=[hek_dir, *run_dirs, *(trajectories or [])])  # before any work
        index = write_static(data, static, overwrite=overwrite)
        typer.echo(f"wrote the pages of HEK {data.hek.version}: open {index}")
        return
    import uvicorn

    from hiexp.browse.app import free_port, make_app

    port = port or free_port(host)
    url = f"http://{host}:{port}/index.html"
    typer.echo(f"browsing HEK {data.hek.version} at {url} (Ctrl-C to stop)")
    if open_browser:
        import threading
        import webbrowser

        try:
            webbrowser.get()
        except webbrowser.Error:
            pass
        else:
            threading.Timer(1.0, webbrowser.open, args=(url,)).start()
    uvicorn.run(make_app(data), host=host, port=port, log_level="warning")


def register(app: typer.Typer) -> None:
    """Add ``browse`` to the ``hiexp`` app."""
    app.command("browse")(browse_command)
