"""Compare two evaluation runs question by question: deltas (B - A) with paired bootstrap intervals.

Two runs of ``hiexp eval`` on the same questions differ per question, not just on average; pairing on the
question id removes the between-question variance, so a paired bootstrap of the per-question differences
gives a much tighter (and honest) 95% interval than comparing two independent means. Resampling is
vectorised: one ``[resamples, n]`` index matrix per dataset, drawn from a seeded generator.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from hiexp.errors import HiexpError
from hiexp.io import iter_jsonl, read_json
from hiexp.scoring.kinds import answer_kind

METRICS = ("em", "cem", "f1", "searches", "tokens")
SCORE_METRICS = ("em", "cem", "f1")
# Math datasets: EM, CEM and F1 are one answer-equivalence score, shown as Pass@1 (one greedy sample per
# problem) or Avg@k (the mean over k samples); there are no searches.
MATH_METRICS = ("accuracy", "tokens")


def accuracy_name(samples: int) -> str:
    """What the field calls a math accuracy: Pass@1 for one (greedy) sample, Avg@k for the mean of k."""
    return "pass@1" if samples <= 1 else f"avg@{samples}"


# Manifest keys that may differ between the two arms of a with/without-HEK comparison.
EXPECTED_DIFFERENCES = {
    "hek", "hek_dir", "hek_path", "hek_version", "experience", "ablation", "created", "finished", "out",
    "out_dir", "wall_time", "wall_time_s", "duration_s", "started", "command", "argv", "hostname",
    "experience_top_k", "experience_threshold", "experience_levels",
}


@dataclass
class Delta:
    """One metric's mean in each run, the mean paired difference and its bootstrap interval."""

    metric: str
    a: float
    b: float
    delta: float
    low: float
    high: float


@dataclass
class DatasetComparison:
    dataset: str
    n: int
    only_a: int
    only_b: int
    deltas: dict[str, Delta] = field(default_factory=dict)
    task: str = "qa"
    samples: tuple[int, int] = (1, 1)
    """Episodes per question in A and in B (the k of Avg@k)."""

    @property
    def accuracy_name(self) -> str:
        """``pass@1``, ``avg@k``, or ``avg@kA/kB`` when the two runs sampled differently."""
        ka, kb = self.samples
        return accuracy_name(ka) if ka == kb else f"avg@{ka}/{kb}"


@dataclass
class Comparison:
    """The result of ``compare_runs``; ``warnings`` lists manifest differences worth knowing about."""

    run_a: str
    run_b: str
    datasets: dict[str, DatasetComparison]
    resamples: int
    seed: int
    confidence: float
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, (int, float)):
        return float(value)
    return None


def _prediction_values(record: dict[str, Any]) -> dict[str, float | None]:
    """Read the five per-question values from one predictions.jsonl record (tolerating field spellings)."""
    rewards = record.get("rewards") or record.get("scores") or record.get("metrics") or {}
    values: dict[str, float | None] = {}
    for name in SCORE_METRICS:
        values[name] = _number(record.get(name, rewards.get(name) if isinstance(rewards, dict) else None))
    values["searches"] = _number(record.get("num_searches", record.get("searches")))
    values["tokens"] = _number(record.get("num_tokens", record.get("tokens")))
    return values


def group_name(dataset: str, question: str) -> str:
    """The group a QA question joins when runs are compared by answer kind: ``hotpotqa yes/no`` and the like."""
    return f"{dataset} {answer_kind(question)}"


