"""``run_eval`` / ``hiexp eval``: three methods, the run directory, resume, refusal of mixed settings."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from hiexp.agent import AgentConfig
from hiexp.contracts.example import Example
from hiexp.errors import HiexpError
from hiexp.eval.evaluate import run_eval
from tests.agent.conftest import KeywordRetriever
from tests.fakes import ScriptedGenerator

DATA = {
    "toy": [Example("a", "Where was the director of Jaws born?", ["Cincinnati"], {"dataset": "toy"}),
            Example("b", "What is the capital of France?", ["Paris"], {"dataset": "toy"})],
    "toy2": [Example("c", "Who directed Jaws?", ["Steven Spielberg"], {"dataset": "toy2"})],
}


def policy(prompt, params):
    part = prompt.split("<|im_start|>user\n", 1)[1]
    if "Passages:" in prompt:  # rag
        return "<answer>Paris</answer>"
    if "from what you know" in prompt:  # closed-book
        return "<answer>London</answer>"
    if "<information>" not in part:
        return "<search>Jaws director</search>"
    return "<answer>Steven Spielberg</answer>" if "Who directed" in part else "<answer>Cincinnati</answer>"


def test_agent_eval_writes_the_run_directory(tmp_path):
    out = tmp_path / "run"
    metrics = run_eval(DATA, ScriptedGenerator(policy), KeywordRetriever(), "agent", out, progress=False)
    assert set(metrics) == {"toy", "toy2"}
    assert metrics["toy"]["n"] == 2 and metrics["toy"]["em"] == 0.5 and metrics["toy"]["searches"] == 1.0
    assert metrics["toy2"]["em"] == 1.0 and metrics["toy"]["finish"] == {"answer": 2}
    assert json.loads((out / "metrics.json").read_text()) == metrics
    manifest = json.loads((out / "manifest.json").read_text())
    for key in ("model", "format", "prompt_template_hash", "retrievers", "top_k", "max_turns", "seed",
                "package_version", "hek_version"):
        assert key in manifest
    assert manifest["retrievers"] == {"toy": "keyword-test", "toy2": "keyword-test"}
    preds = [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]
    assert [(p["dataset"], p["id"], p["prediction"], p["em"]) for p in preds] == [
        ("toy", "a", "Cincinnati", 1.0), ("toy", "b", "Cincinnati", 0.0), ("toy2", "c", "Steven Spielberg", 1.0)]
    table = (out / "table.md").read_text()
    assert "| toy | 2 | 50.0 |" in table
    assert (out / "trajectories" / "toy.jsonl").exists()
    # a re-run resumes from the trajectories and asks the model nothing
    again = run_eval(DATA, ScriptedGenerator([]), KeywordRetriever(), "agent", out, progress=False)
    assert again == metrics


def test_baselines(tmp_path):
    rag = run_eval(DATA, ScriptedGenerator(policy), KeywordRetriever(), "rag", tmp_path / "rag", progress=False)
    assert rag["toy"]["em"] == 0.5 and rag["toy"]["searches"] == 1.0
    retriever = KeywordRetriever()
    closed = run_eval(DATA, ScriptedGenerator(policy), retriever, "closed-book", tmp_path / "cb", progress=False)
    assert closed["toy"]["em"] == 0.0 and closed["toy"]["searches"] == 0.0 and retriever.calls == []
    t = json.loads((tmp_path / "rag" / "trajectories" / "toy.jsonl").read_text().splitlines()[0])
    assert t["metadata"]["method"] == "rag" and len(t["passage_ids"][0]) == 3


def test_reusing_a_run_directory_with_other_settings_is_refused(tmp_path):
    run_eval(DATA, ScriptedGenerator(policy), KeywordRetriever(), "agent", tmp_path, progress=False)
    with pytest.raises(HiexpError, match="other settings.*top_k"):
        run_eval(DATA, ScriptedGenerator(policy), KeywordRetriever(), "agent", tmp_path,
                 config=AgentConfig(top_k=5), progress=False)
    with pytest.raises(HiexpError, match="unknown method"):
        run_eval(DATA, ScriptedGenerator(policy), None, "react", tmp_path / "x", progress=False)


def test_a_run_continued_by_another_inference_build_is_refused(tmp_path):
    """Two llama.cpp builds (the prebuilt wheel, one compiled for this CPU) decode greedy text differently."""
    prebuilt, native = ScriptedGenerator(policy), ScriptedGenerator(policy)
    prebuilt.engine, native.engine = "xllamacpp 1 (AVX2)", "xllamacpp 1 (AVX2 AVX512)"
    run_eval(DATA, prebuilt, KeywordRetriever(), "agent", tmp_path, progress=False)
    with pytest.raises(HiexpError, match="engine"):
        run_eval(DATA, native, KeywordRetriever(), "agent", tmp_path, progress=False)
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    del manifest["engine"]  # a run written before manifests recorded the build continues
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    run_eval(DATA, native, KeywordRetriever(), "agent", tmp_path, progress=False)


def test_cli_eval_on_the_demo_set_with_the_tiny_model(tmp_path, shared_data):
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    out = tmp_path / "ev"
    cmd = [sys.executable, "-m", "hiexp.cli", "eval", "--data", "hotpotqa", "--n", "2", "--out", str(out),
           "--model", "tiny-random", "--max-new-tokens", "5", "--max-tokens", "20"]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["hotpotqa"]["n"] == 2
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["split"] == "test" and manifest["retrievers"]["hotpotqa"]
    assert "hotpotqa" in done.stdout
    bad = subprocess.run(cmd[:-6] + ["--method", "nope"], env=env, capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "unknown method" in bad.stderr and "Traceback" not in bad.stderr


def test_baseline_without_the_tag_falls_back_to_the_bare_reply(tmp_path):
    m = run_eval({"toy": DATA["toy"][1:]}, ScriptedGenerator(["Paris\nbecause it is the capital"]), None,
                 "closed-book", tmp_path, progress=False)
    assert m["toy"]["em"] == 1.0 and m["toy"]["finish"] == {"answer": 1}
    t = json.loads((tmp_path / "trajectories" / "toy.jsonl").read_text())
    assert t["answer"] == "Paris" and t["metadata"]["answer_without_tag"] is True


def _math_examples():
    return [Example(f"m{i}", f"What is {i} plus {i}?", [str(2 * i)], {"task": "math", "dataset": "toy-math"})
            for i in range(1, 4)]


def _math_solver(right_on: set[int]):
    """Right on the problems in ``right_on``; with sampling, right on every other sample."""
    count: dict[str, int] = {}

    def reply(prompt, params):
        i = int(prompt.rsplit("What is ", 1)[1].split(" ")[0])
        if params.temperature > 0:
            count[i] = count.get(i, 0) + 1
            return f"\\boxed{{{2 * i if count[i] % 2 else -1}}}"
        return f"\\boxed{{{2 * i if i in right_on else -1}}}"

    return reply


def test_math_eval_with_k_samples_reports_avg_at_k_and_pass_at_k(tmp_path):
    from hiexp.eval.compare import compare_runs

    config = AgentConfig(format="math", max_new_tokens=64, temperature=0.0)
    greedy = run_eval({"toy-math": _math_examples()}, ScriptedGenerator(_math_solver({1})), None, "agent",
                      tmp_path / "greedy", config=config)
    assert greedy["toy-math"]["task"] == "math" and "samples" not in greedy["toy-math"]
    assert greedy["toy-math"]["em"] == pytest.approx(1 / 3)
    assert "pass@1 33.3" in (tmp_path / "greedy" / "table.md").read_text()

    sampled = run_eval({"toy-math": _math_examples()}, ScriptedGenerator(_math_solver(set())), None, "agent",
                       tmp_path / "sampled", config=AgentConfig(format="math", max_new_tokens=64, temperature=0.7),
                       samples=4)
    m = sampled["toy-math"]
    assert (m["samples"], m["n"], m["em"], m["pass@4"]) == (4, 3, 0.5, 1.0)
    predictions = [json.loads(line) for line in (tmp_path / "sampled" / "predictions.jsonl").read_text().splitlines()]
    assert len(predictions) == 12 and sorted({p["sample"] for p in predictions}) == [0, 1, 2, 3]
    assert "avg@4 50.0" in (tmp_path / "sampled" / "table.md").read_text()

    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        comparison = compare_runs(tmp_path / "greedy", tmp_path / "sampled")
    dc = comparison.datasets["toy-math"]
    assert dc.task == "math" and dc.samples == (1, 4) and dc.accuracy_name == "avg@1/4"
    assert set(dc.deltas) == {"accuracy", "tokens"}
    assert dc.deltas["accuracy"].a == pytest.approx(1 / 3) and dc.deltas["accuracy"].b == pytest.approx(0.5)


def test_several_greedy_samples_are_refused(tmp_path):
    with pytest.raises(HiexpError, match="temperature above 0"):
        run_eval({"toy-math": _math_examples()}, ScriptedGenerator(_math_solver(set())), None, "agent",
                 tmp_path / "x", config=AgentConfig(format="math", temperature=0.0), samples=3)
