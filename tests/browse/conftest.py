"""A small HEK with sources, usefulness, two runs and a parent version, served to a real headless Chromium.

Chromium is Debian's (``.ci/run`` installs it), driven by Playwright with ``executable_path``; nothing is
downloaded. Without either, the browser tests are skipped with the reason.
"""

from __future__ import annotations

import json
import os
import shutil
import threading
import time
from pathlib import Path

import pytest

from hiexp.contracts.trajectory import Trajectory, Turn
from hiexp.experience.build import BuildConfig, build_hek
from hiexp.experience.schema import Entry
from hiexp.experience.usefulness import compute_usefulness
from hiexp.search.embed import load_embedder
from tests.experience.test_build_hek import e1_entries, summarizer

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
SCRIPT_TITLE = "<script>window.pwned = 1</script> quote <b>names</b>"


def trajectory(tid: str, question: str, answer: str, queries: list[str], reward: float, seen=()) -> Trajectory:
    turns = [Turn("prompt", "system and question")]
    if seen:
        turns.append(Turn("experience", "<experience>advice</experience>", meta={"entry_ids": list(seen)}))
    for q in queries:
        turns.append(Turn("policy", f"<think>I need {q}</think>\n<search>{q}</search>"))
        turns.append(Turn("tool", f"<information>Doc 1(Title: T) a passage about {q}</information>"))
    turns.append(Turn("policy", f"<answer>{answer}</answer>"))
    qid = tid.split("#")[0]
    return Trajectory(id=tid, question_id=qid, sample=int(tid.split("#")[1]), format="search_r1", model="m",
                      question=question, golden_answers=["Spielberg"], turns=turns, queries=queries, answer=answer,
                      rewards={"em": reward, "cem": reward, "f1": reward}, num_searches=len(queries))


@pytest.fixture(scope="session")
def browse_fixture(tmp_path_factory):
    root = tmp_path_factory.mktemp("browse")
    os.environ.setdefault("HIEXP_CACHE", str(root / "cache"))
    question = "Who directed the film Jaws?"
    source = [trajectory("q1#0", question, "Spielberg", ["Jaws 1975 film director"], 1.0),
              trajectory("q1#1", question, "Benchley", ["Jaws"], 0.0)]
    traj_file = root / "source.jsonl"
    traj_file.write_text("".join(json.dumps(t.to_dict()) + "\n" for t in source))
    entries = e1_entries()
    entries[0] = entries[0].model_copy(update={
        "description": "Search 'Jaws 1975 film director' with the year, not the bare title.",
        "sources": {"question_id": "q1", "question": question, "trajectory_ids": ["q1#0", "q1#1"],
                    "success_ids": ["q1#0"], "failure_ids": ["q1#1"]}})
    entries.append(Entry(id="E1-xss", level="E1", title=SCRIPT_TITLE, description="<img src=x onerror=alert(1)>"))
    embedder = load_embedder("hashing-256")
    hek = build_hek(entries, root / "hek", embedder, summarizer(), BuildConfig(thresholds=(1.2, 1.5)),
                    show_progress=False)
    manifest = json.loads((root / "hek" / "manifest.json").read_text())
    # two evaluation runs on the same questions: without and with the HEK
    runs = {}
    for name, answers, seen in (("without", ["Benchley", "Paris"], ()), ("with", ["Spielberg", "Lyon"], ("E1-00",))):
        run = root / name
        (run / "trajectories").mkdir(parents=True)
        records = [trajectory("q1#0", question, answers[0], ["Jaws director"], float(answers[0] == "Spielberg"), seen),
                   trajectory("q2#0", "Capital of France?", answers[1], ["France capital"],
                              float(answers[1] == "Paris"), seen)]
        (run / "trajectories" / "hotpotqa.jsonl").write_text("".join(json.dumps(r.to_dict()) + "\n" for r in records))
        runs[name] = (run, records)
    table = compute_usefulness([*runs["without"][1], *runs["with"][1]], "cem")
    table.save(root / "hek" / "usefulness.json")
    # a child version with one entry more
    from hiexp.experience.update import update_hek

    child, _ = update_hek(hek, [Entry(id="E1-new", level="E1", title="zebra saxophone lesson", description="d")],
                          embedder, summarizer())
    child.manifest["parent"]["path"] = str(root / "hek")
    child.save(root / "hek-v2")
    return {"root": root, "hek": root / "hek", "hek_v2": root / "hek-v2", "trajectories": traj_file,
            "runs": [runs["without"][0], runs["with"][0]], "embedder": embedder, "manifest": manifest}


@pytest.fixture(scope="module")
def browser():
    """Chromium for one test module. Playwright's sync API keeps an event loop running in the main thread
    while it is open, so it must close before other modules' tests (which may start their own loops)."""
    playwright_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
    if not Path(CHROMIUM).exists():
        pytest.skip("Debian's chromium is not installed (.ci/run installs it)")
    with playwright_api.sync_playwright() as p:
        instance = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield instance
        instance.close()


@pytest.fixture(scope="session")
def server(browse_fixture):
    """The browser app of the fixture HEK (and its runs) on a free local port."""
    import uvicorn

    from hiexp.browse.app import free_port, make_app
    from hiexp.browse.data import BrowseData

    data = BrowseData(browse_fixture["hek_v2"], browse_fixture["runs"],
                      trajectories=[browse_fixture["trajectories"]], embedder=browse_fixture["embedder"],
                      threshold=0.3)
    port = free_port()
    instance = uvicorn.Server(uvicorn.Config(make_app(data), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=instance.run, daemon=True)
    thread.start()
    for _ in range(100):
        if instance.started:
            break
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    instance.should_exit = True
    thread.join(timeout=5)


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1200, "height": 900})
    tab = context.new_page()
    yield tab
    context.close()


def screenshot(page, name: str) -> None:
    """Save a screenshot into $HIEXP_SCREENSHOTS (docs/images when the README's pictures are refreshed)."""
    target = os.environ.get("HIEXP_SCREENSHOTS")
    if target:
        Path(target).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(target) / f"browse-{name}.png"), full_page=True)
