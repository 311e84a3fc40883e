"""Two commands given one output (issue 33, "two writers at once"): the second stops at once with a clear
message and writes nothing, and a writer killed with -9 leaves no lock behind."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from hiexp.errors import HiexpError
from hiexp.io import exclusive_output

HOLD = """
import sys, time
from hiexp.io import exclusive_output
with exclusive_output(sys.argv[1], "holder"):
    print("held", flush=True)
    time.sleep(60)
"""


def hold_in_another_process(target: Path) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(target)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "held"
    return proc


def test_a_second_writer_is_refused_while_the_first_runs_and_welcome_after_kill_9(tmp_path):
    target = tmp_path / "run"
    proc = hold_in_another_process(target)
    try:
        with pytest.raises(HiexpError, match=r"another hiexp command is writing it \(holder, pid \d+\)"):
            with exclusive_output(target, "second"):
                pass
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    with exclusive_output(target, "third"):  # the kernel dropped the dead writer's lock
        pass


def test_the_lock_is_released_after_an_error_inside(tmp_path):
    with pytest.raises(RuntimeError), exclusive_output(tmp_path / "x", "first"):
        raise RuntimeError("boom")
    with exclusive_output(tmp_path / "x", "again"):
        pass


def test_two_evals_into_one_out_never_write_an_episode_twice(tmp_path):
    from hiexp.data import load_dataset
    from hiexp.eval.evaluate import run_eval
    from tests.fakes import ScriptedGenerator

    examples = {"hotpotqa": load_dataset("hotpotqa", split="test", n=3, seed=0)}
    model = ScriptedGenerator(lambda prompt, params: "Paris</answer>", model_id="scripted")
    out = tmp_path / "run"
    proc = hold_in_another_process(out)
    try:
        with pytest.raises(HiexpError, match="another hiexp command is writing it"):
            run_eval(examples, model, None, "closed-book", out, progress=False)
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    assert not (out / "trajectories").exists()
    run_eval(examples, model, None, "closed-book", out, progress=False)
    lines = (out / "trajectories" / "hotpotqa.jsonl").read_text().splitlines()
    assert len(lines) == 3 and len({json.loads(line)["id"] for line in lines}) == 3


def test_two_rollouts_into_one_file_are_refused(tmp_path):
    from hiexp.agent import AgentConfig, SearchAgent
    from hiexp.agent.rollout import run_rollouts
    from hiexp.contracts.example import Example
    from tests.fakes import ScriptedGenerator

    out = tmp_path / "traj.jsonl"
    agent = SearchAgent(ScriptedGenerator(lambda p, s: "<answer>x</answer>"), None, AgentConfig())
    proc = hold_in_another_process(out)
    try:
        with pytest.raises(HiexpError, match="another hiexp command"):
            run_rollouts([Example("q", "?", ["x"])], agent, 2, out, progress=False)
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    assert not out.exists()

    run_rollouts([Example("q", "?", ["x"])], agent, 2, out, progress=False)
    assert len(out.read_text().splitlines()) == 2


KILLED_EVAL = """
import os, signal, sys
sys.path.insert(0, {root!r})
from hiexp.data import load_dataset
from hiexp.eval.evaluate import run_eval
from tests.fakes import ScriptedGenerator
calls = []
def reply(prompt, params):
    calls.append(1)
    if os.environ.get("KILL_AFTER") and len(calls) > int(os.environ["KILL_AFTER"]):
        os.kill(os.getpid(), signal.SIGKILL)
    return "Paris"
examples = {{"hotpotqa": load_dataset("hotpotqa", split="test", n=6, seed=0)}}
run_eval(examples, ScriptedGenerator(reply), None, "closed-book", sys.argv[1], progress=False,
         config=__import__("hiexp.agent", fromlist=["AgentConfig"]).AgentConfig(batch_size=1))
"""


def test_an_eval_killed_with_minus_9_resumes_to_one_record_per_episode(tmp_path):
    root = str(Path(__file__).resolve().parents[1])
    script = tmp_path / "killed_eval.py"
    script.write_text(KILLED_EVAL.format(root=root))
    out = tmp_path / "run"
    killed = subprocess.run([sys.executable, str(script), str(out)], env={**os.environ, "KILL_AFTER": "3"},
                            capture_output=True, text=True, timeout=300)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert 0 < len((out / "trajectories" / "hotpotqa.jsonl").read_text().splitlines()) < 6
    done = subprocess.run([sys.executable, str(script), str(out)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    ids = [json.loads(line)["id"] for line in (out / "trajectories" / "hotpotqa.jsonl").read_text().splitlines()]
    assert len(ids) == 6 == len(set(ids))


def test_usefulness_and_static_pages_stop_at_once_while_another_writer_holds_their_output(tmp_path):
    from typer.testing import CliRunner

    from hiexp.cli import app
    from hiexp.experience.hek import HEK
    from tests.experience.experience_fixtures import make_trajectory, write_trajectories

    entry_id = HEK.load("demo").entries[0].id

    def saw(record):
        if record["sample"] == 0:
            record["turns"].insert(0, {"role": "experience", "text": "x", "meta": {"entry_ids": [entry_id]}})

    runs = write_trajectories(tmp_path / "runs.jsonl", [make_trajectory("q1", 0, True),
                                                        make_trajectory("q1", 1, False)], edit=saw)
    runner = CliRunner()
    cases = [(["usefulness", "demo", str(runs), "--out", str(tmp_path / "u.json")], tmp_path / "u.json"),
             (["browse", "demo", "--static", str(tmp_path / "site")], tmp_path / "site")]
    for args, target in cases:
        proc = hold_in_another_process(target)
        try:
            result = runner.invoke(app, args)
        finally:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
        assert isinstance(result.exception, HiexpError), (args, result.output)
        assert "another hiexp command is writing it" in str(result.exception)
        assert not target.exists()
        assert runner.invoke(app, args).exit_code == 0  # and goes through once the other writer is gone
