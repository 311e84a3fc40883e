"""``hiexp eval``: the agent (or a baseline) on one or more datasets, with per-dataset scores and a manifest.

Writes into ``out_dir``: ``trajectories/<dataset>.jsonl`` (appended as episodes finish, so a re-run resumes),
``predictions.jsonl``, ``metrics.json`` (``{dataset: {em, cem, f1, searches, tokens, n, finish}}``),
``manifest.json`` (everything that decides the numbers: model, format, template hash, retriever fingerprint,
top-k, max turns, seed, package version, HEK version) and ``table.md``.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import asdict, dataclass, is_dataclass
from pathlib import Path
from typing import Any

from hiexp.agent.config import AgentConfig
from hiexp.agent.loop import SearchAgent
from hiexp.agent.rollout import read_trajectories, run_rollouts
from hiexp.components import make_retriever
from hiexp.contracts.example import Example
from hiexp.contracts.experience import ExperienceHook
from hiexp.errors import HiexpError
from hiexp.eval.compare import accuracy_name
from hiexp.io import (
    atomic_write_json,
    atomic_write_jsonl,
    atomic_write_text,
    check_output_dir,
    exclusive_output,
    public_url,
    read_json,
    read_jsonl,
)

METHODS = ("agent", "rag", "closed-book")
# Manifest keys that must agree when an output directory is reused (otherwise a resume would mix runs).
_RESUME_KEYS = ("method", "model", "format", "prompt_template_hash", "top_k", "max_turns", "max_tokens",
                "max_new_tokens", "temperature", "top_p", "seed", "hek_version", "split", "n", "engine", "samples")
# Keys added after runs were first written: an old manifest without one is not a mismatch.
_LATER_KEYS = ("engine", "samples")


def dataset_slug(name: str) -> str:
    """A file-name-safe name for a dataset name or path."""
    stem = Path(name).stem if ("/" in name or "\\" in name) else name
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", stem) or "dataset"


def summarise(trajectories: list[Any]) -> dict[str, Any]:
    """Mean EM / CEM / F1, searches and tokens per episode, and finish-reason counts.

    With several samples per question the means are over every sample (Avg@k); ``samples`` is k and
    ``pass@k`` the share of questions that at least one sample got right (by EM).
    """
    n = len(trajectories)
    if n == 0:
        return {"em": 0.0, "cem": 0.0, "f1": 0.0, "searches": 0.0, "tokens": 0.0, "n": 0, "finish": {}}

    def mean(values: list[float]) -> float:
        return float(sum(values) / n)

    by_question: dict[str, list[float]] = {}
    for t in trajectories:
        by_question.setdefault(t.question_id, []).append(t.rewards.get("em", 0.0))
    samples = max(len(v) for v in by_question.values())
    summary = {
        "em": mean([t.rewards.get("em", 0.0) for t in trajectories]),
        "cem": mean([t.rewards.get("cem", 0.0) for t in trajectories]),
        "f1": mean([t.rewards.get("f1", 0.0) for t in trajectories]),
        "searches": mean([t.num_searches for t in trajectories]),
        "tokens": mean([t.num_tokens for t in trajectories]),
        "n": len(by_question),
        "finish": dict(sorted(Counter(t.finish for t in trajectories).items())),
    }
    if samples > 1:
        summary["samples"] = samples
        summary[f"pass@{samples}"] = float(sum(max(v) >= 1.0 for v in by_question.values()) / len(by_question))
    return summary


def render_table(metrics: dict[str, dict[str, Any]], method: str, tasks: dict[str, str] | None = None) -> str:
    """A markdown table of the per-dataset metrics (scores in percent); math datasets (``tasks``) get one
    accuracy column, Pass@1 or Avg@k, instead of EM / CEM / F1, which are equal for them."""
    tasks = tasks or {}
    lines = [f"method: {method}", ""]
    qa = {k: m for k, m in metrics.items() if tasks.get(k, "qa") != "math"}
    math = {k: m for k, m in metrics.items() if tasks.get(k, "qa") == "math"}
    if qa:
        lines += ["| dataset | n | EM | CEM | F1 | searches/q | tokens/q | finish |",
                  "| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |"]
        for name, m in qa.items():
            finish = ", ".join(f"{k} {v}" for k, v in m.get("finish", {}).items())
            lines.append(f"| {name} | {m['n']} | {100 * m['em']:.1f} | {100 * m['cem']:.1f} | {100 * m['f1']:.1f} | "
                         f"{m['searches']:.2f} | {m['tokens']:.1f} | {finish} |")
    if math:
        if qa:
            lines.append("")
        lines += ["| dataset | n | samples | accuracy | pass@k | tokens/q | finish |",
                  "| --- | ---: | ---: | --- | ---: | ---: | --- |"]
        for name, m in math.items():
            k = int(m.get("samples", 1))
            finish = ", ".join(f"{key} {v}" for key, v in m.get("finish", {}).items())
            pass_k = f"{100 * m[f'pass@{k}']:.1f}" if k > 1 else ""
            lines.append(f"| {name} | {m['n']} | {k} | {accuracy_name(k)} {100 * m['em']:.1f} | {pass_k} | "
                         f"{m['tokens']:.1f} | {finish} |")
    return "\n".join(lines) + "\n"


def _experience_settings(hook: Any) -> dict[str, Any] | None:
    """The hook's options (top-k, threshold, levels) for the manifest, so runs of two ablations differ."""
    config = getattr(hook, "config", None)
    return asdict(config) if is_dataclass(config) else None


