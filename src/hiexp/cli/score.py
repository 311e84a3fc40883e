"""``hiexp score``: EM / CEM / F1 of a prediction file against a dataset's gold answers."""

from __future__ import annotations

import contextlib
import json
import warnings
from pathlib import Path
from typing import Any

import typer

from hiexp.errors import HiexpError
from hiexp.io import InputError

SCORE_HELP = (
    "Score a prediction file against a dataset's gold answers: EM, CEM and F1, means in [0, 1].\n\n"
    'PREDICTIONS is a JSONL file of {"id": ..., "prediction": ...} lines; a null prediction scores 0.\n\n'
    "Only ids present in both the predictions and the data are scored. Data examples without a prediction "
    "are reported on stderr and left out of the means (--missing-as-wrong counts them as 0). Prediction ids "
    "that are not in the data are reported and ignored; if none match, it is an error. A duplicated "
    "prediction id is an error. Lines with a \"dataset\" field (the predictions.jsonl of an eval run) are "
    "kept only when it equals --data.\n\n"
    "Math datasets (gsm8k, math500, aime2024, aime2025) use answer equivalence for all three metrics."
)


def _read_predictions(path: Path, skip_bad: bool, dataset: str | None = None) -> dict[str, str | None]:
    """``id -> prediction`` of a prediction file.

    Lines that carry a ``dataset`` field (the ``predictions.jsonl`` of ``hiexp eval`` mixes datasets, whose
    ids may repeat) are kept only when it equals ``dataset``, provided some line does.
    """
    from hiexp.data.formats import iter_jsonl_records

    path = Path(path)
    if not path.exists():
        raise HiexpError(f"{path}: no such predictions file")
    records = list(iter_jsonl_records(path, skip_bad=skip_bad))
    if dataset is not None and any(r.get("dataset") == dataset for _, r in records):
        records = [(line, r) for line, r in records if r.get("dataset", dataset) == dataset]
    predictions: dict[str, str | None] = {}
    lines: dict[str, str] = {}
    for lineno, record in records:
        problem = None
        if "id" not in record:
            problem = "no 'id' field (expected {\"id\": ..., \"prediction\": ...})"
        elif "prediction" not in record:
            problem = "no 'prediction' field (expected {\"id\": ..., \"prediction\": ...})"
        elif str(record["id"]) in predictions:
            problem = f"duplicate id {record['id']!r} (first at line {lines[str(record['id'])]})"
        elif not isinstance(record["prediction"], (str, int, float, type(None))) or isinstance(
                record["prediction"], bool) or record["prediction"] != record["prediction"]:  # NaN
            problem = (f"the prediction is {type(record['prediction']).__name__} {record['prediction']!r:.60}, "
                       "not a text answer (a string, a number or null)")
        if problem:
            message = f"{path}:{lineno}: {problem}"
            if skip_bad:
                typer.secho(f"warning: {message}; skipped", err=True, fg="yellow")
                continue
            raise InputError(message)
        qid = str(record["id"])
        value = record["prediction"]
        predictions[qid] = None if value is None else str(value)
        lines[qid] = lineno
    if not predictions:
        raise HiexpError(f"{path}: no predictions")
    return predictions


