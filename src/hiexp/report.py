"""The demo report: the with/without-experience table, a bar chart, and the HEK tree linked to its sources.

Writes three files into one directory: ``report.md`` (readable on a terminal or in a repository viewer,
chart as ``chart.png`` beside it), ``report.html`` (self-contained: the chart embedded as base64) and
``trajectories.html`` (every training trajectory with an anchor, so that an E1 entry links to the
trajectories it was distilled from and back). Templates live in ``hiexp/templates``; all HTML comes from them.
"""

from __future__ import annotations

import base64
import html
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hiexp.contracts.fields import field_of
from hiexp.eval.compare import SCORE_METRICS, Comparison, comparison_markdown, comparison_rows
from hiexp.experience.schema import is_case_only
from hiexp.io import atomic_write_text

TEMPLATES_DIR = Path(__file__).parent / "templates"
REPORT_MD = "report.md"
REPORT_HTML = "report.html"
TRAJECTORIES_HTML = "trajectories.html"
CHART_PNG = "chart.png"


def anchor(kind: str, identifier: str) -> str:
    """An HTML id safe to use in a URL fragment (``#`` and other characters replaced)."""
    return f"{kind}-" + re.sub(r"[^A-Za-z0-9_-]", "_", str(identifier))


def source_trajectory_ids(entry: Any) -> list[str]:
    """The trajectory ids named in an entry's ``sources`` (any key mentioning trajectories)."""
    sources = field_of(entry, "sources") or {}
    out: list[str] = []
    if isinstance(sources, dict):
        for key, value in sources.items():
            if "traj" not in key:
                continue
            values = value if isinstance(value, list) else [value]
            out.extend(str(v) for v in values if v is not None)
    elif isinstance(sources, list):
        out.extend(str(v) for v in sources)
    return out


@dataclass
class Stage:
    """One stage of the pipeline for the report's stage table."""

    name: str
    status: str
    seconds: float | str = ""


@dataclass
class HekSection:
    """A further HEK shown in the report (for example the one built live beside the shipped one)."""

    title: str
    entries: list[Any]
    version: str | None = None
    note: str = ""


@dataclass
class ReportInputs:
    """Everything the report shows. ``comparison`` is the main with/without table (A = without HEK)."""

    title: str
    comparison: Comparison
    entries: list[Any]
    trajectories: list[dict[str, Any]]
    hek_version: str | None = None
    hek_title: str = "The experience base"
    extra_heks: list[HekSection] = field(default_factory=list)
    label_a: str = "without HEK"
    label_b: str = "with HEK"
    settings: dict[str, Any] = field(default_factory=dict)
    ablations: dict[str, Comparison] = field(default_factory=dict)
    stages: list[Stage] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    summary: str = ""


def md_cell(value: Any) -> str:
    """Text safe inside a markdown table cell or line: no HTML, no column breaks, no line breaks (settings and
    notes hold paths, model names and manifest descriptions that the user or a model wrote)."""
    text = " ".join(str(value).split())
    return html.escape(text, quote=False).replace("|", "\\|")


def _environment():
    import jinja2

    environment = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATES_DIR)),
        autoescape=jinja2.select_autoescape(enabled_extensions=("html.jinja",), default_for_string=False),
        keep_trailing_newline=True,
        trim_blocks=False,
    )
    environment.filters["md"] = md_cell
    return environment