def is_run_dir(directory: Path) -> bool:
    """A directory ``run_eval`` wrote: its manifest names a method."""
    try:
        manifest = read_json(directory / "manifest.json")
    except HiexpError:
        return False
    return isinstance(manifest, dict) and "method" in manifest and "prompt_template_hash" in manifest


def check_run_output(out_dir: str | Path, inputs: list[str | Path] = ()) -> Path:
    """A run directory may be new, empty or an earlier run: never somebody else's folder, an input or a
    place inside a HEK (checked before any model loads)."""
    return check_output_dir(out_dir, is_run_dir, what="hiexp eval run directory", overwrite_option=None,
                            inputs=inputs)


def _check_manifest(out_dir: Path, manifest: dict[str, Any]) -> None:
    check_run_output(out_dir)
    path = out_dir / "manifest.json"
    if not path.exists():
        return
    try:
        old = read_json(path)
    except HiexpError:
        raise HiexpError(f"{path}: not valid JSON; remove it or use another --out") from None
    changed = [k for k in _RESUME_KEYS if old.get(k) != manifest.get(k) and (k in old or k not in _LATER_KEYS)]
    if changed:
        raise HiexpError(
            f"{out_dir} holds a run with other settings ({', '.join(f'{k}: {old.get(k)!r} -> {manifest.get(k)!r}' for k in changed)}); "
            "use another --out, or delete the directory to start over")


@dataclass(frozen=True)
class _EvalRun:
    """The settings of one ``run_eval`` call, handed whole to each step instead of field by field."""

    method: str
    config: AgentConfig
    generator: Any
    hook: ExperienceHook | None
    split: str | None
    n: int | None
    seed: int
    samples: int
    index: str | None
    progress: bool

    @property
    def agent_hook(self) -> ExperienceHook | None:
        """Only the agent reads experience; the baselines run without it."""
        return self.hook if self.method == "agent" else None


