"""Messages that tell the truth (issue 12, class 9): what a value is, never what it is not."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from hiexp.cli import app, error_line
from hiexp.errors import HiexpError


@pytest.mark.parametrize("prediction", [{"a": [1, 2]}, [1, 2], True])
def test_a_prediction_that_is_not_text_is_named_not_scored_as_its_string(tmp_path, prediction):
    from hiexp.data import load_dataset

    example = load_dataset("hotpotqa", split="test", n=1, seed=0)[0]
    path = tmp_path / "pred.jsonl"
    path.write_text(json.dumps({"id": example.id, "prediction": prediction}) + "\n")
    result = CliRunner().invoke(app, ["score", str(path), "--data", "hotpotqa"])
    assert isinstance(result.exception, HiexpError)
    line = error_line(result.exception, ["score", str(path)])
    assert "not a text answer" in line and "--skip-bad" in line  # score has --skip-bad


@pytest.mark.parametrize("answer", ["NaN", "[NaN]", "null"])
def test_a_missing_gold_answer_is_missing_not_the_word_nan(tmp_path, answer):
    from hiexp.data import load_dataset

    path = tmp_path / "d.jsonl"
    path.write_text('{"id": "1", "question": "Who?", "answer": "Ann"}\n'
                    '{"id": "2", "question": "When?", "answer": ' + answer + "}\n")
    with pytest.raises(HiexpError, match=r"d\.jsonl:2: no gold answer"):
        load_dataset(path)
    with pytest.warns(UserWarning):
        examples = load_dataset(path, skip_bad=True)
    assert [e.golden_answers for e in examples] == [["Ann"]]


def test_numbers_are_answers_too(tmp_path):
    from hiexp.data import load_dataset

    path = tmp_path / "d.jsonl"
    path.write_text('{"id": "1", "question": "How many?", "answer": 5}\n')
    assert load_dataset(path)[0].golden_answers == ["5"]


def test_report_markdown_escapes_what_users_and_models_wrote():
    from hiexp.report import md_cell

    assert md_cell("a | b") == "a \\| b"
    assert md_cell("<img src=x onerror=alert(1)>") == "&lt;img src=x onerror=alert(1)&gt;"
    assert md_cell("two\nlines") == "two lines"


def test_the_template_escapes_every_free_text_field():
    from pathlib import Path

    import hiexp

    template = (Path(hiexp.__file__).parent / "templates" / "report.md.jinja").read_text()
    for field in ("title", "summary", "key", "value", "note", "hek.title", "hek.note"):
        assert f"{{{{ {field} | md }}}}" in template, field


def test_a_bogus_usefulness_mode_is_named_as_such():
    from hiexp.experience.retrieve import load_experience_hook

    with pytest.raises(HiexpError, match="unknown usefulness mode 'bogus'"):
        load_experience_hook("demo", usefulness_mode="bogus")


def test_a_file_without_splits_says_to_take_them_all(tmp_path):
    from hiexp.data import load_dataset

    path = tmp_path / "mine.jsonl"
    path.write_text('{"id": "a", "question": "q?", "golden_answers": ["x"]}\n')
    with pytest.raises(HiexpError, match="no splits to choose from; use split 'all'"):
        load_dataset(str(path), split="test")
    assert len(load_dataset(str(path), split=None)) == 1


def test_an_eval_whose_every_episode_failed_says_so(tmp_path):
    from hiexp.contracts.generation import Generation
    from hiexp.data import load_dataset
    from hiexp.eval.evaluate import run_eval

    class Down:
        model_id = "down"
        tokenizer = None

        def generate(self, prompts, params):
            return [Generation(text="", finish_reason="error", error="connection refused") for _ in prompts]

    examples = {"hotpotqa": load_dataset("hotpotqa", split="test", n=3, seed=0)}
    with pytest.raises(HiexpError, match=r"3 episodes got no answer from the generator \(reasons in .*failed"):
        run_eval(examples, Down(), None, "agent", tmp_path / "run", progress=False)


def test_nan_and_infinite_numbers_are_refused_where_they_are_read():
    import math

    from hiexp.agent import AgentConfig
    from hiexp.components import http_settings
    from hiexp.demo import DemoConfig

    for value in (math.nan, math.inf):
        with pytest.raises(HiexpError, match="temperature"):
            AgentConfig(temperature=value)
        with pytest.raises(HiexpError, match="time-out"):
            with http_settings(timeout=value):
                pass
        with pytest.raises(HiexpError, match="--success-threshold"):
            DemoConfig(success_threshold=value).validate()
    from hiexp.components import make_experience_hook

    with pytest.raises(HiexpError, match="threshold is a cosine"):
        make_experience_hook("demo", threshold=math.nan, embedder="hashing-384")
