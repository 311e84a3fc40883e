"""``hiexp compare RUN_A RUN_B``: per-dataset deltas (B - A) with paired bootstrap intervals; each side may
be several runs, comma-separated (one per dataset), with a row pooled over their questions."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    """Add ``compare`` to the ``hiexp`` app."""

    @app.command("compare")
    def compare(
        run_a: str = typer.Argument(..., help="Baseline run directory (the --out of `hiexp eval`), e.g. without HEK; "
                                              "several, comma-separated, for one arm run per dataset."),
        run_b: str = typer.Argument(..., help="Run(s) to compare against the baseline, e.g. with --hek, in the "
                                              "same order."),
        json_output: bool = typer.Option(False, "--json", help="Print the comparison as JSON instead of a table."),
        resamples: int = typer.Option(2000, "--resamples", help="Bootstrap resamples (100-100000)."),
        seed: int = typer.Option(0, "--seed", help="Seed of the bootstrap resampling."),
        confidence: float = typer.Option(0.95, "--confidence", help="Level of the interval (0-1)."),
        by_kind: bool = typer.Option(False, "--by-kind", help="Compare yes/no, choice and open questions apart, "
                                                               "with a pooled row over all of them."),
    ) -> None:
        """Deltas (B - A) of EM, CEM, F1 (points), searches and tokens per question, paired on question id."""
        from hiexp.errors import HiexpError
        from hiexp.eval.compare import compare_runs, comparison_markdown

        if not 0.5 <= confidence < 1.0:
            raise HiexpError(f"--confidence must be in [0.5, 1), got {confidence}")
        with warnings.catch_warnings(record=True):
            warnings.simplefilter("always")
            result = compare_runs([Path(r) for r in run_a.split(",") if r], [Path(r) for r in run_b.split(",") if r],
                                  resamples=resamples, seed=seed, confidence=confidence, by_kind=by_kind)
        if json_output:
            typer.echo(json.dumps(result.to_dict(), indent=2))
            return
        for note in result.warnings:
            typer.secho(f"warning: {note}", fg="yellow", err=True)
        typer.echo(f"A = {run_a}\nB = {run_b}")
        typer.echo(comparison_markdown(result), nl=False)
        typer.echo(
            f"(paired bootstrap over questions, {result.resamples} resamples, seed {result.seed}; "
            "EM/CEM/F1 in points)"
        )
