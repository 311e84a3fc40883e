"""``hiexp score``: a prediction file against a dataset, with the bad cases of a real file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from hiexp.cli import app
from hiexp.cli.score import score_predictions
from hiexp.data import load_dataset
from hiexp.errors import HiexpError

runner = CliRunner()


def _write(path: Path, records: list) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in records))
    return path


@pytest.fixture(scope="module")
def demo_test():
    return load_dataset("hotpotqa", split="test")


def _json(result) -> dict:
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_gold_predictions_score_one(tmp_path, demo_test):
    preds = _write(tmp_path / "p.jsonl", [{"id": e.id, "prediction": e.golden_answers[0]} for e in demo_test])
    result = runner.invoke(app, ["score", str(preds), "--data", "hotpotqa", "--split", "test", "--json"])
    assert result.exit_code == 0, result.output
    assert _json(result) == {"em": 1.0, "cem": 1.0, "f1": 1.0, "n": 200}


def test_mixed_predictions(tmp_path, demo_test):
    first, second = demo_test[0], demo_test[1]
    records = [
        {"id": first.id, "prediction": f"I think it is {first.golden_answers[0]}"},  # CEM only
        {"id": second.id, "prediction": None},  # no answer: 0
    ]
    preds = _write(tmp_path / "p.jsonl", records)
    result = runner.invoke(app, ["score", str(preds), "--data", "hotpotqa", "--json"])
    assert result.exit_code == 0, result.output
    scores = _json(result)
    assert scores["n"] == 2 and scores["em"] == 0.0 and scores["cem"] == 0.5
    assert 0.0 < scores["f1"] < 0.5
    assert "393 examples of hotpotqa have no prediction" in result.stderr


def test_missing_as_wrong_and_extra_ids(tmp_path, demo_test):
    records = [{"id": e.id, "prediction": e.golden_answers[0]} for e in demo_test[:100]]
    records.append({"id": "not-a-real-id", "prediction": "x"})
    preds = _write(tmp_path / "p.jsonl", records)
    result = runner.invoke(
        app, ["score", str(preds), "--data", "hotpotqa", "--split", "test", "--json", "--missing-as-wrong"]
    )
    assert result.exit_code == 0, result.output
    assert _json(result) == {"em": 0.5, "cem": 0.5, "f1": 0.5, "n": 200}
    assert "1 prediction ids are not in hotpotqa" in result.stderr and "not-a-real-id" in result.stderr
    details = score_predictions(preds, "hotpotqa", split="test")
    assert details["n"] == 100 and details["em"] == 1.0
    assert details["extra"] == ["not-a-real-id"] and len(details["missing"]) == 100


def test_table_output(tmp_path, demo_test):
    preds = _write(tmp_path / "p.jsonl", [{"id": e.id, "prediction": "yes"} for e in demo_test])
    result = runner.invoke(app, ["score", str(preds), "--data", "hotpotqa", "--split", "test"])
    assert result.exit_code == 0, result.output
    assert "EM" in result.stdout and "comparison" in result.stdout and "bridge" in result.stdout


def test_no_overlap_is_an_error(tmp_path):
    preds = _write(tmp_path / "p.jsonl", [{"id": "x1", "prediction": "a"}])
    result = runner.invoke(app, ["score", str(preds), "--data", "hotpotqa"])
    assert isinstance(result.exception, HiexpError)
    assert "none of the 1 prediction ids" in str(result.exception)


def test_bad_prediction_files(tmp_path, demo_test):
    good = {"id": demo_test[0].id, "prediction": "x"}
    malformed = _write(tmp_path / "m.jsonl", [good, "{oops"])
    result = runner.invoke(app, ["score", str(malformed), "--data", "hotpotqa"])
    assert isinstance(result.exception, HiexpError) and "m.jsonl:2" in str(result.exception)
    result = runner.invoke(app, ["score", str(malformed), "--data", "hotpotqa", "--skip-bad", "--json"])
    assert result.exit_code == 0 and _json(result)["n"] == 1
    duplicate = _write(tmp_path / "d.jsonl", [good, good])
    result = runner.invoke(app, ["score", str(duplicate), "--data", "hotpotqa"])
    assert isinstance(result.exception, HiexpError) and "duplicate id" in str(result.exception)
    no_field = _write(tmp_path / "f.jsonl", [{"id": demo_test[0].id, "answer": "x"}])
    result = runner.invoke(app, ["score", str(no_field), "--data", "hotpotqa"])
    assert isinstance(result.exception, HiexpError) and "no 'prediction' field" in str(result.exception)
    result = runner.invoke(app, ["score", str(tmp_path / "none.jsonl"), "--data", "hotpotqa"])
    assert isinstance(result.exception, HiexpError) and "no such predictions file" in str(result.exception)
    result = runner.invoke(app, ["score", str(malformed), "--data", "nosuch"])
    assert isinstance(result.exception, HiexpError)


def test_math_dataset_uses_answer_equivalence(shared_data, tmp_path):
    gsm = load_dataset("gsm8k", n=3)
    records = [
        {"id": gsm[0].id, "prediction": f"\\boxed{{{gsm[0].golden_answers[0]}.0}}"},
        {"id": gsm[1].id, "prediction": f"${gsm[1].golden_answers[0]}"},
        {"id": gsm[2].id, "prediction": "-1"},
    ]
    preds = _write(tmp_path / "p.jsonl", records)
    result = runner.invoke(app, ["score", str(preds), "--data", "gsm8k", "--json"])
    assert result.exit_code == 0, result.output
    scores = _json(result)
    assert scores["n"] == 3 and scores["em"] == pytest.approx(2 / 3) and scores["f1"] == scores["em"]


def test_score_against_a_data_path(shared_data, tmp_path):
    path = shared_data / "bamboogle" / "bamboogle_test_flashrag.jsonl"
    preds = _write(tmp_path / "p.jsonl", [{"id": "test_0", "prediction": "James Madison"}])
    result = runner.invoke(app, ["score", str(preds), "--data", str(path), "--json"])
    assert result.exit_code == 0, result.output
    assert _json(result) == {"em": 1.0, "cem": 1.0, "f1": 1.0, "n": 1}


def test_eval_run_predictions_with_several_datasets(tmp_path, demo_test):
    # an eval run's predictions.jsonl mixes datasets whose ids can repeat: --data picks its own lines
    records = [{"dataset": "hotpotqa", "id": e.id, "prediction": e.golden_answers[0]} for e in demo_test[:3]]
    records.append({"dataset": "other", "id": demo_test[0].id, "prediction": "wrong"})
    preds = _write(tmp_path / "predictions.jsonl", records)
    result = runner.invoke(app, ["score", str(preds), "--data", "hotpotqa", "--json"])
    assert result.exit_code == 0, result.output
    assert _json(result) == {"em": 1.0, "cem": 1.0, "f1": 1.0, "n": 3}


def test_cli_error_is_one_line_without_traceback(tmp_path):
    import subprocess
    import sys

    preds = _write(tmp_path / "p.jsonl", [{"id": "x", "prediction": "y"}])
    proc = subprocess.run(
        [sys.executable, "-m", "hiexp.cli", "score", str(preds), "--data", "no-such-data"],
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 2
    assert "unknown dataset 'no-such-data'" in proc.stderr and "Traceback" not in proc.stderr
