"""The HEK browser in a real headless Chromium: the tree expands, search finds the entry the agent would
get, provenance shows both trajectories, markup in entries is text, runs filter, versions diff, and the
static pages work from disk."""

from __future__ import annotations

import time

from .conftest import SCRIPT_TITLE, screenshot


def test_the_tree_expands_to_show_children(page, server):
    page.goto(f"{server}/index.html")
    first = page.locator("#tree > details").first
    assert first.get_attribute("open") is None
    child = first.locator("details").first
    assert not child.is_visible()
    first.locator("summary").first.click()
    assert first.get_attribute("open") == "" and child.is_visible()
    child.locator("summary").first.click()
    assert child.locator("ul.leaves li").first.is_visible()
    assert "E1)" in first.locator("summary").first.inner_text()  # counts
    page.locator("details").evaluate_all("nodes => nodes.forEach(n => n.open = true)")
    screenshot(page, "hierarchy")


def test_search_returns_the_entry_the_agent_would_be_told(page, server, browse_fixture):
    page.goto(f"{server}/search.html")
    page.fill("#q", "quote the full name of the director")
    page.click("#go")
    match = page.locator("#e1-match")
    assert "quote the full name of the director" in match.inner_text()
    assert "passes" in match.inner_text() and "1.000" in match.inner_text()
    assert page.locator("#meaning-results li").count() >= 1
    assert "quote the full name of the director" in page.locator("#word-results").inner_text()
    screenshot(page, "search")


def test_provenance_shows_both_trajectories_with_the_decisive_query(page, server):
    page.goto(f"{server}/entry/E1-00.html")
    page.click("#provenance-link")
    successes, failures = page.locator("#successes"), page.locator("#failures")
    assert "Spielberg" in successes.inner_text() and "Benchley" in failures.inner_text()
    assert "Jaws 1975 film director" in successes.locator(".step.highlight").inner_text()
    assert failures.locator(".step.highlight").count() == 0
    assert successes.locator(".step.think").count() == 1 and successes.locator(".step.passages").count() == 1
    screenshot(page, "provenance")


def test_markup_in_an_entry_is_shown_as_text(page, server):
    page.goto(f"{server}/entry/E1-xss.html")
    assert page.locator("#title").inner_text() == SCRIPT_TITLE
    assert page.evaluate("typeof window.pwned") == "undefined"
    assert page.locator("img").count() == 0 and "<img" in page.locator("#description").inner_text()
    page.goto(f"{server}/index.html")
    assert page.evaluate("typeof window.pwned") == "undefined"


def test_runs_page_filters_improved_and_worsened(page, server):
    page.goto(f"{server}/runs.html")
    assert page.locator("#runs tr.improved").count() == 1 and page.locator("#runs tr.worsened").count() == 1
    screenshot(page, "runs")
    page.goto(f"{server}/runs-worsened.html")
    assert page.locator("#runs tr").count() == 2 and "Capital of France" in page.locator("#runs").inner_text()
    page.goto(f"{server}/runs-improved.html")
    page.locator("#runs a").first.click()
    assert "Without experience: Benchley" in page.content() and "With experience: Spielberg" in page.content()
    assert page.locator(".step.experience").count() == 1  # the experience injected, in the with-run


def test_versions_page_shows_what_the_update_added(page, server):
    page.goto(f"{server}/versions.html")
    versions = page.locator("section.version")
    assert versions.count() == 2 and "1 E1 added" in versions.first.inner_text()
    versions.first.locator("summary").first.click()
    assert "zebra saxophone lesson" in versions.first.inner_text()
    screenshot(page, "versions")


def test_static_pages_work_from_disk(page, browse_fixture, tmp_path):
    from hiexp.browse.data import BrowseData
    from hiexp.browse.pages import write_static

    data = BrowseData(browse_fixture["hek"], browse_fixture["runs"], trajectories=[browse_fixture["trajectories"]],
                      embedder=browse_fixture["embedder"])
    index = write_static(data, tmp_path / "site", show_progress=False)
    page.goto(index.as_uri())
    page.locator("#tree > details summary").first.click()
    page.locator("#tree a").first.click()
    assert "entry" in page.url and page.locator("#title").is_visible()
    page.goto((tmp_path / "site" / "search.html").as_uri() + "?q=full+name")
    found = page.locator("#word-results").inner_text()
    assert all(f"quote the full name of the {who}" in found for who in ("director", "author", "actor"))
    page.goto((tmp_path / "site" / "provenance" / "E1-00.html").as_uri())
    assert "Benchley" in page.locator("#failures").inner_text()


def test_a_100k_entry_hierarchy_page_opens_quickly(page, tmp_path):
    """Load time is reported, not asserted (tests never assert wall-clock times): the page is paged by root."""
    import numpy as np

    from hiexp.browse.app import free_port, make_app
    from hiexp.browse.data import BrowseData
    from hiexp.experience.hek import HEK
    from hiexp.experience.schema import Entry

    n_e1, per_e2, per_e3 = 100_000, 50, 10
    entries = [Entry(id=f"E1-{i}", level="E1", title=f"lesson {i}") for i in range(n_e1)]
    e2 = [Entry(id=f"E2-{j}", level="E2", title=f"pattern {j}",
                children=[f"E1-{i}" for i in range(j * per_e2, (j + 1) * per_e2)]) for j in range(n_e1 // per_e2)]
    e3 = [Entry(id=f"E3-{k}", level="E3", title=f"strategy {k}",
                children=[f"E2-{j}" for j in range(k * per_e3, (k + 1) * per_e3)]) for k in range(len(e2) // per_e3)]
    vectors = np.zeros((n_e1 + len(e2) + len(e3), 8), dtype=np.float32)
    vectors[:, 0] = 1.0
    HEK(entries + e2 + e3, vectors).save(tmp_path / "big")
    started = time.perf_counter()
    data = BrowseData(tmp_path / "big")
    import threading

    import uvicorn

    port = free_port()
    instance = uvicorn.Server(uvicorn.Config(make_app(data), host="127.0.0.1", port=port, log_level="warning"))
    threading.Thread(target=instance.run, daemon=True).start()
    while not instance.started:
        time.sleep(0.05)
    loaded = time.perf_counter() - started
    started = time.perf_counter()
    page.goto(f"http://127.0.0.1:{port}/index.html")
    shown = time.perf_counter() - started
    assert page.locator("#tree > details").count() == 50 and "Page 1 of 4" in page.content()
    print(f"100k-entry HEK: loaded in {loaded:.2f} s, hierarchy page in {shown:.2f} s")
    instance.should_exit = True