def render_chart(comparison: Comparison, path: Path, label_a: str, label_b: str) -> None:
    """Bars of EM/CEM/F1 (math: Pass@1 or Avg@k) for both arms (left) and the deltas with their intervals (right), per dataset."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    datasets = list(comparison.datasets)

    def scores(dataset: str) -> list[tuple[str, str]]:  # (metric key, label); a math dataset has one accuracy
        dc = comparison.datasets[dataset]
        return [("accuracy", dc.accuracy_name)] if dc.task == "math" else [(m, m.upper()) for m in SCORE_METRICS]

    labels = [f"{d}\n{label}" if len(datasets) > 1 else label for d in datasets for _, label in scores(d)]
    a, b, delta, low, high = [], [], [], [], []
    for dataset in datasets:
        for metric, _ in scores(dataset):
            d = comparison.datasets[dataset].deltas.get(metric)
            a.append(100 * d.a if d else 0.0)
            b.append(100 * d.b if d else 0.0)
            delta.append(100 * d.delta if d else 0.0)
            low.append(100 * d.low if d else 0.0)
            high.append(100 * d.high if d else 0.0)
    x = np.arange(len(labels))
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.8))
    left.bar(x - 0.2, a, 0.4, label=label_a, color="#9aa5b1")
    left.bar(x + 0.2, b, 0.4, label=label_b, color="#2f7ed8")
    left.set_xticks(x, labels)
    left.set_ylabel("score (points)")
    left.set_ylim(0, max([10.0, *a, *b]) * 1.15)
    left.legend(frameon=False)
    left.set_title("scores")
    errors = np.array([np.array(delta) - np.array(low), np.array(high) - np.array(delta)])
    colors = ["#2a9d3a" if v > 0 else "#c0392b" if v < 0 else "#888888" for v in delta]
    right.bar(x, delta, 0.5, yerr=errors, capsize=4, color=colors)
    right.axhline(0, color="black", linewidth=0.8)
    right.set_xticks(x, labels)
    right.set_ylabel("B - A (points)")
    right.set_title(f"difference, {int(round(comparison.confidence * 100))}% paired bootstrap interval")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    tmp.replace(path)


def _case_line(case: Any) -> str:
    """A worked case in one line, for a reader who wants to see what it shows: its searches, then its answer."""
    queries = " → ".join(f"“{field_of(step, 'query', '')}”" for step in field_of(case, "steps") or [])
    return f"searched {queries or 'nothing'}; answered {field_of(case, 'answer', '')}"


def _entry_view(entry: Any, sources: list[str], prefix: str = "entry") -> dict[str, Any]:
    """One entry as both templates show it; the text stays raw so that each template escapes it its own way.
    A bare case (a HEK of cases alone) shows as a case, its searches and answer in place of a description."""
    eid = str(field_of(entry, "id"))
    case = field_of(entry, "case") if is_case_only(entry) else None
    return {
        "id": eid,
        "anchor": anchor(prefix, eid),
        "level": "case" if case is not None else str(field_of(entry, "level")),
        "title": str(field_of(entry, "title", "")),
        "description": _case_line(case) if case is not None else str(field_of(entry, "description", "")),
        "sources": [{"id": t, "anchor": anchor("traj", t)} for t in sources],
        "children": [],
    }


def _tree(entries: Iterable[Any], listed: set[str],
          prefix: str = "entry") -> tuple[list[dict[str, Any]], dict[str, list[str]]]:
    """Entries nested E3 → E2 → E1 (orphans after, each entry once), and E1 id → its trajectory ids. Only
    trajectories in ``listed`` count: a shipped HEK's sources are not in this run, and a link must not dangle.
    ``prefix`` starts the entries' anchors, so that two HEKs on one page (whose ids repeat) keep theirs apart."""
    entries = list(entries)
    by_id = {str(field_of(e, "id")): e for e in entries}
    sources = {str(field_of(e, "id")): [t for t in source_trajectory_ids(e) if t in listed]
               for e in entries if field_of(e, "level") == "E1"}
    placed: set[str] = set()

    def visit(entry: Any) -> dict[str, Any] | None:
        eid = str(field_of(entry, "id"))
        if eid in placed:
            return None
        placed.add(eid)
        node = _entry_view(entry, sources.get(eid, []), prefix)
        for child in field_of(entry, "children") or []:
            if str(child) in by_id and (child_node := visit(by_id[str(child)])):
                node["children"].append(child_node)
        return node

    roots = [visit(entry) for level in ("E3", "E2", "E1") for entry in entries if field_of(entry, "level") == level]
    return [root for root in roots if root], sources


def _trajectory_view(record: dict[str, Any], entries_of: dict[str, list[tuple[str, str]]]) -> dict[str, Any]:
    turns = record.get("turns") or []
    text = "".join(str(t.get("text", "")) for t in turns if t.get("role") != "prompt") if turns else ""
    rewards = record.get("rewards") or {}
    reward = rewards.get("reward", rewards.get("em", 0.0))
    tid = str(record.get("id"))
    return {
        "id": tid,
        "anchor": anchor("traj", tid),
        "question": record.get("question", record.get("question_id", "")),
        "golden": record.get("golden_answers") or [],
        "answer": record.get("answer"),
        "rewards": ", ".join(f"{k} {float(v):.2f}" for k, v in rewards.items() if isinstance(v, (int, float))),
        "num_searches": record.get("num_searches", 0),
        "finish": record.get("finish", ""),
        "success": bool(reward and float(reward) > 0),
        "entries": [{"id": e, "anchor": link} for e, link in entries_of.get(tid, [])],
        "text": text[:6000] + ("\n[...]" if len(text) > 6000 else ""),
    }


@dataclass
class _ReportView:
    """What the three pages show, gathered once so that the templates only lay it out (and escape it)."""

    context: dict[str, Any]  # shared by report.md and report.html
    trajectories: list[dict[str, Any]]
    n_questions: int


