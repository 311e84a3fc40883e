"""``hiexp rollout``: K sampled trajectories per question, scored and appended to a resumable JSONL."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from hiexp.agent.config import AgentConfig


def make_config(**options: Any) -> Any:
    """An ``AgentConfig`` from CLI options, leaving out those not given."""
    from hiexp.agent.config import AgentConfig

    return AgentConfig(**{k: v for k, v in options.items() if v is not None})


# Options that `hiexp rollout` and `hiexp eval` share, declared once so that their flags, defaults and help
# stay the same in both commands.
MODEL_OPTION = typer.Option("default", "--model", help="Model preset, local dir, .gguf file, hub id or http(s)://.../v1 URL.")
BACKEND_OPTION = typer.Option("auto", "--backend", help="Generator backend: auto (llama.cpp for GGUF models when installed, else transformers; openai for URLs), transformers, openai, llamacpp.")
FORMAT_OPTION = typer.Option(None, "--format", help="Action format: search_r1, tool_call or math (default: math "
                             "for math datasets such as gsm8k, else search_r1).")


def task_format(fmt: str | None, examples: list[Any]) -> str:
    """The format asked for, or the one the data calls for: ``math`` when every question is a math
    problem, ``search_r1`` otherwise."""
    if fmt is not None:
        return fmt
    math = bool(examples) and all((e.metadata or {}).get("task") == "math" for e in examples)
    return "math" if math else "search_r1"


def turn_budget(fmt: str, max_new_tokens: int | None) -> int | None:
    """``--max-new-tokens``, or its default for the format: a math solution is written in one turn."""
    if max_new_tokens is None and fmt == "math":
        return MATH_MAX_NEW_TOKENS
    return max_new_tokens
_AGENT = AgentConfig()
TOP_K_OPTION = typer.Option(_AGENT.top_k, "--top-k", help="Passages per search.")
MAX_TURNS_OPTION = typer.Option(_AGENT.max_turns, "--max-turns", help="Searches allowed per episode.")
MAX_TOKENS_OPTION = typer.Option(_AGENT.max_tokens, "--max-tokens", help="Completion tokens per episode (policy and injected passages).")
MAX_NEW_TOKENS_OPTION = typer.Option(None, "--max-new-tokens", help=f"Tokens generated per turn (default "
                                     f"{_AGENT.max_new_tokens}; 768 for the math format, which reasons in one turn).")
MATH_MAX_NEW_TOKENS = 768
FEW_SHOT_OPTION = typer.Option(True, "--few-shot/--no-few-shot", help="Put a worked example in the system prompt.")
BATCH_SIZE_OPTION = typer.Option(16, "--batch-size", help="Episodes generated together.")


def register(app: typer.Typer) -> None:
    """Add ``rollout`` to the ``hiexp`` app."""

    @app.command()
    def rollout(
        data: str = typer.Option(..., "--data", help="Dataset name (see `hiexp data list`) or data file."),
        out: Path = typer.Option(..., "--out", help="Trajectory JSONL; appended to, and resumed from on re-run."),
        k: int = typer.Option(8, "--k", help="Trajectories sampled per question."),
        split: str = typer.Option("train", "--split", help="Dataset split ('train' for the demo set); 'all' for every record."),
        n: int | None = typer.Option(None, "--n", help="Questions drawn (deterministically by --seed); all if not given."),
        model: str = MODEL_OPTION,
        backend: str = BACKEND_OPTION,
        index: str | None = typer.Option(None, "--index", help="Retriever: index dir, corpus JSONL or .../retrieve URL (default: the dataset's own corpus)."),
        fmt: str = FORMAT_OPTION,
        seed: int = typer.Option(0, "--seed", help="Seed of the question draw and of every (question, sample) episode."),
        hek: str | None = typer.Option(None, "--hek", help="HEK directory: inject experience while searching."),
        temperature: float = typer.Option(1.0, "--temperature", help="Sampling temperature (rollouts sample at 1.0)."),
        top_p: float = typer.Option(1.0, "--top-p", help="Nucleus sampling mass."),
        top_k: int = TOP_K_OPTION,
        max_turns: int = MAX_TURNS_OPTION,
        max_tokens: int = MAX_TOKENS_OPTION,
        max_new_tokens: int = MAX_NEW_TOKENS_OPTION,
        few_shot: bool = FEW_SHOT_OPTION,
        batch_size: int = BATCH_SIZE_OPTION,
    ) -> None:
        """Sample K trajectories per question, score them, append each to --out as it finishes (resumable)."""
        from rich.console import Console

        from hiexp.agent.loop import SearchAgent
        from hiexp.agent.rollout import run_rollouts
        from hiexp.components import make_experience_hook, make_generator, make_retriever
        from hiexp.data import load_dataset

        examples = load_dataset(data, split=None if split == "all" else split, n=n, seed=seed)
        fmt = task_format(fmt, examples)
        config = make_config(format=fmt, temperature=temperature, top_p=top_p, top_k=top_k, max_turns=max_turns,
                             max_tokens=max_tokens, max_new_tokens=turn_budget(fmt, max_new_tokens), seed=seed, few_shot=few_shot,
                             batch_size=batch_size)
        retriever = None if fmt == "math" else make_retriever(index, dataset=data)
        hook = make_experience_hook(hek)
        generator = make_generator(model, backend)
        agent = SearchAgent(generator, retriever, config, hook)
        from hiexp.errors import HiexpError

        summary = run_rollouts(examples, agent, k, out, seed=seed)
        Console().print(f"{summary.written} new trajectories, {summary.existing} already there, "
                      f"{summary.total} in all: {summary.path}")
        if summary.failed:
            raise HiexpError(f"{summary.failed} episodes got no answer from the generator (reasons in "
                             f"{summary.failed_path}); re-run the same command to try them again")
