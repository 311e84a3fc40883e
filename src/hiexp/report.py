"""The demo report: the with/without-experience table, a bar chart, and the HEK tree linked to its sources.

Writes three files into one directory: ``report.md`` (readable on a terminal or in a repository viewer,
chart as ``chart.png`` beside it), ``report.html`` (self-contained: the chart embedded as base64) and
``trajectories.html`` (every training trajectory with an anchor, so that an E1 entry links to the
trajectories it was distilled from and back). Templates live in ``hiexp/templates``.
"""

from __future__ import annotations

import base64
import html
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hiexp.eval.compare import SCORE_METRICS, Comparison, comparison_markdown, comparison_rows
from hiexp.io import atomic_write_text

TEMPLATES_DIR = Path(__file__).parent / "templates"
REPORT_MD = "report.md"
REPORT_HTML = "report.html"
TRAJECTORIES_HTML = "trajectories.html"
CHART_PNG = "chart.png"


def _get(obj: Any, name: str, default: Any = None) -> Any:
    if isinstance(obj, dict):
        return obj.get(name, default)
    return getattr(obj, name, default)


def anchor(kind: str, identifier: str) -> str:
    """An HTML id safe to use in a URL fragment (``#`` and other characters replaced)."""
    return f"{kind}-" + re.sub(r"[^A-Za-z0-9_-]", "_", str(identifier))


def source_trajectory_ids(entry: Any) -> list[str]:
    """The trajectory ids named in an entry's ``sources`` (any key mentioning trajectories)."""
    sources = _get(entry, "sources") or {}
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


def _tree(entries: Iterable[Any]) -> tuple[list[tuple[int, Any]], dict[str, list[str]]]:
    """Entries in tree order (E3 → E2 → E1, orphans after) with depth, and E1 id → trajectory ids."""
    entries = list(entries)
    by_id = {str(_get(e, "id")): e for e in entries}
    placed: set[str] = set()
    order: list[tuple[int, Any]] = []

    def visit(entry: Any, depth: int) -> None:
        eid = str(_get(entry, "id"))
        if eid in placed:
            return
        placed.add(eid)
        order.append((depth, entry))
        for child in _get(entry, "children") or []:
            if str(child) in by_id:
                visit(by_id[str(child)], depth + 1)

    for level in ("E3", "E2", "E1"):
        for entry in entries:
            if _get(entry, "level") == level:
                visit(entry, 0)
    sources = {str(_get(e, "id")): source_trajectory_ids(e) for e in entries if _get(e, "level") == "E1"}
    return order, sources


def _tree_markdown(order: list[tuple[int, Any]], sources: dict[str, list[str]], traj_page: str) -> list[str]:
    lines = []
    for depth, entry in order:
        eid = str(_get(entry, "id"))
        title = html.escape(str(_get(entry, "title", "")).replace("\n", " "), quote=False)
        description = html.escape(str(_get(entry, "description", "")).replace("\n", " "), quote=False)
        links = ", ".join(f"[{t}]({traj_page}#{anchor('traj', t)})" for t in sources.get(eid, []))
        line = f"{'  ' * depth}- <a id=\"{anchor('entry', eid)}\"></a>**{_get(entry, 'level')}** `{eid}` {title}: {description}"
        if links:
            line += f" (from {links})"
        lines.append(line)
    return lines


def _tree_html(order: list[tuple[int, Any]], sources: dict[str, list[str]], traj_page: str) -> str:
    parts: list[str] = []
    depth_now = -1
    for depth, entry in order:
        while depth_now < depth:
            parts.append('<ul class="tree">')
            depth_now += 1
        while depth_now > depth:
            parts.append("</li></ul>")
            depth_now -= 1
        if parts and parts[-1] != '<ul class="tree">':
            parts.append("</li>")
        eid = str(_get(entry, "id"))
        links = " ".join(
            f'<a href="{traj_page}#{anchor("traj", t)}">{html.escape(t)}</a>' for t in sources.get(eid, [])
        )
        parts.append(
            f'<li id="{anchor("entry", eid)}"><span class="level">{html.escape(str(_get(entry, "level")))}</span> '
            f"<b>{html.escape(str(_get(entry, 'title', '')))}</b> <code>{html.escape(eid)}</code>"
            f'<br><span class="desc">{html.escape(str(_get(entry, "description", "")))}</span>'
            + (f"<br>from: {links}" if links else "")
        )
    while depth_now >= 0:
        parts.append("</li></ul>")
        depth_now -= 1
    return "\n".join(parts) if parts else "<p>(the HEK is empty)</p>"


def _trajectory_view(record: dict[str, Any], entries_of: dict[str, list[str]]) -> dict[str, Any]:
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
        "entries": [{"id": e, "anchor": anchor("entry", e)} for e in entries_of.get(tid, [])],
        "text": text[:6000] + ("\n[...]" if len(text) > 6000 else ""),
    }


