"""``hiexp browse``: arguments checked before any work, ``--static`` writes pages and refuses what it did not write."""

from __future__ import annotations

from typer.testing import CliRunner

from hiexp.cli import app
from hiexp.errors import HiexpError


def test_static_pages_and_bad_arguments(browse_fixture, tmp_path):
    runner = CliRunner()
    one = runner.invoke(app, ["browse", str(browse_fixture["hek"]), str(browse_fixture["runs"][0]), "--static",
                              str(tmp_path / "site")])
    assert isinstance(one.exception, HiexpError) and "two run directories" in str(one.exception)
    missing = runner.invoke(app, ["browse", str(tmp_path / "nope"), "--static", str(tmp_path / "site")])
    assert isinstance(missing.exception, HiexpError) and "no such HEK directory" in str(missing.exception)
    ok = runner.invoke(app, ["browse", str(browse_fixture["hek"]), *map(str, browse_fixture["runs"]),
                             "--static", str(tmp_path / "site"), "--trajectories", str(browse_fixture["trajectories"])])
    assert ok.exit_code == 0, ok.output
    assert (tmp_path / "site" / "provenance" / "E1-00.html").exists() and (tmp_path / "site" / "runs.html").exists()
    again = runner.invoke(app, ["browse", str(browse_fixture["hek"]), "--static", str(tmp_path / "site")])
    assert again.exit_code == 0  # its own earlier output may be written again
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("mine")
    refused = runner.invoke(app, ["browse", str(browse_fixture["hek"]), "--static", str(tmp_path / "other")])
    assert isinstance(refused.exception, HiexpError) and (tmp_path / "other" / "notes.txt").read_text() == "mine"


def test_static_never_replaces_a_users_site_and_a_rewrite_leaves_no_old_page(browse_fixture, tmp_path):
    runner = CliRunner()
    site = tmp_path / "site"
    site.mkdir()
    (site / "index.html").write_text("<h1>my homepage</h1>")
    (site / "entry").mkdir()
    refused = runner.invoke(app, ["browse", str(browse_fixture["hek"]), "--static", str(site)])
    assert isinstance(refused.exception, HiexpError) and "--overwrite" in str(refused.exception)
    assert (site / "index.html").read_text() == "<h1>my homepage</h1>"
    pages = tmp_path / "pages"
    assert runner.invoke(app, ["browse", str(browse_fixture["hek"]), "--static", str(pages)]).exit_code == 0
    stale = pages / "entry" / "E1-stale.html"
    stale.write_text("a page of another HEK")
    assert runner.invoke(app, ["browse", str(browse_fixture["hek"]), "--static", str(pages)]).exit_code == 0
    assert not stale.exists() and (pages / "index.html").exists()


def test_page_names_are_one_per_id_and_the_saved_search_survives_any_title():
    from hiexp.browse.pages import page_name, script_json

    ids = ["E1-x/y", "E1-x_y", "E1-x_2fy", "E1-x y", "E1-é", "E1-x__y", "E1-x-y"]
    assert len({page_name(i) for i in ids}) == len(ids)
    assert all(set(page_name(i)) <= set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-") for i in ids)
    safe = script_json('[["E1", "E1", "<!--<script></script>&"]]')
    assert "<" not in safe and ">" not in safe and "&" not in safe
    import json

    assert json.loads(safe) == [["E1", "E1", "<!--<script></script>&"]]


from hypothesis import given  # noqa: E402
from hypothesis import strategies as st  # noqa: E402


@given(st.text(max_size=12), st.text(max_size=12))
def test_two_different_ids_never_share_a_page(a, b):
    from hiexp.browse.pages import page_name

    assert (page_name(a) == page_name(b)) == (a == b)


def test_a_trajectory_file_removed_or_garbled_while_serving_is_passed_over(browse_fixture, tmp_path):
    import shutil

    from fastapi.testclient import TestClient

    from hiexp.browse.app import make_app
    from hiexp.browse.data import BrowseData

    runs = [tmp_path / "without", tmp_path / "with"]
    for source, target in zip(browse_fixture["runs"], runs):
        shutil.copytree(source, target)
    trajectories = tmp_path / "t.jsonl"
    shutil.copy(browse_fixture["trajectories"], trajectories)
    data = BrowseData(browse_fixture["hek"], runs, trajectories=[trajectories], embedder=browse_fixture["embedder"])
    trajectories.unlink()  # removed after the browser started
    for path in runs[1].glob("trajectories/*.jsonl"):
        path.write_text('{"id": "x#0", "question_id": "x", "sample": 0, "format": "search_r1", "model": "m", '
                        '"rewards": {"cem": "high"}, "turns": "oops"}\n')
    with TestClient(make_app(data)) as client:
        for page in ("/index.html", "/runs.html", "/entry/E1-00.html", "/provenance/E1-00.html", "/versions.html"):
            response = client.get(page)
            assert response.status_code in (200, 404), (page, response.status_code)


KILLED_STATIC = """
import os, signal, sys
sys.path.insert(0, {root!r})
from hiexp.browse import pages
from hiexp.browse.data import BrowseData
from hiexp.search.embed import load_embedder
written = []
real = pages.Pages.entry
def entry(self, entry_id, page=1):
    written.append(entry_id)
    if os.environ.get("KILL_AT") and len(written) >= int(os.environ["KILL_AT"]):
        os.kill(os.getpid(), signal.SIGKILL)
    return real(self, entry_id, page)
pages.Pages.entry = entry
data = BrowseData(sys.argv[1], embedder=load_embedder("hashing-256"))
pages.write_static(data, sys.argv[2], show_progress=False)
"""


def test_static_pages_killed_with_minus_9_leave_the_earlier_copy_whole(browse_fixture, tmp_path):
    import hashlib
    import os
    import signal
    import subprocess
    import sys
    from pathlib import Path

    root = str(Path(__file__).resolve().parents[2])
    script = tmp_path / "killed.py"
    script.write_text(KILLED_STATIC.format(root=root))
    site = tmp_path / "site"
    args = [sys.executable, str(script), str(browse_fixture["hek"]), str(site)]
    assert subprocess.run(args, capture_output=True, timeout=300).returncode == 0

    def state():
        return {str(p.relative_to(site)): hashlib.sha256(p.read_bytes()).hexdigest()
                for p in sorted(site.rglob("*")) if p.is_file()}

    before = state()
    killed = subprocess.run(args, env={**os.environ, "KILL_AT": "3"}, capture_output=True, timeout=300)
    assert killed.returncode == -signal.SIGKILL
    assert state() == before  # the earlier copy, whole: the new pages were going into a temporary directory
    assert list(tmp_path.glob(".site.*.tmp"))  # the killed run's unfinished copy
    assert subprocess.run(args, capture_output=True, timeout=300).returncode == 0
    assert state().keys() == before.keys() and not list(tmp_path.glob(".site.*.tmp"))