def load_scores(run_dir: str | Path, by_kind: bool = False) -> dict[str, dict[str, dict[str, float]]]:
    """``{dataset: {question_id: {metric: value}}}`` from a run's predictions.jsonl.

    Several records of one question (samples) are averaged. A record without a question id or with no
    usable score is an error naming the file and line. ``by_kind`` splits each QA dataset by the kind of
    answer its questions ask for (``group_name``): experience can help one kind and hurt another.
    """
    path = Path(run_dir) / "predictions.jsonl"
    if not Path(run_dir).is_dir():
        raise HiexpError(f"{run_dir}: not a run directory (expected the --out directory of `hiexp eval`)")
    if not path.exists():
        raise HiexpError(f"{path}: no predictions.jsonl; is {run_dir} the --out directory of `hiexp eval`?")
    sums: dict[str, dict[str, dict[str, list[float]]]] = {}
    for lineno, record in enumerate(iter_jsonl(path), start=1):
        qid = record.get("question_id", record.get("id"))
        if qid is None:
            raise HiexpError(f"{path}:{lineno}: prediction has no question_id")
        qid = str(qid).split("#")[0] if "question_id" not in record else str(qid)
        dataset = str(record.get("dataset") or (record.get("metadata") or {}).get("dataset") or "all")
        if by_kind and (record.get("task") or "qa") == "qa":
            dataset = group_name(dataset, str(record.get("question") or ""))
        values = _prediction_values(record)
        if all(values[m] is None for m in SCORE_METRICS):
            raise HiexpError(f"{path}:{lineno}: prediction {qid!r} carries no em/cem/f1 scores")
        slot = sums.setdefault(dataset, {}).setdefault(qid, {m: [] for m in METRICS})
        for metric, value in values.items():
            if value is not None:
                slot[metric].append(value)
        slot.setdefault("task", []).append(record.get("task") or "qa")
    out: dict[str, dict[str, dict[str, float]]] = {}
    for dataset, questions in sums.items():
        out[dataset] = {}
        for qid, slot in questions.items():
            tasks = slot.pop("task")
            scores = {m: (float(np.mean(v)) if v else float("nan")) for m, v in slot.items()}
            scores["samples"] = float(len(tasks))
            scores["math"] = float(all(t == "math" for t in tasks))
            out[dataset][qid] = scores
    return out