def run_eval(datasets: list[str] | dict[str, list[Example]], generator: Any, retriever: Any | None, method: str,
             out_dir: str | Path, hook: ExperienceHook | None = None, n: int | None = None,
             config: AgentConfig | None = None, split: str | None = "test", seed: int = 0,
             progress: bool = True, index: str | None = None, samples: int = 1) -> dict[str, dict[str, Any]]:
    """Evaluate ``method`` on each dataset and write the run directory; returns the metrics dict.

    Args:
        datasets: dataset names (or paths) for ``hiexp.data.load_dataset``, or ``{name: examples}``.
        generator: the model (``hiexp.llm.load_generator``).
        retriever: one retriever for every dataset, or None to search each dataset's own closed-world
            corpus (``hiexp.components.make_retriever``, cached). Unused by ``closed-book``.
        method: ``agent`` (the search loop), ``rag`` (top-k passages of the question, one answer) or
            ``closed-book`` (no search).
        out_dir: the run directory (re-running with the same settings resumes).
        hook: experience provider (``--hek``); None for none. Only the agent uses it.
        n: questions per dataset, drawn deterministically by ``seed``; None for all.
        config: agent options (format, top-k, turns, tokens, sampling); default ``AgentConfig()``.
        split: dataset split (``test`` for the demo set); None keeps every record.
        seed: seed of the subsample and of the episodes.
        index: what ``retriever`` was loaded from, for the manifest only.
        samples: episodes per question (k); with k > 1 (and a temperature above 0) the metrics are Avg@k,
            the mean over every sample, and ``pass@k`` is reported beside them.
    """
    from hiexp.agent.formats import make_format

    config = _checked_config(method, samples, config)
    run = _EvalRun(method, config, generator, hook, split, n, seed, samples, index, progress)
    out_dir = Path(out_dir)
    loaded = _load_datasets(datasets, run)
    fmt = make_format(config, getattr(generator, "tokenizer", None))
    retrievers = _pick_retrievers(loaded, retriever, run)
    manifest = _build_manifest(run, fmt, loaded, retrievers)
    with exclusive_output(out_dir, "hiexp eval"):  # a second eval into the same --out stops at once
        _check_manifest(out_dir, manifest)
        atomic_write_json(out_dir / "manifest.json", manifest)

        metrics: dict[str, dict[str, Any]] = {}
        predictions: list[dict[str, Any]] = []
        for name, examples in loaded.items():
            trajs = _dataset_episodes(run, out_dir, name, examples, retrievers[name])
            metrics[name] = _dataset_metrics(trajs, examples)
            predictions.extend(_prediction_records(name, metrics[name]["task"], trajs))
        _write_results(out_dir, method, metrics, predictions)
        return metrics


def _checked_config(method: str, samples: int, config: AgentConfig | None) -> AgentConfig:
    """Refuse impossible settings before anything loads; returns the agent config (the default if None)."""
    if method not in METHODS:
        raise HiexpError(f"unknown method {method!r}; choose one of {', '.join(METHODS)}")
    if samples < 1:
        raise HiexpError(f"samples must be >= 1, got {samples}")
    config = config or AgentConfig()
    if samples > 1 and config.temperature <= 0:
        raise HiexpError(f"{samples} samples per question need a temperature above 0 (greedy samples are all the same)")
    return config


def _load_datasets(datasets: list[str] | dict[str, list[Example]], run: _EvalRun) -> dict[str, list[Example]]:
    """Every dataset's examples, loaded (and subsampled) up front so an empty one fails before any episode."""
    if isinstance(datasets, dict):
        loaded = {name: list(examples) for name, examples in datasets.items()}
    else:
        from hiexp.data import load_dataset

        if not datasets:
            raise HiexpError("no dataset given")
        loaded = {name: load_dataset(name, split=run.split, n=run.n, seed=run.seed) for name in datasets}
    for name, examples in loaded.items():
        if not examples:
            raise HiexpError(f"dataset {name!r} has no examples to evaluate")
    return loaded


def _pick_retrievers(loaded: dict[str, list[Example]], retriever: Any | None, run: _EvalRun) -> dict[str, Any]:
    """The retriever of each dataset: none without search, the one given, or the dataset's own corpus."""
    retrievers: dict[str, Any] = {}
    for name in loaded:
        if run.method == "closed-book" or run.config.format == "math":  # the math task has no search tool
            retrievers[name] = None
        elif retriever is not None:
            retrievers[name] = retriever
        else:
            retrievers[name] = make_retriever(dataset=name)
    return retrievers