def write_report(out_dir: str | Path, inputs: ReportInputs) -> dict[str, Path]:
    """Render ``report.md``, ``report.html``, ``trajectories.html`` and ``chart.png`` into ``out_dir``."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    chart = out_dir / CHART_PNG
    render_chart(inputs.comparison, chart, inputs.label_a, inputs.label_b)
    texts = _render_pages(_gather(inputs), chart)
    paths = {"md": out_dir / REPORT_MD, "html": out_dir / REPORT_HTML, "trajectories": out_dir / TRAJECTORIES_HTML}
    for key in ("trajectories", "md", "html"):  # the listing first, so the report's links find their anchors
        atomic_write_text(paths[key], texts[key])
    return {**paths, "chart": chart}


def _gather(inputs: ReportInputs) -> _ReportView:
    """Everything the pages show, from the inputs: the templates get plain values, never pre-built markup."""
    heks, entries_of = _hek_views(inputs)
    ordered = sorted(inputs.trajectories, key=lambda t: (str(t.get("question_id")), int(t.get("sample", 0) or 0)))
    return _ReportView(
        context={**_overview(inputs), **_tables(inputs), "heks": heks},
        trajectories=[_trajectory_view(t, entries_of) for t in ordered],
        n_questions=len({str(t.get("question_id")) for t in inputs.trajectories}),
    )


def _render_pages(view: _ReportView, chart: Path) -> dict[str, str]:
    """The three pages' texts; report.html embeds the chart so that it stands alone."""
    env = _environment()
    chart_base64 = base64.b64encode(chart.read_bytes()).decode("ascii")
    return {
        "md": env.get_template("report.md.jinja").render(**view.context, chart=CHART_PNG),
        "html": env.get_template("report.html.jinja").render(**view.context, chart_base64=chart_base64),
        "trajectories": env.get_template("trajectories.html.jinja").render(
            report_page=REPORT_HTML, trajectories=view.trajectories, n_questions=view.n_questions),
    }


def _percent(comparison: Comparison) -> int:
    return int(round(comparison.confidence * 100))


def _overview(inputs: ReportInputs) -> dict[str, Any]:
    """The text around the tables: title, settings, labels, notes and the stage timings."""
    return {
        "title": inputs.title,
        "summary": inputs.summary,
        "settings": dict(inputs.settings),
        "label_a": inputs.label_a,
        "label_b": inputs.label_b,
        "confidence": _percent(inputs.comparison),
        "resamples": inputs.comparison.resamples,
        "notes": list(inputs.notes) + list(inputs.comparison.warnings),
        "trajectories_page": TRAJECTORIES_HTML,
        "stages": [{"name": s.name, "status": s.status,
                    "seconds": f"{s.seconds:.1f}" if isinstance(s.seconds, float) else s.seconds}
                   for s in inputs.stages],
    }


def _tables(inputs: ReportInputs) -> dict[str, Any]:
    """The with/without table and the ablations (each variant against A), as rows for both templates."""
    comparison = inputs.comparison
    level = _percent(comparison)
    header = ["dataset", "n", "metric", inputs.label_a, inputs.label_b, "B - A", f"{level}% interval"]
    ablation_rows = [[name, *row] for name, abl in inputs.ablations.items() for row in comparison_rows(abl)]
    ablation_header = ["variant", *header[:3], inputs.label_a, "variant", "B - A", f"{level}% interval"]
    return {
        "table": comparison_markdown(comparison, inputs.label_a, inputs.label_b).rstrip("\n"),
        "header": header,
        "rows": comparison_rows(comparison),
        "ablation_header": ablation_header if ablation_rows else [],
        "ablation_rows": ablation_rows,
    }


def _hek_views(inputs: ReportInputs) -> tuple[list[dict[str, Any]], dict[str, list[tuple[str, str]]]]:
    """Each HEK section with its tree, and trajectory id → the (id, anchor) of each E1 entry that came from it
    (the listing's links back to the report). The first section's anchors are ``entry-ID``; a further
    section's are ``hekN-ID``."""
    listed = {str(t.get("id")) for t in inputs.trajectories}
    sections = [HekSection(inputs.hek_title, list(inputs.entries), inputs.hek_version), *inputs.extra_heks]
    entries_of: dict[str, list[tuple[str, str]]] = {}
    views = []
    for index, section in enumerate(sections):
        prefix = "entry" if index == 0 else f"hek{index}"
        tree, sources = _tree(section.entries, listed, prefix)
        for eid, tids in sources.items():
            for tid in tids:
                entries_of.setdefault(tid, []).append((eid, anchor(prefix, eid)))
        views.append({"title": section.title, "version": section.version or "?", "note": section.note,
                      "counts": _count_levels(section.entries), "tree": tree})
    return views, entries_of


def _count_levels(entries: Iterable[Any]) -> str:
    counts: dict[str, int] = {}
    for entry in entries:
        level = "case" if is_case_only(entry) else str(field_of(entry, "level"))
        counts[level] = counts.get(level, 0) + 1
    text = ", ".join(f"{counts.get(lv, 0)} {lv}" for lv in ("E3", "E2", "E1")) + " entries"
    if "case" not in counts:
        return text
    cases = f"{counts['case']} worked case{'s' if counts['case'] != 1 else ''}"
    return cases + (f" and {text}" if len(counts) > 1 else "")
