"""Resumable rollouts: nothing lost, nothing duplicated, torn last lines repaired."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from hiexp.agent import AgentConfig, SearchAgent
from hiexp.agent.rollout import load_done_ids, read_trajectories, run_rollouts
from hiexp.contracts.example import Example
from hiexp.errors import HiexpError
from tests.agent.conftest import KeywordRetriever
from tests.fakes import ScriptedGenerator


def policy(prompt, params):
    part = prompt.split("<|im_start|>user\n", 1)[1]
    return "<search>Jaws director</search>" if "<information>" not in part else "<answer>Cincinnati</answer>"


EXAMPLES = [Example(f"q{i}", f"Where was the director of film {i} born?", ["Cincinnati"]) for i in range(5)]


def agent(gen=None, **cfg):
    return SearchAgent(gen or ScriptedGenerator(policy), KeywordRetriever(), AgentConfig(batch_size=3, **cfg))


def ids_in(path):
    return [json.loads(line)["id"] for line in path.read_text().splitlines()]


def test_rollout_writes_k_per_question_and_rerun_is_a_no_op(tmp_path):
    out = tmp_path / "runs" / "trajectories.jsonl"
    s = run_rollouts(EXAMPLES, agent(), 3, out, progress=False)
    assert (s.existing, s.written, s.total) == (0, 15, 15)
    assert sorted(ids_in(out)) == sorted(f"q{i}#{k}" for i in range(5) for k in range(3))
    gen = ScriptedGenerator([])  # would raise if asked anything
    s = run_rollouts(EXAMPLES, agent(gen), 3, out, progress=False)
    assert (s.existing, s.written) == (15, 0)
    # raising k adds only the new samples
    s = run_rollouts(EXAMPLES, agent(), 4, out, progress=False)
    assert s.written == 5 and len(set(ids_in(out))) == len(ids_in(out)) == 20
    t = read_trajectories(out)[0]
    assert t.rewards["em"] == 1.0 and t.finish == "answer"


def test_interrupted_run_resumes_without_loss_or_duplicates(tmp_path):
    out = tmp_path / "t.jsonl"
    calls = {"n": 0}

    def flaky(prompt, params):
        calls["n"] += 1
        if calls["n"] == 9:
            raise KeyboardInterrupt  # Ctrl-C in the middle of a batch
        return policy(prompt, params)

    with pytest.raises(KeyboardInterrupt):
        run_rollouts(EXAMPLES, agent(ScriptedGenerator(flaky)), 2, out, progress=False)
    partial = ids_in(out)
    assert 0 < len(partial) < 10
    run_rollouts(EXAMPLES, agent(), 2, out, progress=False)
    final = ids_in(out)
    assert final[: len(partial)] == partial
    assert len(final) == len(set(final)) == 10

    reference = tmp_path / "ref.jsonl"
    run_rollouts(EXAMPLES, agent(), 2, reference, progress=False)
    strip = lambda p: {t.id: (t.text, t.rewards, t.seed) for t in read_trajectories(p)}  # noqa: E731
    assert strip(out) == strip(reference)


def test_torn_last_line_is_repaired_and_redone(tmp_path):
    out = tmp_path / "t.jsonl"
    run_rollouts(EXAMPLES, agent(), 1, out, progress=False)
    data = out.read_bytes()
    lines = data.splitlines(keepends=True)
    out.write_bytes(b"".join(lines[:-1]) + lines[-1][: len(lines[-1]) // 2])  # a crash mid-write
    lost = json.loads(lines[-1])["id"]
    with pytest.warns(UserWarning, match="torn"):
        assert lost not in load_done_ids(out)
    s = run_rollouts(EXAMPLES, agent(), 1, out, progress=False)
    assert s.written == 1
    assert sorted(ids_in(out)) == sorted(f"q{i}#0" for i in range(5))


def test_corrupt_middle_line_and_duplicate_questions_are_refused(tmp_path):
    out = tmp_path / "t.jsonl"
    line = '{"id": "q0#0", "question_id": "q0", "sample": 0, "turns": []}\n'
    out.write_text(line + "not json\n" + line.replace("q0", "q1"))
    with pytest.raises(HiexpError, match=r"t.jsonl:2"):
        run_rollouts(EXAMPLES, agent(), 1, out, progress=False)
    with pytest.raises(HiexpError, match="twice"):
        run_rollouts(EXAMPLES + EXAMPLES[:1], agent(), 1, tmp_path / "u.jsonl", progress=False)


def test_seeds_do_not_depend_on_batch_composition(tmp_path):
    a = agent().run(EXAMPLES, samples=2, seed=7)
    b = SearchAgent(ScriptedGenerator(policy), KeywordRetriever(), AgentConfig(batch_size=1)).run(EXAMPLES[2:], samples=2, seed=7)
    assert {t.id: t.seed for t in a if t.question_id in {"q2", "q3", "q4"}} == {t.id: t.seed for t in b}


def test_cli_rollout_killed_and_resumed(tmp_path, shared_data):
    """The real command with the tiny model on the demo set: SIGKILL mid-run, re-run, same id set."""
    out = tmp_path / "roll" / "trajectories.jsonl"
    env = dict(os.environ, HF_HUB_OFFLINE="1", HIEXP_CACHE=os.environ.get("HIEXP_CACHE", ""))
    if not env["HIEXP_CACHE"]:
        env.pop("HIEXP_CACHE")
    cmd = [sys.executable, "-m", "hiexp.cli", "rollout", "--data", "hotpotqa", "--split", "train", "--n", "3",
           "--k", "3", "--out", str(out), "--model", "tiny-random", "--max-new-tokens", "6", "--max-tokens", "30",
           "--batch-size", "1", "--seed", "1"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    deadline = time.time() + 240
    while time.time() < deadline and proc.poll() is None:
        if out.exists() and out.read_text().count("\n") >= 2:
            os.kill(proc.pid, signal.SIGKILL)
            break
        time.sleep(0.05)
    proc.wait(timeout=60)
    before = ids_in(out) if out.exists() else []
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    after = ids_in(out)
    assert after[: len(before)] == before
    assert len(after) == len(set(after)) == 9
    again = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0 and ids_in(out) == after
    assert "0 new trajectories, 9 already there" in again.stdout + again.stderr