def write_report(out_dir: str | Path, inputs: ReportInputs) -> dict[str, Path]:
    """Render ``report.md``, ``report.html``, ``trajectories.html`` and ``chart.png`` into ``out_dir``."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    comparison = inputs.comparison
    chart_path = out_dir / CHART_PNG
    render_chart(comparison, chart_path, inputs.label_a, inputs.label_b)
    chart_b64 = base64.b64encode(chart_path.read_bytes()).decode("ascii")

    listed = {str(t.get("id")) for t in inputs.trajectories}
    sections = [HekSection(inputs.hek_title, list(inputs.entries), inputs.hek_version), *inputs.extra_heks]
    entries_of: dict[str, list[str]] = {}
    views = []
    for section in sections:
        order, sources = _tree(section.entries)
        # link only to trajectories that the listing holds (a shipped HEK's sources are not in this run)
        sources = {eid: [t for t in tids if t in listed] for eid, tids in sources.items()}
        for eid, tids in sources.items():
            for tid in tids:
                entries_of.setdefault(tid, []).append(eid)
        views.append({"title": section.title, "version": section.version or "?", "note": section.note,
                      "counts": _count_levels(section.entries), "order": order, "sources": sources})

    level = int(round(comparison.confidence * 100))
    header = ["dataset", "n", "metric", inputs.label_a, inputs.label_b, "B - A", f"{level}% interval"]
    ablation_md = ""
    ablation_rows: list[list[str]] = []
    for name, abl in inputs.ablations.items():
        ablation_rows += [[name, *row] for row in comparison_rows(abl)]
    if ablation_rows:
        ablation_header = ["variant", *header[:3], inputs.label_a, "variant", "B - A", f"{level}% interval"]
        ablation_md = "\n".join(
            ["| " + " | ".join(ablation_header) + " |", "|" + "---|" * len(ablation_header)]
            + ["| " + " | ".join(r) + " |" for r in ablation_rows]
        ) + "\n"
    else:
        ablation_header = []

    common = {
        "title": inputs.title,
        "summary": inputs.summary,
        "settings": {k: v for k, v in inputs.settings.items()},
        "label_a": inputs.label_a,
        "label_b": inputs.label_b,
        "confidence": level,
        "resamples": comparison.resamples,
        "notes": list(inputs.notes) + list(comparison.warnings),
        "trajectories_page": TRAJECTORIES_HTML,
        "stages": [
            {"name": s.name, "status": s.status, "seconds": f"{s.seconds:.1f}" if isinstance(s.seconds, float) else s.seconds}
            for s in inputs.stages
        ],
    }
    env = _environment()
    md = env.get_template("report.md.jinja").render(
        **common,
        table=comparison_markdown(comparison, inputs.label_a, inputs.label_b).rstrip("\n"),
        ablation_table=ablation_md.rstrip("\n"),
        chart=CHART_PNG,
        heks=[{**v, "tree": _tree_markdown(v["order"], v["sources"], TRAJECTORIES_HTML)} for v in views],
    )
    page = env.get_template("report.html.jinja").render(
        **common,
        header=header,
        rows=comparison_rows(comparison),
        ablation_header=ablation_header,
        ablation_rows=ablation_rows,
        chart_base64=chart_b64,
        heks=[{**v, "tree_html": _markup(_tree_html(v["order"], v["sources"], TRAJECTORIES_HTML))} for v in views],
    )
    questions = {str(t.get("question_id")) for t in inputs.trajectories}
    ordered = sorted(inputs.trajectories, key=lambda t: (str(t.get("question_id")), int(t.get("sample", 0) or 0)))
    listing = env.get_template("trajectories.html.jinja").render(
        report_page=REPORT_HTML,
        trajectories=[_trajectory_view(t, entries_of) for t in ordered],
        n_questions=len(questions),
    )
    paths = {
        "md": out_dir / REPORT_MD,
        "html": out_dir / REPORT_HTML,
        "trajectories": out_dir / TRAJECTORIES_HTML,
        "chart": chart_path,
    }
    atomic_write_text(paths["trajectories"], listing)
    atomic_write_text(paths["md"], md)
    atomic_write_text(paths["html"], page)
    return paths


def _count_levels(entries: Iterable[Any]) -> str:
    counts: dict[str, int] = {}
    for entry in entries:
        counts[str(_get(entry, "level"))] = counts.get(str(_get(entry, "level")), 0) + 1
    return ", ".join(f"{counts.get(lv, 0)} {lv}" for lv in ("E3", "E2", "E1")) + " entries"


def _markup(text: str):
    import markupsafe

    return markupsafe.Markup(text)