@contextlib.contextmanager
def warnings_to_stderr():
    """Show warnings raised inside (skipped lines and the like) as one ``warning: ...`` line each."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            yield
        finally:
            for item in caught:
                typer.secho(f"warning: {item.message}", err=True, fg="yellow")


def _examples(sample: list[str], limit: int = 3) -> str:
    shown = ", ".join(sample[:limit])
    return shown + (", ..." if len(sample) > limit else "")


def score_predictions(
    predictions_path: str | Path,
    data: str | Path,
    split: str | None = None,
    skip_bad: bool = False,
    missing_as_wrong: bool = False,
) -> dict[str, Any]:
    """Scores of a prediction file: ``{"em", "cem", "f1", "n", "missing", "extra", "by_type"}``.

    ``missing`` lists data ids without a prediction, ``extra`` prediction ids not in the data.
    """
    from hiexp.data import load_dataset
    from hiexp.scoring.metrics import MATH_FILE_BUDGET_SECONDS, grading_budget, mean_scores, score_answer

    predictions = _read_predictions(Path(predictions_path), skip_bad, dataset=str(data))
    examples = load_dataset(data, split=split, skip_bad=skip_bad)
    by_id = {ex.id: ex for ex in examples}
    extra = [qid for qid in predictions if qid not in by_id]
    if len(extra) == len(predictions):
        where = f"{data}" + (f" (split {split})" if split else "")
        raise HiexpError(
            f"none of the {len(predictions)} prediction ids is in {where} (e.g. {_examples(extra)}); "
            "wrong --data or --split?"
        )
    missing = [ex.id for ex in examples if ex.id not in predictions]
    scores, types = [], {}
    with grading_budget(MATH_FILE_BUDGET_SECONDS) as budget:
        for ex in examples:
            if ex.id not in predictions and not missing_as_wrong:
                continue
            score = score_answer(predictions.get(ex.id), ex.golden_answers, task=ex.metadata.get("task", "qa"))
            scores.append(score)
            types.setdefault(str(ex.metadata.get("type", "")), []).append(score)
    result: dict[str, Any] = mean_scores(scores)
    if budget.skipped:
        result["math_verify_skipped"] = budget.skipped
    result["missing"] = missing
    result["extra"] = extra
    result["by_type"] = {t: mean_scores(s) for t, s in types.items() if t} if len(types) > 1 else {}
    return result


def register(app: typer.Typer) -> None:
    """Add ``hiexp score`` to the app."""

    @app.command("score", help=SCORE_HELP)
    def score(
        predictions: Path = typer.Argument(..., help="JSONL of {\"id\": ..., \"prediction\": ...} lines."),
        data: str = typer.Option(
            ..., "--data", "-d", help="Dataset name (see `hiexp data list`) or a data file path."
        ),
        split: str | None = typer.Option(None, "--split", help="Score against this split only (e.g. test)."),
        as_json: bool = typer.Option(
            False, "--json", help='Print only {"em", "cem", "f1", "n"} as JSON (means in [0, 1]).'
        ),
        skip_bad: bool = typer.Option(
            False, "--skip-bad", help="Skip malformed prediction or data lines with a warning instead of stopping."
        ),
        missing_as_wrong: bool = typer.Option(
            False, "--missing-as-wrong", help="Count data examples without a prediction as wrong (0) in the means."
        ),
    ) -> None:
        with warnings_to_stderr():
            result = score_predictions(
                predictions, data, split=split, skip_bad=skip_bad, missing_as_wrong=missing_as_wrong
            )
        if result["extra"]:
            typer.secho(
                f"warning: {len(result['extra'])} prediction ids are not in {data} and were ignored "
                f"(e.g. {_examples(result['extra'])})",
                err=True,
                fg="yellow",
            )
        if result["missing"]:
            how = "counted as wrong" if missing_as_wrong else "left out of the means"
            typer.secho(
                f"warning: {len(result['missing'])} examples of {data} have no prediction, {how} "
                f"(e.g. {_examples(result['missing'])})",
                err=True,
                fg="yellow",
            )
        if as_json:
            typer.echo(json.dumps({k: result[k] for k in ("em", "cem", "f1", "n")}))
            return
        from rich.console import Console
        from rich.table import Table

        table = Table(title=f"{predictions.name} vs {data}" + (f" [{split}]" if split else ""))
        for column in ("subset", "n", "EM", "CEM", "F1"):
            table.add_column(column, justify="left" if column == "subset" else "right")
        rows = [("all", result), *sorted(result["by_type"].items())]
        for name, row in rows:
            table.add_row(name, str(row["n"]), f"{row['em']:.4f}", f"{row['cem']:.4f}", f"{row['f1']:.4f}")
        Console().print(table)
        if result["missing"] and not missing_as_wrong:
            typer.echo(f"missing predictions: {len(result['missing'])} (not scored)")