def paired_bootstrap(
    a: np.ndarray, b: np.ndarray, resamples: int = 2000, seed: int = 0, confidence: float = 0.95
) -> tuple[float, float, float]:
    """Mean of ``b - a`` and its percentile bootstrap interval, resampling questions with replacement."""
    diff = np.asarray(b, dtype=np.float64) - np.asarray(a, dtype=np.float64)
    n = diff.shape[0]
    if n == 0:
        return float("nan"), float("nan"), float("nan")
    mean = float(diff.mean())
    rng = np.random.default_rng(seed)
    means = np.empty(resamples, dtype=np.float64)
    chunk = max(1, 4_000_000 // n)  # bound the index matrix to ~32 MB
    for start in range(0, resamples, chunk):
        stop = min(resamples, start + chunk)
        idx = rng.integers(0, n, size=(stop - start, n))
        means[start:stop] = diff[idx].mean(axis=1)
    alpha = (1.0 - confidence) / 2.0
    low, high = np.quantile(means, [alpha, 1.0 - alpha])
    # A constant difference (e.g. identical runs) gives a zero-width interval exactly at the mean.
    return mean, float(min(low, mean)), float(max(high, mean))


def _load_manifest(run_dir: str | Path) -> dict[str, Any]:
    path = Path(run_dir) / "manifest.json"
    return read_json(path) if path.exists() else {}


def _flatten(obj: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(obj, dict):
        flat: dict[str, Any] = {}
        for key, value in obj.items():
            flat.update(_flatten(value, f"{prefix}{key}."))
        return flat
    return {prefix[:-1]: obj}


def manifest_differences(a: dict[str, Any], b: dict[str, Any]) -> list[str]:
    """Keys (dotted) whose values differ, ignoring the HEK and bookkeeping fields."""
    fa, fb = _flatten(a), _flatten(b)
    diffs = []
    for key in sorted(set(fa) | set(fb)):
        parts = key.split(".")
        if any(p in EXPECTED_DIFFERENCES or p.startswith("hek") or p.startswith("experience") for p in parts):
            continue
        if fa.get(key) != fb.get(key):
            diffs.append(f"{key}: {fa.get(key)!r} vs {fb.get(key)!r}")
    return diffs


POOLED = "pooled"


def _runs(run: str | Path | Sequence[str | Path]) -> list[Path]:
    return [Path(r) for r in run] if isinstance(run, (list, tuple)) else [Path(run)]


def _merged_scores(runs: list[Path], by_kind: bool = False) -> dict[str, dict[str, dict[str, float]]]:
    """The scores of several runs of one arm (say one per dataset), a dataset in one run only."""
    merged: dict[str, dict[str, dict[str, float]]] = {}
    for run in runs:
        for dataset, questions in load_scores(run, by_kind).items():
            if dataset in merged:
                raise HiexpError(f"{run}: dataset {dataset!r} is also in another run of the same arm")
            merged[dataset] = questions
    return merged


@dataclass(frozen=True)
class _Bootstrap:
    """The interval settings of one ``compare_runs`` call, handed whole to the steps that draw intervals."""

    resamples: int
    seed: int
    confidence: float

    def delta(self, metric: str, offset: int, va: np.ndarray, vb: np.ndarray) -> Delta:
        """``metric``'s means and paired interval; ``offset`` (the metric's position) gives each its own draw."""
        mean, low, high = paired_bootstrap(va, vb, self.resamples, self.seed + offset, self.confidence)
        return Delta(metric, float(va.mean()), float(vb.mean()), mean, low, high)


def compare_runs(
    run_a: str | Path | Sequence[str | Path],
    run_b: str | Path | Sequence[str | Path],
    resamples: int = 2000,
    seed: int = 0,
    confidence: float = 0.95,
    by_kind: bool = False,
) -> Comparison:
    """Per-dataset deltas (B - A) of EM, CEM, F1, searches and tokens per question with paired intervals.

    On a math dataset the score is one accuracy (``accuracy``, shown as Pass@1 or Avg@k: samples of a
    question are averaged before the questions are paired) and tokens. Each arm may be several runs (one
    per dataset, given in the same order for A and B); with two or more QA datasets a ``pooled`` row pairs
    every shared question of all of them.

    ``by_kind`` compares each QA dataset's yes/no, choice and open questions apart (rows ``hotpotqa
    yes/no`` ...), with the pooled row over all of them.

    Only questions present in both runs count. Refuses (``HiexpError``) when the runs share no question;
    warns when their manifests differ in anything but the HEK.
    """
    if not 100 <= resamples <= 100_000:
        raise HiexpError(f"--resamples must be between 100 and 100000, got {resamples}")
    runs_a, runs_b = _runs(run_a), _runs(run_b)
    if len(runs_a) != len(runs_b):
        raise HiexpError(f"give as many runs for B as for A ({len(runs_b)} vs {len(runs_a)})")
    pa, pb = _merged_scores(runs_a, by_kind), _merged_scores(runs_b, by_kind)
    notes = _manifest_notes(runs_a, runs_b)
    datasets, coverage = _compare_datasets(pa, pb, _Bootstrap(resamples, seed, confidence))
    notes += coverage
    if not datasets:
        raise HiexpError(
            f"{run_a} and {run_b} share no questions: compare two runs of `hiexp eval` on the same data "
            "(same --data, --n and seed)"
        )
    for note in notes:
        warnings.warn(note, stacklevel=2)
    return Comparison(",".join(map(str, runs_a)), ",".join(map(str, runs_b)), datasets, resamples, seed, confidence,
                      notes)


def _manifest_notes(runs_a: list[Path], runs_b: list[Path]) -> list[str]:
    """A note per pair of runs whose manifests differ in more than the HEK: then B - A is not the HEK's effect."""
    notes = []
    for a, b in zip(runs_a, runs_b, strict=True):
        diffs = manifest_differences(_load_manifest(a), _load_manifest(b))
        if diffs:
            notes.append(f"{b} differs from {a} in more than the HEK: " + "; ".join(diffs)
                         if len(runs_a) > 1 else "the runs differ in more than the HEK: " + "; ".join(diffs))
    return notes


def _compare_datasets(
    pa: dict[str, dict[str, dict[str, float]]], pb: dict[str, dict[str, dict[str, float]]], boot: _Bootstrap
) -> tuple[dict[str, DatasetComparison], list[str]]:
    """Each dataset's comparison (plus the pooled row) and the notes on questions that could not be paired."""
    datasets: dict[str, DatasetComparison] = {}
    notes: list[str] = []
    qa_pairs: list[dict[str, tuple[np.ndarray, np.ndarray]]] = []
    for dataset in sorted(set(pa) | set(pb)):
        qa, qb = pa.get(dataset, {}), pb.get(dataset, {})
        note = _coverage_note(dataset, qa, qb)
        if note:
            notes.append(note)
        if not set(qa) & set(qb):
            continue
        comparison, pairs = _compare_dataset(dataset, qa, qb, boot)
        if comparison.task == "qa":
            qa_pairs.append(pairs)
        datasets[dataset] = comparison
    together = _pooled_comparison(datasets, qa_pairs, boot)
    if together is not None:
        datasets[POOLED] = together
    return datasets, notes


def _coverage_note(dataset: str, qa: dict[str, Any], qb: dict[str, Any]) -> str | None:
    """Say when a dataset is skipped or compared on part of its questions, so a smaller n is not a surprise."""
    only_a, only_b, shared = len(set(qa) - set(qb)), len(set(qb) - set(qa)), len(set(qa) & set(qb))
    if not shared:
        return f"{dataset}: no shared questions (A has {len(qa)}, B has {len(qb)}); skipped"
    if only_a or only_b:
        return f"{dataset}: compared on the {shared} shared questions ({only_a} only in A, {only_b} only in B)"
    return None


def _compare_dataset(
    dataset: str, qa: dict[str, dict[str, float]], qb: dict[str, dict[str, float]], boot: _Bootstrap
) -> tuple[DatasetComparison, dict[str, tuple[np.ndarray, np.ndarray]]]:
    """One dataset's deltas over its shared questions, and the paired values behind them for the pooled row.

    A question missing a metric in either run (NaN) drops out of that metric only.
    """
    shared = sorted(set(qa) & set(qb))
    comparison = DatasetComparison(dataset, len(shared), len(set(qa) - set(qb)), len(set(qb) - set(qa)))
    is_math = all(qa[q].get("math") and qb[q].get("math") for q in shared)
    if is_math:
        comparison.task = "math"
        comparison.samples = (int(max(qa[q]["samples"] for q in shared)), int(max(qb[q]["samples"] for q in shared)))
    pairs: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for offset, metric in enumerate(MATH_METRICS if is_math else METRICS):
        source = "em" if metric == "accuracy" else metric
        va = np.array([qa[q][source] for q in shared], dtype=np.float64)
        vb = np.array([qb[q][source] for q in shared], dtype=np.float64)
        keep = ~(np.isnan(va) | np.isnan(vb))
        va, vb = va[keep], vb[keep]
        if va.size == 0:
            continue
        comparison.deltas[metric] = boot.delta(metric, offset, va, vb)
        pairs[metric] = (va, vb)
    return comparison, pairs


def _pooled_comparison(
    datasets: dict[str, DatasetComparison], qa_pairs: list[dict[str, tuple[np.ndarray, np.ndarray]]], boot: _Bootstrap
) -> DatasetComparison | None:
    """With two or more QA datasets, every shared question of all of them paired as one sample; else None."""
    qa_sets = [name for name, dc in datasets.items() if dc.task == "qa"]
    if len(qa_sets) < 2:
        return None
    together = DatasetComparison(POOLED, sum(datasets[name].n for name in qa_sets), 0, 0)
    for offset, metric in enumerate(METRICS):
        parts = [pairs[metric] for pairs in qa_pairs if metric in pairs]
        if not parts:
            continue
        va, vb = np.concatenate([a for a, _ in parts]), np.concatenate([b for _, b in parts])
        together.deltas[metric] = boot.delta(metric, offset, va, vb)
    return together


def _fmt(metric: str, value: float, signed: bool = False) -> str:
    if metric in SCORE_METRICS or metric == "accuracy":
        return f"{value * 100:+.1f}" if signed else f"{value * 100:.1f}"
    return f"{value:+.2f}" if signed else f"{value:.2f}"


def comparison_rows(comparison: Comparison) -> list[list[str]]:
    """Table rows ``dataset, n, metric, A, B, delta, interval`` (scores in points out of 100)."""
    rows = []
    for dataset, dc in comparison.datasets.items():
        for metric, d in dc.deltas.items():
            rows.append(
                [
                    dataset,
                    str(dc.n),
                    dc.accuracy_name if metric == "accuracy" else metric,
                    _fmt(metric, d.a),
                    _fmt(metric, d.b),
                    _fmt(metric, d.delta, signed=True),
                    f"[{_fmt(metric, d.low, signed=True)}, {_fmt(metric, d.high, signed=True)}]",
                ]
            )
    return rows


def comparison_markdown(comparison: Comparison, label_a: str = "A", label_b: str = "B") -> str:
    """A markdown table of the comparison (EM/CEM/F1 in points, searches and tokens per question)."""
    level = int(round(comparison.confidence * 100))
    header = ["dataset", "n", "metric", label_a, label_b, f"{label_b} - {label_a}", f"{level}% interval"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in comparison_rows(comparison)]
    return "\n".join(lines) + "\n"
