"""``hiexp train`` (experience-aligned GRPO/GSPO) and ``hiexp plot`` (stability curves of runs)."""

from __future__ import annotations

from pathlib import Path

import typer

from hiexp.train.config import resolve_config_path


def register(app: typer.Typer) -> None:
    """Add this package's commands to the ``hiexp`` app."""

    @app.command("train")
    def train(
        config: str = typer.Option(
            None, "--config", "-c",
            help="YAML config (every option: docs/training.md); or `cpu` for the shipped CPU example.",
        ),
        hek: str = typer.Option(None, "--hek", help="HEK directory conditioning the rollouts, or `none` (vanilla)."),
        algorithm: str = typer.Option(None, "--algorithm", help="grpo (token-level ratio) or gspo (sequence-level)."),
        model: str = typer.Option(None, "--model", help="Policy model: preset name, local directory or hub id."),
        steps: int = typer.Option(None, "--steps", help="Optimizer steps."),
        n: int = typer.Option(None, "--n", help="Number of training questions."),
        seed: int = typer.Option(None, "--seed", help="Seed of data order, sampling and adapter init."),
        output_dir: str = typer.Option(None, "--output-dir", "-o", help="Run directory (checkpoints, metrics)."),
        report_to: str = typer.Option(None, "--report-to", help="none, tensorboard or wandb."),
        hek_refresh_every: int = typer.Option(
            None, "--hek-refresh-every", min=0,
            help="Closed loop: update the HEK from the rollouts every N steps (0 = a fixed HEK).",
        ),
        reflector: str = typer.Option(
            None, "--reflector",
            help="Who distils at a refresh: policy (the model being trained) or a teacher model or URL.",
        ),
        settings: list[str] = typer.Option(
            None, "--set",
            help="Any option as key=value, repeatable; dotted keys reach the agent (--set agent.max_turns=3).",
        ),
        resume: bool = typer.Option(
            True, "--resume/--no-resume",
            help="Resume from the newest checkpoint in the output directory (default) or start over.",
        ),
        checkpoint: str = typer.Option(None, "--from-checkpoint", help="Resume from this checkpoint directory."),
        force: bool = typer.Option(False, "--force", help="Resume even if the checkpoint used a different HEK."),
        print_config: bool = typer.Option(False, "--print-config", help="Print the resolved config and exit."),
    ) -> None:
        """Experience-aligned RL: GRPO or GSPO whose multi-turn rollouts are conditioned on a HEK."""
        from hiexp.train.config import check_can_run, dump_config, load_config

        overrides = {
            "hek": hek, "algorithm": algorithm, "model": model, "steps": steps, "n": n, "seed": seed,
            "output_dir": output_dir, "report_to": report_to, "hek_refresh_every": hek_refresh_every,
            "hek_reflector": reflector,
        }
        cfg = load_config(resolve_config_path(config), overrides, settings or ())
        if print_config:
            typer.echo(dump_config(cfg), nl=False)
            return
        check_can_run(cfg)  # before any model loads
        from hiexp.progress import console
        from hiexp.train.runner import run_training

        if not resume and checkpoint is None and Path(cfg.output_dir).joinpath("metrics.jsonl").exists():
            console.print(f"[yellow]--no-resume: starting over in {cfg.output_dir} (old metrics are replaced)[/]")
        summary = run_training(cfg, resume=checkpoint if checkpoint else resume, force=force)
        if summary.get("hek_versions"):
            console.print(f"closed loop: {summary['hek_versions']} HEK refreshes; versions in "
                          f"{Path(cfg.output_dir) / 'hek'}")
        console.print(
            f"trained {summary['steps']} step(s) of {cfg.algorithm.upper()} "
            f"({'HEK ' + str(summary['hek_version']) if summary['hek_version'] else 'vanilla'}); "
            f"metrics: {Path(cfg.output_dir) / 'metrics.jsonl'}"
        )

    @app.command("plot")
    def plot(
        runs: list[str] = typer.Argument(..., help="Run directories of `hiexp train` (or metrics.jsonl files)."),
        out: str = typer.Option("train_curves.png", "--out", "-o", help="PNG file to write."),
        metric: list[str] = typer.Option(None, "--metric", "-m", help="Metric to draw (repeatable; default all)."),
        smooth: int = typer.Option(1, "--smooth", help="Trailing moving-average window over steps."),
        title: str = typer.Option(None, "--title", help="Figure title."),
    ) -> None:
        """Draw the stability telemetry (reward/advantage/grad-norm variance, length, KL...) of several runs."""
        from hiexp.train.plot import plot_runs, summary_table

        summary = plot_runs(runs, out, metrics=list(metric) if metric else None, smooth=smooth, title=title)
        typer.echo(f"wrote {out}")
        typer.echo(summary_table(summary))
