"""HTML pages of the browser, the same for the local server and for the files of ``--static``.

Every page is a Jinja template with autoescaping on: entries are LLM output and may hold markup, and a
``<script>`` in a title is shown as text. Links are relative (``entry/ID.html`` from the top level,
``../entry/ID.html`` from one level down), so the written pages work opened from disk.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape

from .data import BrowseData, usefulness_of

TEMPLATES = Path(__file__).parent / "templates"
STATUSES = ("improved", "worsened", "same")


def page_name(identifier: Any) -> str:
    """A file name for an id, one per id: letters, digits and ``-`` kept, ``_`` doubled, any other character
    written as ``_`` and its UTF-8 bytes in hex (``E1-x/y`` -> ``E1-x_2fy``, ``E1-x_y`` -> ``E1-x__y``)."""
    return re.sub(r"[^A-Za-z0-9-]", lambda m: "__" if m.group() == "_" else
                  "_" + m.group().encode("utf-8").hex(), str(identifier))


def script_json(text: str) -> str:
    """JSON text made safe inside an HTML ``<script>``: no ``<``, ``>`` or ``&`` is left for the HTML parser
    to read (a title holding ``<!--<script>`` would otherwise swallow the rest of the page)."""
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


class Pages:
    """Renders the browser's pages from a ``BrowseData``."""

    def __init__(self, data: BrowseData, static: bool = False):
        self.data = data
        self.static = static
        self.env = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(default=True),
                               trim_blocks=True, lstrip_blocks=True)
        self.env.filters["page_name"] = page_name
        self.by_page_name = {page_name(e.id): e.id for e in data.hek.entries}

    def _render(self, template: str, root: str, nav: str, title: str, **values: Any) -> str:
        return self.env.get_template(template).render(
            root=root, nav=nav, title=title, version=self.data.hek.version, static=self.static,
            usefulness_of=lambda entry_id: usefulness_of(self.data.usefulness, entry_id), pageable=not self.static,
            **values)

    def entry_id(self, name: str) -> str:
        if name not in self.by_page_name:
            raise KeyError(name)
        return self.by_page_name[name]

    def index(self, page: int = 1) -> str:
        return self._render("index.html.jinja", "", "tree", "Hierarchy", data=self.data.hierarchy_page(page))

    def entry(self, entry_id: str, page: int = 1) -> str:
        view = self.data.entry(entry_id, page)
        return self._render("entry.html.jinja", "../", "tree", view["entry"].title, data=view)

    def provenance(self, entry_id: str) -> str:
        view = self.data.provenance(entry_id)
        return self._render("provenance.html.jinja", "../", "tree", "Provenance", data=view)

    def search(self, query: str | None) -> str:
        view = None if self.static or not query else self.data.search(query)
        titles = "[]"
        if self.static:  # every entry's page, level and title, for the word search of the saved pages
            rows = [[page_name(e.id), e.level, e.title] for e in self.data.hek.entries]
            titles = script_json(json.dumps(rows, ensure_ascii=False))
        return self._render("search.html.jinja", "", "search", "Search", data=view, titles=titles)

    def runs(self, status: str = "all") -> str:
        return self._render("runs.html.jinja", "", "runs", "Runs", data=self.data.runs(status))

    def run(self, question_id: str) -> str:
        view = self.data.run_question(question_id)
        return self._render("run.html.jinja", "../", "runs", "Run", data=view)

    def problem(self, message: str) -> str:
        return self._render("problem.html.jinja", "", "", "Problem", message=message)

    def versions(self) -> str:
        return self._render("versions.html.jinja", "", "versions", "Versions", data=self.data.versions())

    def run_question_id(self, name: str) -> str:
        pair = self.data.run_pair
        for row in pair.rows if pair is not None else []:
            if page_name(row["question_id"]) == name:
                return row["question_id"]
        raise KeyError(name)


STATIC_MARKER = ".hiexp-browse.json"
"""The file that marks a directory as pages written by ``hiexp browse --static`` (which may replace it)."""


def is_static_site(directory: str | Path) -> bool:
    """Pages written by ``browse --static``: the marker, or (older copies) every page this command writes."""
    directory = Path(directory)
    if (directory / STATIC_MARKER).is_file():
        return True
    return all((directory / name).is_file() for name in ("index.html", "search.html", "versions.html", "runs.html")) \
        and (directory / "entry").is_dir()


def write_static(data: BrowseData, out_dir: str | Path, show_progress: bool = True, overwrite: bool = False) -> Path:
    """Write every page as a file under ``out_dir`` (opened from disk, no server); returns the index path.

    The pages are written into a new directory that replaces ``out_dir`` whole when done, so a re-write for
    another HEK leaves none of the old pages, and a directory that is not a copy of these pages is never
    replaced without ``overwrite``. A second writer of the same ``out_dir`` stops at once."""
    import shutil

    from hiexp.io import atomic_directory, exclusive_output

    target = Path(out_dir)
    with exclusive_output(target, "hiexp browse --static"):
        # holding the lock, any temporary copy beside the target is a killed run's: remove it
        for stale in target.parent.glob(f".{target.name}.*.tmp"):
            shutil.rmtree(stale, ignore_errors=True)
        with atomic_directory(target, is_static_site, overwrite, what="copy of the browser pages") as tmp:
            _write_pages(data, tmp, show_progress)
    return target / "index.html"


def _write_pages(data: BrowseData, out: Path, show_progress: bool) -> None:
    from hiexp.io import atomic_write_json, atomic_write_text
    from hiexp.progress import progress_bar

    atomic_write_json(out / STATIC_MARKER, {"hek_version": data.hek.version})
    pages = Pages(data, static=True)
    atomic_write_text(out / "index.html", pages.index(1))
    for number in range(2, data.pages() + 1):
        atomic_write_text(out / f"index-{number}.html", pages.index(number))
    atomic_write_text(out / "search.html", pages.search(None))
    atomic_write_text(out / "versions.html", pages.versions())
    atomic_write_text(out / "runs.html", pages.runs("all"))
    for status in STATUSES:
        atomic_write_text(out / f"runs-{status}.html", pages.runs(status))
    pair = data.run_pair
    for row in pair.rows if pair is not None else []:
        atomic_write_text(out / "run" / f"{page_name(row['question_id'])}.html", pages.run(row["question_id"]))
    with progress_bar() as progress:
        task = progress.add_task("writing pages", total=len(data.hek.entries), visible=show_progress)
        for entry in data.hek.entries:
            atomic_write_text(out / "entry" / f"{page_name(entry.id)}.html", pages.entry(entry.id))
            if entry.level == "E1" and entry.sources.get("trajectory_ids"):
                atomic_write_text(out / "provenance" / f"{page_name(entry.id)}.html", pages.provenance(entry.id))
            progress.advance(task)


__all__ = ["Pages", "page_name", "write_static"]
