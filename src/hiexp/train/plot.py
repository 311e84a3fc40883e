"""``hiexp plot RUN... --out fig.png``: the stability curves of several runs on one figure.

One panel per metric, one line per run, so a HiExp run and its vanilla baseline read side by side. A
short summary (mean and variance of each metric over the run) is returned as well, because on a short run
the numbers are easier to judge than the curves.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from hiexp.errors import HiexpError
from hiexp.io import check_output_file
from hiexp.train.telemetry import METRICS_FILE, PLOT_METRICS, read_metrics, variance


def load_runs(runs: list[str | Path]) -> dict[str, list[dict[str, Any]]]:
    """``{label: records}`` for run directories (or metrics files); labels are the directory names."""
    loaded: dict[str, list[dict[str, Any]]] = {}
    for run in runs:
        path = Path(run)
        file = path / METRICS_FILE if path.is_dir() else path
        if not file.exists():
            raise HiexpError(f"{run}: no {METRICS_FILE} here (is it a `hiexp train` output directory?)")
        records = read_metrics(file)
        if not records:
            raise HiexpError(f"{file}: has no step records yet")
        label = path.name if path.is_dir() else path.parent.name
        while label in loaded:
            label += "'"
        loaded[label] = records
    return loaded


def summarize(runs: dict[str, list[dict[str, Any]]], metrics: list[str] | None = None) -> dict[str, dict[str, Any]]:
    """Per run and metric: mean over steps, variance over steps, and the last value."""
    metrics = metrics or list(PLOT_METRICS)
    summary: dict[str, dict[str, Any]] = {}
    for label, records in runs.items():
        row: dict[str, Any] = {"steps": len(records)}
        for name in metrics:
            values = [float(r[name]) for r in records if isinstance(r.get(name), int | float)]
            if values:
                row[name] = {"mean": sum(values) / len(values), "var": variance(values), "last": values[-1]}
        summary[label] = row
    return summary


# Columns of the stability table: (header, metric, statistic over steps). Means show the level; the
# variance over steps of the reward and of the gradient norm shows how steady training was.
TABLE_COLUMNS = [
    ("reward", "reward_mean", "mean"),
    ("reward var (batch)", "reward_var", "mean"),
    ("reward var (over steps)", "reward_mean", "var"),
    ("adv var", "adv_var", "mean"),
    ("grad norm", "grad_norm", "mean"),
    ("grad norm var (over steps)", "grad_norm", "var"),
    ("policy tokens", "response_length", "mean"),
    ("searches", "searches_per_episode", "mean"),
    ("zero-std groups", "zero_std_frac", "mean"),
]


def summary_table(summary: dict[str, dict[str, Any]]) -> str:
    """The summary as a Markdown table, one row per run (a dash where a run lacks the metric)."""
    header = ["run", "steps"] + [name for name, _, _ in TABLE_COLUMNS]
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    for label, row in summary.items():
        cells = [label, str(row["steps"])]
        for _, metric, stat in TABLE_COLUMNS:
            cells.append(f"{row[metric][stat]:.4g}" if metric in row else "-")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot_runs(
    runs: list[str | Path],
    out: str | Path,
    metrics: list[str] | None = None,
    smooth: int = 1,
    title: str | None = None,
) -> dict[str, dict[str, Any]]:
    """Draw ``metrics`` (default: every stability metric present) for ``runs`` into the PNG ``out``.

    Returns the summary of every stability metric (and of any other metric drawn), whatever subset the
    figure shows, so that the caller can print the stability table without reading the runs again.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    loaded = load_runs(runs)
    if metrics:
        unknown = [m for m in metrics if not any(m in r for recs in loaded.values() for r in recs)]
        if unknown:
            raise HiexpError(f"metric(s) {', '.join(unknown)} appear in none of the runs")
    else:
        metrics = [m for m in PLOT_METRICS if any(m in r for recs in loaded.values() for r in recs)]
    if not metrics:
        raise HiexpError("the runs record none of the stability metrics")
    cols = min(3, len(metrics))
    rows = math.ceil(len(metrics) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.0 * rows), squeeze=False)
    for ax, name in zip(axes.flat, metrics, strict=False):
        for label, records in loaded.items():
            points = [(r["step"], float(r[name])) for r in records if isinstance(r.get(name), int | float)]
            if not points:
                continue
            steps, values = zip(*points, strict=True)
            values = _smooth(list(values), smooth)
            ax.plot(steps, values, label=label, marker="o" if len(points) < 30 else None, markersize=3)
        ax.set_title(PLOT_METRICS.get(name, name), fontsize=10)
        ax.set_xlabel("step", fontsize=8)
        ax.tick_params(labelsize=8)
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(metrics):]:
        ax.set_visible(False)
    handles, labels = axes.flat[0].get_legend_handles_labels()
    # room above the panels for the legend (and the title): about 0.4 and 0.3 inch
    height = 3.0 * rows
    top = 1.0 - (0.4 + (0.3 if title else 0.0)) / height
    fig.tight_layout(rect=(0, 0, 1, top))
    fig.legend(handles, labels, loc="lower center", bbox_to_anchor=(0.5, top), ncol=min(4, len(labels)),
               fontsize=9, frameon=False)
    if title:
        fig.suptitle(title, y=0.995, fontsize=11)
    out = check_output_file(out, magic=b"\x89PNG", what="PNG image")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp.png")
    fig.savefig(tmp, dpi=120, bbox_inches="tight")
    plt.close(fig)
    tmp.replace(out)
    return summarize(loaded, list(dict.fromkeys([*PLOT_METRICS, *metrics])))


def _smooth(values: list[float], window: int) -> list[float]:
    """Trailing moving average (window 1 = raw values)."""
    if window <= 1:
        return values
    out = []
    for i in range(len(values)):
        chunk = values[max(0, i - window + 1): i + 1]
        out.append(sum(chunk) / len(chunk))
    return out
