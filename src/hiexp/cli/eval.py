"""``hiexp eval``: the agent or a baseline on datasets, with scores, predictions, a manifest and a table."""

from __future__ import annotations

import time
from pathlib import Path

import typer

from hiexp.cli.agent import (
    BACKEND_OPTION,
    BATCH_SIZE_OPTION,
    FEW_SHOT_OPTION,
    FORMAT_OPTION,
    MAX_NEW_TOKENS_OPTION,
    MAX_TOKENS_OPTION,
    MAX_TURNS_OPTION,
    MODEL_OPTION,
    TOP_K_OPTION,
)
from hiexp.cli.checks import cosine


def register(app: typer.Typer) -> None:
    """Add ``eval`` to the ``hiexp`` app."""

    @app.command(name="eval")
    def eval_command(
        data: str = typer.Option(..., "--data", help="Dataset name(s), comma-separated (e.g. hotpotqa,2wiki), or data files."),
        out: Path = typer.Option(..., "--out", help="Run directory (re-running with the same settings resumes)."),
        method: str = typer.Option("agent", "--method", help="agent (search loop), rag (one retrieval, one answer) or closed-book."),
        n: int | None = typer.Option(None, "--n", help="Questions per dataset, drawn deterministically by --seed; all if not given."),
        split: str = typer.Option("test", "--split", help="Dataset split ('test' for the demo set); 'all' for every record."),
        hek: str | None = typer.Option(None, "--hek", help="HEK directory: experience-guided search (agent only)."),
        experience_top_k: int = typer.Option(5, "--experience-top-k", help="With --hek: E2/E3 entries put into the system prompt."),
        threshold: float | None = typer.Option(None, "--threshold", callback=cosine, help="With --hek: cosine an E1 title must reach for its description to join a search result (default: the HEK's calibrated threshold, else 0.8)."),
        ablation: str = typer.Option("full", "--ablation", help="With --hek: full, no-e1, no-e2e3, only-e3 or cases-only."),
        cases: int | None = typer.Option(None, "--cases", min=0, max=16, help="With --hek: worked cases (verified successes of the most similar training questions) shown per episode (default: what the HEK recommends, else 0)."),
        case_placement: str | None = typer.Option(None, "--case-placement", help="With --cases: replace the fixed worked example, or beside it."),
        usefulness: str = typer.Option("off", "--usefulness", help="With --hek: off, filter (hide entries its "
                                       "usefulness table marks harmful) or rank (also prefer helpful ones)."),
        usefulness_file: str | None = typer.Option(None, "--usefulness-file", help="With --usefulness: the table "
                                                   "(default: usefulness.json inside the HEK)."),
        model: str = MODEL_OPTION,
        backend: str = BACKEND_OPTION,
        index: str | None = typer.Option(None, "--index", help="Retriever for every dataset: index dir, corpus JSONL or .../retrieve URL (default: each dataset's own corpus)."),
        fmt: str = FORMAT_OPTION,
        seed: int = typer.Option(0, "--seed", help="Seed of the question draw and of the episodes."),
        temperature: float = typer.Option(0.0, "--temperature", help="Sampling temperature (0 = greedy, the default for evaluation)."),
        samples: int = typer.Option(1, "--samples", help="Episodes per question (k > 1 needs --temperature > 0): metrics are then Avg@k, with pass@k beside them."),
        top_k: int = TOP_K_OPTION,
        max_turns: int = MAX_TURNS_OPTION,
        max_tokens: int = MAX_TOKENS_OPTION,
        max_new_tokens: int = MAX_NEW_TOKENS_OPTION,
        few_shot: bool = FEW_SHOT_OPTION,
        batch_size: int = BATCH_SIZE_OPTION,
    ) -> None:
        """Evaluate on one or more datasets: EM, CEM, F1, searches and tokens per question, finish reasons."""
        from rich.console import Console
        from rich.markdown import Markdown

        from hiexp.cli.agent import make_config, task_format, turn_budget
        from hiexp.components import make_experience_hook, make_generator, make_retriever
        from hiexp.errors import HiexpError
        from hiexp.eval.evaluate import METHODS, check_run_output, render_table, run_eval

        console = Console()  # results go to stdout; progress bars to stderr
        check_run_output(out, inputs=[p for p in (hek, index, usefulness_file, *data.split(",")) if p])
        if method not in METHODS:
            raise HiexpError(f"unknown method {method!r}; choose one of {', '.join(METHODS)}")
        names = [d.strip() for d in data.split(",") if d.strip()]
        if not names:
            raise HiexpError("no dataset given")
        from hiexp.data import load_dataset

        # the questions first: a bad data file fails here, before a model is loaded
        datasets = {name: load_dataset(name, split=None if split == "all" else split, n=n, seed=seed)
                    for name in names}
        fmt = task_format(fmt, [e for examples in datasets.values() for e in examples])
        config = make_config(format=fmt, temperature=temperature, top_k=top_k, max_turns=max_turns,
                             max_tokens=max_tokens, max_new_tokens=turn_budget(fmt, max_new_tokens), seed=seed, few_shot=few_shot,
                             batch_size=batch_size)
        retriever = make_retriever(index) if (index and method != "closed-book" and fmt != "math") else None
        hook = make_experience_hook(hek, experience_top_k, threshold, ablation, usefulness_mode=usefulness,
                                    usefulness=usefulness_file, cases=cases,
                                    case_placement=case_placement) if method == "agent" else None
        generator = make_generator(model, backend)
        start = time.perf_counter()
        metrics = run_eval(datasets, generator, retriever, method, out, hook=hook, n=n, config=config,
                           split=None if split == "all" else split, seed=seed, index=index, samples=samples)
        console.print(Markdown(render_table(metrics, method, {k: m.get("task", "qa") for k, m in metrics.items()})))
        console.print(f"wall time {time.perf_counter() - start:.1f} s; wrote {out}/metrics.json, predictions.jsonl, "
                      "manifest.json, table.md")