def _build_manifest(run: _EvalRun, fmt: Any, loaded: dict[str, list[Example]],
                    retrievers: dict[str, Any]) -> dict[str, Any]:
    """Everything that decides the numbers, so a resume can refuse a run with other settings."""
    import hiexp

    config = run.config
    hek_version = getattr(run.agent_hook, "version", None)  # None without a hook, and for the baselines
    return {
        "method": run.method,
        "model": str(getattr(run.generator, "model_id", "unknown")),
        "engine": getattr(run.generator, "engine", None),
        "format": config.format,
        "prompt_template_hash": fmt.template_hash(run.method),
        "retrievers": {name: (getattr(r, "fingerprint", None) if r is not None else None) for name, r in retrievers.items()},
        "index": public_url(run.index),
        "top_k": config.top_k,
        "max_turns": config.max_turns,
        "max_tokens": config.max_tokens,
        "max_new_tokens": config.max_new_tokens,
        "temperature": config.temperature,
        "top_p": config.top_p,
        "seed": run.seed,
        "split": run.split,
        "n": run.n,
        "samples": run.samples,
        "datasets": {name: len(ex) for name, ex in loaded.items()},
        "hek_version": hek_version,
        "experience": _experience_settings(run.hook) if hek_version is not None else None,
        "package_version": hiexp.__version__,
        "agent_config": config.to_dict(),
    }


def _dataset_episodes(run: _EvalRun, out_dir: Path, name: str, examples: list[Example], retriever: Any) -> list[Any]:
    """Every episode of one dataset, in example-then-sample order.

    The episodes are read back from the trajectory file rather than taken from the rollout, so those an
    earlier (interrupted) run wrote count too; a missing one stops the run, since metrics over part of
    the questions would look like a finished result.
    """
    agent = SearchAgent(run.generator, retriever, run.config, run.agent_hook)
    path = out_dir / "trajectories" / f"{dataset_slug(name)}.jsonl"
    summary = run_rollouts(examples, agent, run.samples, path, seed=run.seed, progress=run.progress,
                           method=run.method)
    done = read_trajectories(path) if path.exists() else []  # every episode may have failed
    by_id = {(t.question_id, t.sample): t for t in done if t.sample < run.samples}
    missing = [ex.id for ex in examples for s in range(run.samples) if (ex.id, s) not in by_id]
    if missing:
        why = (f"{summary.failed} episodes got no answer from the generator (reasons in {summary.failed_path})"
               if summary.failed else f"no trajectory for {len(missing)} episodes (e.g. {missing[0]})")
        raise HiexpError(f"{path}: {why}; re-run to try them again")
    return [by_id[(ex.id, s)] for ex in examples for s in range(run.samples)]


def _dataset_metrics(trajs: list[Any], examples: list[Example]) -> dict[str, Any]:
    """The dataset's summary plus its task, which decides how the table and ``hiexp compare`` show it."""
    metrics = summarise(trajs)
    metrics["task"] = next((str(ex.metadata.get("task")) for ex in examples if ex.metadata.get("task")), "qa")
    return metrics


def _prediction_records(name: str, task: str, trajs: list[Any]) -> list[dict[str, Any]]:
    """One predictions.jsonl record per episode: the per-question scores ``hiexp compare`` pairs on."""
    return [{
        "dataset": name, "task": task, "id": t.question_id, "sample": t.sample, "question": t.question,
        "golden_answers": t.golden_answers,
        "prediction": t.answer, "em": t.rewards.get("em", 0.0), "cem": t.rewards.get("cem", 0.0),
        "f1": t.rewards.get("f1", 0.0), "searches": t.num_searches, "tokens": t.num_tokens,
        "finish": t.finish, "trajectory_id": t.id, "queries": t.queries,
    } for t in trajs]


def _write_results(out_dir: Path, method: str, metrics: dict[str, dict[str, Any]],
                   predictions: list[dict[str, Any]]) -> None:
    """Write the results only once every dataset is complete, so they never describe half a run."""
    atomic_write_jsonl(out_dir / "predictions.jsonl", predictions)
    atomic_write_json(out_dir / "metrics.json", metrics)
    tasks = {k: m["task"] for k, m in metrics.items()}
    atomic_write_text(out_dir / "table.md", render_table(metrics, method, tasks))


def load_predictions(run_dir: str | Path) -> list[dict[str, Any]]:
    """The predictions of a finished run directory."""
    return read_jsonl(Path(run_dir) / "predictions.jsonl")
