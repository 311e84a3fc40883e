"""``hiexp demo``: rollouts → distillation → HEK → evaluation with and without HEK → report."""

from __future__ import annotations

import typer

from hiexp.agent.config import AgentConfig
from hiexp.cli.agent import BACKEND_OPTION, MAX_NEW_TOKENS_OPTION, MAX_TOKENS_OPTION, MAX_TURNS_OPTION
from hiexp.demo import DemoConfig

_D = DemoConfig()


def register(app: typer.Typer) -> None:
    """Add ``demo`` to the ``hiexp`` app."""

    @app.command("demo")
    def demo(
        out: str = typer.Option(_D.out, "--out", help="Output directory; re-running reuses finished stages."),
        task: str = typer.Option(_D.task, "--task", help="qa (multi-hop search on the HotpotQA demo set) or math (GSM8K word problems, no search tool)."),
        n: int = typer.Option(_D.n, "--n", help="Training questions for the live rollouts (train split)."),
        train_questions: str = typer.Option(_D.train_questions, "--train-questions", help="Live training questions: contrastive (those the shipped HEK came from, where rollouts both succeed and fail) or random."),
        n_test: int = typer.Option(_D.n_test, "--n-test", help="Test questions for the with/without evaluation."),
        hek: str = typer.Option(_D.hek, "--hek", help="Experience of the with-arm: demo (the HEK shipped with hiexp for the task: curated worked cases for QA), demo-paper (the shipped paper-form HEK), live (the one this run builds) or a HEK directory."),
        form: str = typer.Option(None, "--form", show_default=False, help="What this run builds from its rollouts: cases (verified successes kept as worked examples, no reflector; the form measured best for the 1.5B policy; the default for qa) or paper (contrastive distillation, then E2/E3; the default for math)."),
        full: bool = typer.Option(False, "--full", help="Compare on every test question (200), with the ablations (hours on CPU)."),
        success: str = typer.Option(_D.success, "--success", help="Reward that marks a rollout a success: em, cem or f1."),
        success_threshold: float = typer.Option(_D.success_threshold, "--success-threshold", help="A rollout succeeds when that reward is at least this."),
        k: int = typer.Option(_D.k, "--k", help="Rollouts per training question (>= 2, for contrast)."),
        model: str = typer.Option(_D.model, "--model", help="Policy: a preset, local dir, .gguf file or /v1 URL."),
        backend: str = BACKEND_OPTION,
        reflector: str = typer.Option(None, "--reflector", help="Model that distils and summarises experience (default: the policy)."),
        embedder: str = typer.Option(_D.embedder, "--embedder", help="Sentence embedder for clustering and retrieval."),
        seed: int = typer.Option(_D.seed, "--seed", help="Seed of the question draw, rollouts and evaluation."),
        max_turns: int = MAX_TURNS_OPTION,
        max_new_tokens: int = MAX_NEW_TOKENS_OPTION,
        max_tokens: int = MAX_TOKENS_OPTION,
        ablations: bool = typer.Option(False, "--ablations", help="Also evaluate without E1 and without E2/E3."),
        restart: bool = typer.Option(False, "--restart", help="Discard an earlier demo run in --out and start over."),
    ) -> None:
        """Run the whole HiExp loop on a shipped demo set (HotpotQA; GSM8K with --task math) and write a report.

        Stages: rollouts on the train split (K samples per question) → contrastive distillation → HEK →
        evaluation without and with experience on the disjoint test split (same questions, same seeds) →
        report.md / report.html. The with-arm uses the HEK shipped with hiexp unless --hek says otherwise;
        the HEK built live is shown beside it. Each stage is reused when re-run.
        """
        import time

        from hiexp.demo import run_demo
        from hiexp.eval.compare import comparison_markdown

        if task == "math" and max_new_tokens is None:
            from hiexp.demo import MATH_TURN_TOKENS

            max_new_tokens = MATH_TURN_TOKENS
        config = DemoConfig(
            out=out, task=task, n=n, train_questions=train_questions, n_test=n_test, hek=hek, form=form, full=full, k=k,
            model=model,
            backend=backend, reflector=reflector, embedder=embedder, seed=seed, ablations=ablations, success=success,
            success_threshold=success_threshold,
            agent=AgentConfig(max_turns=max_turns, max_tokens=max_tokens,
                              **({"max_new_tokens": max_new_tokens} if max_new_tokens is not None else {})),
        )
        start = time.perf_counter()
        result = run_demo(config, echo=lambda line: typer.echo(line, err=True), restart=restart)
        wall = time.perf_counter() - start
        if result.comparison is not None:
            typer.echo(comparison_markdown(result.comparison, "without HEK", "with HEK"), nl=False)
        typer.echo(f"wall time: {wall:.0f} s")
        typer.echo(f"report: {result.report_html}")
        typer.echo(f"        {result.report_md}")
