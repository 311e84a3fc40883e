"""Torn writes and truthful exit codes (issue 12, class 2): a crash mid-line never corrupts the next run.

``hiexp.io.append_jsonl`` cuts a torn last line before it appends, so every resumable command (rollout,
distill and its status file, eval, training metrics and rollouts) resumes cleanly; a command that did no
useful work exits non-zero.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from hiexp.cli import app
from hiexp.errors import HiexpError
from hiexp.io import append_jsonl, iter_jsonl
from tests.experience.experience_fixtures import make_trajectory, write_trajectories
from tests.fakes import ScriptedGenerator

ENTRY = ('[{"title": "Quote the exact name", "tags": ["query"], "description": "Put the full name in quotes.", '
         '"thinking": "the vague query failed"}]')


@pytest.mark.parametrize("fragment", ['{"id": "b", "x": [1, 2', "{", '"', "\u00e9t\u00e9"])
def test_append_after_a_torn_line_keeps_every_whole_record(tmp_path, fragment):
    path = tmp_path / "log.jsonl"
    append_jsonl(path, {"id": "a"})
    with path.open("a", encoding="utf-8") as handle:
        handle.write(fragment)  # a crash in the middle of a write
    with pytest.warns(UserWarning, match="torn last line"):
        append_jsonl(path, {"id": "c"})
    assert [r["id"] for r in iter_jsonl(path)] == ["a", "c"]


def test_a_file_of_one_torn_line_is_emptied_then_appended(tmp_path):
    path = tmp_path / "log.jsonl"
    path.write_text('{"id": "half')
    with pytest.warns(UserWarning):
        append_jsonl(path, {"id": "a"})
    assert path.read_text() == '{"id": "a"}\n'


def contrastive_file(tmp_path: Path) -> Path:
    trajectories = []
    for q in ("q1", "q2"):
        trajectories += [make_trajectory(q, 0, True, queries=[f"{q} exact name"]),
                         make_trajectory(q, 1, False, queries=[f"{q} vague"])]
    return write_trajectories(tmp_path / "traj.jsonl", trajectories)


def test_distill_resumed_after_a_crash_mid_entry_gives_a_file_build_can_read(tmp_path):
    from hiexp.experience.build import read_e1
    from hiexp.experience.distill import DistillConfig, distill, sidecar_paths

    trajectories = contrastive_file(tmp_path)
    out = tmp_path / "e1.jsonl"
    distill([trajectories], out, ScriptedGenerator(lambda p, s: ENTRY), DistillConfig(), show_progress=False)
    status, _ = sidecar_paths(out)
    # the crash: the last group's status line and its entry line were cut mid-write
    for path in (out, status):
        text = path.read_text()
        path.write_text(text[: text.rstrip("\n").rfind("\n") + 1] + text.rstrip("\n").rsplit("\n", 1)[-1][:25])
    with pytest.warns(UserWarning):
        distill([trajectories], out, ScriptedGenerator(lambda p, s: ENTRY), DistillConfig(), show_progress=False)
    entries = read_e1([out])  # every line whole
    assert sorted(e.sources["question_id"] for e in entries) == ["q1", "q2"]  # the cut group was done again
    assert [json.loads(line)["status"] for line in status.read_text().splitlines()] == ["ok", "ok"]


@pytest.fixture
def failing_reflector(monkeypatch):
    import hiexp.llm

    monkeypatch.setattr(hiexp.llm, "load_generator",
                        lambda spec="default", backend="auto", **o: ScriptedGenerator(lambda p, s: "no JSON here"))


def test_distill_exits_non_zero_when_every_group_failed(tmp_path, failing_reflector):
    trajectories = contrastive_file(tmp_path)
    out = tmp_path / "e1.jsonl"
    result = CliRunner().invoke(app, ["distill", str(trajectories), "--out", str(out), "--max-retries", "0"])
    assert isinstance(result.exception, HiexpError)
    assert "every one of the 2 groups failed" in str(result.exception)


def test_distill_refuses_an_out_file_it_did_not_write(tmp_path, failing_reflector):
    trajectories = contrastive_file(tmp_path)
    out = tmp_path / "notes.jsonl"
    out.write_text('{"id": "mine"}\n{"id": "torn')
    result = CliRunner().invoke(app, ["distill", str(trajectories), "--out", str(out)])
    assert isinstance(result.exception, HiexpError) and "not an E1 file" in str(result.exception)
    assert out.read_text() == '{"id": "mine"}\n{"id": "torn'
