"""``hiexp.report``: what users and models wrote shows as text on every page, and the HEK tree links both ways."""

from __future__ import annotations

from html.parser import HTMLParser

import pytest

from hiexp.eval.compare import Comparison, DatasetComparison, Delta
from hiexp.report import HekSection, ReportInputs, Stage, write_report

HOSTILE = "<script>alert(1)</script>"
ESCAPED = "&lt;script&gt;alert(1)&lt;/script&gt;"


def comparison(warnings=()) -> Comparison:
    deltas = {m: Delta(m, 0.2, 0.5, 0.3, 0.1, 0.5) for m in ("em", "cem", "f1")}
    return Comparison("a", "b", {"hotpotqa": DatasetComparison("hotpotqa", 2, 0, 0, deltas)}, 100, 0, 0.95,
                      list(warnings))


ENTRIES = [
    {"id": "e3-1", "level": "E3", "title": f"principle {HOSTILE}", "description": f"why {HOSTILE}",
     "children": ["e2-1"]},
    {"id": "e2-1", "level": "E2", "title": "pattern", "description": "d", "children": ["e1-1"]},
    {"id": "e1-1", "level": "E1", "title": f"lesson {HOSTILE}", "description": "d",
     "sources": {"trajectory_ids": ["t1", "not-in-this-run"]}},
]
TRAJECTORIES = [
    {"id": "t1", "question_id": "q1", "sample": 0, "question": f"question {HOSTILE}",
     "golden_answers": [f"gold {HOSTILE}"], "answer": f"answer {HOSTILE}", "rewards": {"reward": 1.0},
     "num_searches": 1, "finish": "answer",
     "turns": [{"role": "prompt", "text": "p"}, {"role": "tool", "text": f"<information>passage {HOSTILE}"}]},
]


class Page(HTMLParser):
    def __init__(self, text: str):
        super().__init__()
        self.hrefs, self.ids, self.tags = [], set(), []
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        attrs = dict(attrs)
        if "href" in attrs:
            self.hrefs.append(attrs["href"])
        if "id" in attrs:
            self.ids.add(attrs["id"])


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    out = tmp_path_factory.mktemp("report")
    paths = write_report(out, ReportInputs(
        title=f"title {HOSTILE}", comparison=comparison([f"warning {HOSTILE}"]), entries=ENTRIES,
        trajectories=TRAJECTORIES, hek_version="1",
        extra_heks=[HekSection(f"extra {HOSTILE}", [], None, f"note {HOSTILE}")],
        settings={f"key {HOSTILE}": f"value {HOSTILE}"}, ablations={"variant": comparison()},
        stages=[Stage(f"stage {HOSTILE}", "done", 1.25)], notes=[f"note {HOSTILE}"], summary=f"summary {HOSTILE}",
    ))
    return {key: path.read_text(encoding="utf-8") for key, path in paths.items() if key != "chart"}


@pytest.mark.parametrize("page", ["html", "trajectories", "md"])
def test_a_hostile_string_is_shown_escaped_never_as_markup(report, page):
    text = report[page]
    assert "<script" not in text
    assert ESCAPED in text
    assert "script" not in Page(text).tags


def test_every_hostile_field_reaches_the_html_escaped(report):
    for field in ("title", "summary", "key", "value", "warning", "note", "stage", "extra", "principle", "why",
                  "lesson"):
        assert f"{field} {ESCAPED}" in report["html"], field
    for field in ("question", "gold", "answer", "passage"):
        assert f"{field} {ESCAPED}" in report["trajectories"], field


def test_the_tree_nests_and_links_both_ways(report):
    page, listing = Page(report["html"]), Page(report["trajectories"])
    assert {"entry-e3-1", "entry-e2-1", "entry-e1-1"} <= page.ids
    assert page.tags.count("ul") == 3  # E3 > E2 > E1, one list each
    assert "trajectories.html#traj-t1" in page.hrefs
    assert not any("not-in-this-run" in h for h in page.hrefs)  # no link to a trajectory this run lacks
    assert "report.html#entry-e1-1" in listing.hrefs and "traj-t1" in listing.ids
    assert "<p>(the HEK is empty)</p>" in report["html"]  # the extra section has no entries
    assert '  - <a id="entry-e2-1"></a>**E2** `e2-1` pattern: d' in report["md"]
    assert "(from [t1](trajectories.html#traj-t1))" in report["md"]


def test_the_tables_keep_their_numbers(report):
    assert "| hotpotqa | 2 | em | 20.0 | 50.0 | +30.0 |" in report["md"]
    assert "| variant | hotpotqa | 2 | em | 20.0 | 50.0 | +30.0 | [+10.0, +50.0] |" in report["md"]
    assert '<td class="pos">+30.0</td>' in report["html"]  # the main table colours the difference
    assert "1.2" in report["md"] and "<td>1.2</td>" in report["html"]


def test_a_hek_of_cases_alone_shows_each_case_with_its_searches_and_answer(tmp_path):
    case = {"id": "C-1", "level": "E1", "title": "Which is older, A or B?", "meta": {"kind": "case"},
            "sources": {"trajectory_ids": ["t1"]},
            "case": {"question_id": "q1", "question": "Which is older, A or B?", "answer": "A",
                     "steps": [{"query": "A founded", "docs": []}, {"query": f"B founded {HOSTILE}", "docs": []}]}}
    paths = write_report(tmp_path, ReportInputs(title="t", comparison=comparison(), entries=[case],
                                                trajectories=TRAJECTORIES, hek_version="1"))
    md, html = paths["md"].read_text(encoding="utf-8"), paths["html"].read_text(encoding="utf-8")
    assert "1 worked case." in md and "**case** `C-1`" in md
    assert "searched “A founded” → “B founded" in md and "answered A" in md
    assert ESCAPED in html and HOSTILE not in html
    assert 'href="trajectories.html#traj-t1"' in html  # a case links to the episode it keeps


def test_two_heks_with_the_same_ids_keep_their_anchors_apart_and_links_find_their_own(tmp_path):
    live = [{"id": "e1-1", "level": "E1", "title": "live lesson", "description": "d",
             "sources": {"trajectory_ids": ["t1"]}}]
    paths = write_report(tmp_path, ReportInputs(title="t", comparison=comparison(), entries=ENTRIES,
                                                trajectories=TRAJECTORIES, hek_version="1",
                                                extra_heks=[HekSection("live", live, "2", "")]))
    html, listing = Page(paths["html"].read_text(encoding="utf-8")), Page(paths["trajectories"].read_text(encoding="utf-8"))
    text = paths["html"].read_text(encoding="utf-8")
    assert text.count('id="entry-e1-1"') == 1 and text.count('id="hek1-e1-1"') == 1
    back = {h.split("#", 1)[1] for h in listing.hrefs if h.startswith("report.html#")}
    assert back == {"entry-e1-1", "hek1-e1-1"} and back <= html.ids
