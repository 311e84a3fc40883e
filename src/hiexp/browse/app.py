"""The browser's local web app (FastAPI, read-only): the pages of ``pages.py`` under the same relative
URLs as the static files, plus search by meaning, which needs the HEK's embedder and so a server."""

from __future__ import annotations

from typing import Any

from .data import BrowseData
from .pages import STATUSES, Pages


def make_app(data: BrowseData) -> Any:
    from fastapi import FastAPI, HTTPException, Query
    from fastapi.responses import HTMLResponse, RedirectResponse

    from hiexp.errors import HiexpError

    pages = Pages(data)
    app = FastAPI(title="hiexp browse", docs_url=None, redoc_url=None, openapi_url=None)

    @app.exception_handler(HiexpError)
    def explained(request: Any, exc: HiexpError) -> HTMLResponse:
        """A file that changed under the browser is said in one line on the page, not as a traceback."""
        return HTMLResponse(pages.problem(str(exc)), status_code=500)

    def found(render, *args):
        try:
            return HTMLResponse(render(*args))
        except KeyError:
            raise HTTPException(status_code=404, detail="no such page") from None

    @app.get("/")
    def home():
        return RedirectResponse("index.html")

    @app.get("/index.html", response_class=HTMLResponse)
    def index():
        return pages.index(1)

    @app.get("/index-{page}.html", response_class=HTMLResponse)
    def index_page(page: int):
        return pages.index(page)

    @app.get("/entry/{name}.html", response_class=HTMLResponse)
    def entry(name: str, page: int = Query(1, ge=1)):
        return found(lambda: pages.entry(pages.entry_id(name), page))

    @app.get("/provenance/{name}.html", response_class=HTMLResponse)
    def provenance(name: str):
        return found(lambda: pages.provenance(pages.entry_id(name)))

    @app.get("/search.html", response_class=HTMLResponse)
    def search(q: str = Query("", max_length=2000)):
        return pages.search(q)

    @app.get("/runs.html", response_class=HTMLResponse)
    def runs():
        return pages.runs("all")

    @app.get("/runs-{status}.html", response_class=HTMLResponse)
    def runs_filtered(status: str):
        if status not in STATUSES:
            raise HTTPException(status_code=404, detail="no such page")
        return pages.runs(status)

    @app.get("/run/{name}.html", response_class=HTMLResponse)
    def run(name: str):
        return found(lambda: pages.run(pages.run_question_id(name)))

    @app.get("/versions.html", response_class=HTMLResponse)
    def versions():
        return pages.versions()

    return app


def free_port(host: str = "127.0.0.1") -> int:
    import socket

    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


__all__ = ["free_port", "make_app"]
