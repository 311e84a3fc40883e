"""``hiexp data``: list the datasets, show one, build a closed-world corpus."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import typer

data_app = typer.Typer(
    help="Datasets: list them, show counts and a sample, build a dataset's closed-world corpus.",
    no_args_is_help=True,
)


def _short(text: str, width: int) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= width else text[: width - 1] + "…"


@data_app.command("list")
def list_command() -> None:
    """List the dataset names (and whether their files are present here)."""
    from rich.console import Console
    from rich.table import Table

    from hiexp.data import NAMED_CORPORA, REGISTRY, find_shared_data_dir

    root = find_shared_data_dir()
    table = Table(title=f"datasets (data directory: {root or 'not found; set $HIEXP_DATA_DIR'})")
    for column in ("name", "task", "corpus", "here", "description"):
        table.add_column(column)
    for spec in REGISTRY.values():
        table.add_row(
            spec.name, spec.task, "yes" if spec.has_context else "-", "yes" if spec.available() else "no",
            spec.description,
        )
    for name, rel in NAMED_CORPORA.items():
        here = root is not None and (root / rel).exists()
        table.add_row(name, "corpus", "yes", "yes" if here else "no", f"passage collection: {rel}")
    Console().print(table)


@data_app.command("show")
def show_command(
    name: str = typer.Argument(..., help="Dataset name (see `hiexp data list`) or a data file path."),
    split: str | None = typer.Option(None, "--split", help="Show only this split (e.g. train or test)."),
    n: int = typer.Option(5, "--n", "-n", min=0, help="How many examples to show as a sample."),
    seed: int = typer.Option(0, "--seed", help="Seed of the sample."),
    skip_bad: bool = typer.Option(False, "--skip-bad", help="Skip malformed records with a warning."),
) -> None:
    """Counts (examples, splits, types, answers, context paragraphs) and a sample of a dataset."""
    from rich.console import Console
    from rich.table import Table

    from hiexp.cli.score import warnings_to_stderr
    from hiexp.data.corpus import corpus_from_items
    from hiexp.data.registry import filter_split, load_raw, select

    with warnings_to_stderr():
        dataset, spec, items = load_raw(name, skip_bad=skip_bad)
    items = filter_split(dataset, spec, items, split)
    examples = [item.example for item in items]
    console = Console()

    summary = Table(title=f"{dataset}" + (f" [{split}]" if split else ""), show_header=False)
    summary.add_column("what")
    summary.add_column("value")
    summary.add_row("examples", str(len(examples)))
    summary.add_row("task", ", ".join(sorted({str(e.metadata.get("task")) for e in examples})))
    split_field = spec.split_field if spec else "split"
    for label, key in ((split_field + "s", split_field), ("types", "type")):
        counts = Counter(str(e.metadata[key]) for e in examples if key in e.metadata)
        if counts:
            summary.add_row(label, ", ".join(f"{k}: {v}" for k, v in counts.most_common()))
    answers = sum(len(e.golden_answers) for e in examples) / max(len(examples), 1)
    summary.add_row("gold answers per question", f"{answers:.2f}")
    paragraphs = [len(item.paragraphs) for item in items]
    if any(paragraphs):
        summary.add_row("context paragraphs per question", f"{sum(paragraphs) / len(paragraphs):.1f}")
        summary.add_row("closed-world corpus", f"{len(corpus_from_items(items))} distinct paragraphs")
    else:
        summary.add_row("closed-world corpus", "none (no context paragraphs)")
    if spec is not None and spec.licence:
        summary.add_row("licence", spec.licence)
    console.print(summary)

    if n > 0:
        sample = Table(title=f"sample of {min(n, len(examples))} (seed {seed})")
        for column in ("id", "question", "golden answers", "type"):
            sample.add_column(column, overflow="fold")
        for ex in select(examples, n, seed):
            golds = " | ".join(ex.golden_answers[:3]) + (" | …" if len(ex.golden_answers) > 3 else "")
            sample.add_row(
                _short(ex.id, 26), _short(ex.question, 90), _short(golds, 50), str(ex.metadata.get("type", ""))
            )
        console.print(sample)


@data_app.command("corpus")
def corpus_command(
    name: str = typer.Argument(..., help="Dataset name, data file, or named corpus (see `hiexp data list`)."),
    out: Path | None = typer.Option(None, "--out", help="Also copy the corpus JSONL here (a new file, or the same "
                                                         "corpus copied before)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace --out even if it holds something else."),
) -> None:
    """Build (once, cached) a dataset's closed-world corpus and print the path of its passage JSONL."""
    from hiexp.data import corpus_path_for
    from hiexp.errors import HiexpError
    from hiexp.io import atomic_write_text

    path = corpus_path_for(name)
    if path is None:
        raise HiexpError(f"{name} has no context paragraphs, so it has no closed-world corpus")
    if out is not None:
        text = path.read_text(encoding="utf-8")
        if out.is_dir():
            raise HiexpError(f"{out}: is a directory; --out takes the file to copy the corpus to")
        if out.exists() and not overwrite and out.read_bytes() != text.encode("utf-8"):
            raise HiexpError(f"{out}: exists and holds something else; choose a new file, or pass --overwrite")
        atomic_write_text(out, text)
        path = out
    typer.echo(str(path))


def register(app: typer.Typer) -> None:
    """Add ``hiexp data ...`` to the app."""
    app.add_typer(data_app, name="data")
