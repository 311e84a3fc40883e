"""Contrastive distillation with a scripted reflector: prompts, parsing, retries, failures, resume, bad input."""

from __future__ import annotations

import json
import re

import pytest
from experience_fixtures import make_trajectory, write_trajectories

from hiexp.errors import HiexpError
from hiexp.experience.distill import DistillConfig, build_prompt, distill, group_trajectories, load_trajectories
from hiexp.io import read_jsonl
from tests.fakes import ScriptedGenerator


def entry_json(title="Quote the full name in the query", n=1):
    items = [{"title": f"{title} {i}", "tags": ["query"], "description": "Search the exact name first.",
              "thinking": "The successful attempt did this."} for i in range(n)]
    return json.dumps(items)


def question_of(prompt: str) -> str:
    return re.search(r"Question: What is the answer to (\w+)\?", prompt).group(1)


def statuses(out):
    return read_jsonl(out.with_name("e1.groups.jsonl"))


def test_contrastive_groups_only_by_default(trajectory_file, tmp_path):
    out = tmp_path / "e1.jsonl"
    reflector = ScriptedGenerator(lambda prompt, params: entry_json(n=2), model_id="reflector-x")
    summary = distill([trajectory_file], out, reflector, DistillConfig(), show_progress=False)
    assert (summary.groups_total, summary.groups_eligible, summary.groups_skipped_uniform) == (5, 3, 2)
    assert summary.groups_by_kind == {"contrastive": 3, "all_success": 1, "all_failure": 1}
    assert "3 contrastive (a success and a failure), 1 all-success, 1 all-failure" in summary.render()
    assert summary.groups_ok == 3 and summary.entries_written == 6 and summary.entries_per_group == {2: 3}
    entries = read_jsonl(out)
    assert {e["sources"]["question_id"] for e in entries} == {"q1", "q2", "q3"}
    first = entries[0]
    assert first["level"] == "E1" and first["model"] == "reflector-x"
    assert first["sources"]["success_ids"] == ["q1#0"]
    assert first["sources"]["failure_ids"] == ["q1#1", "q1#2"]
    assert len({e["id"] for e in entries}) == 6
    meta = json.loads(out.with_name("e1.meta.json").read_text())
    assert meta["reflector"] == "reflector-x" and len(meta["trajectory_files"][0]["sha256"]) == 64
    assert "3 ok" in summary.render() or "3 ok, 0 failed" in summary.render()


def test_prompt_puts_both_sides_with_shortened_passages(trajectory_file):
    groups = group_trajectories(load_trajectories([trajectory_file]), DistillConfig())
    prompt = build_prompt(groups[0], DistillConfig(passage_chars=60))
    assert "[SUCCESS] answer: Paris" in prompt and "[FAILURE] answer: Lyon" in prompt
    assert "search 1: q1 exact name" in prompt and "search 1: q1 vague" in prompt
    assert "(no search)" in prompt
    assert "Passage 1: long text" in prompt and "long text " * 10 not in prompt  # passages are cut
    assert "Correct answer: Paris" in prompt and "JSON list" in prompt
    assert "</information>" not in prompt and "Other 1: short text" in prompt
    assert len(prompt) < 3000  # compact enough for the small default reflector


def test_uniform_groups_on_request(trajectory_file, tmp_path):
    out = tmp_path / "e1.jsonl"
    reflector = ScriptedGenerator(lambda prompt, params: entry_json())
    summary = distill([trajectory_file], out, reflector, DistillConfig(include_uniform=True), show_progress=False)
    assert summary.groups_eligible == 5 and summary.groups_ok == 5
    kinds = {e["sources"]["question_id"]: e["sources"]["kind"] for e in read_jsonl(out)}
    assert kinds["q4"] == "all_success" and kinds["q5"] == "all_failure"
    assert any("None of them got the right answer" in p for p in reflector.prompts)


def test_retry_shows_the_parse_error_then_succeeds(trajectory_file, tmp_path):
    out = tmp_path / "e1.jsonl"
    seen = {}

    def script(prompt, params):
        q = question_of(prompt)
        seen.setdefault(q, []).append(prompt)
        if q == "q2" and len(seen[q]) == 1:
            return "The decisive step was the exact-name search."  # prose, no JSON
        return entry_json()

    summary = distill([trajectory_file], out, ScriptedGenerator(script), DistillConfig(), show_progress=False)
    assert summary.groups_ok == 3 and summary.groups_failed == 0
    retry = seen["q2"][1]
    assert "could not be used" in retry and "no JSON" in retry and "exact-name search" in retry
    status = {s["question_id"]: s for s in statuses(out)}
    assert status["q2"]["attempts"] == 2 and status["q1"]["attempts"] == 1


def test_failed_group_is_recorded_and_resume_redoes_only_it(trajectory_file, tmp_path):
    out = tmp_path / "e1.jsonl"

    def stubborn(prompt, params):
        return "I cannot answer in JSON." if question_of(prompt) == "q3" else entry_json()

    summary = distill([trajectory_file], out, ScriptedGenerator(stubborn), DistillConfig(max_retries=1),
                      show_progress=False)
    assert summary.groups_ok == 2 and summary.groups_failed == 1
    failed = [s for s in statuses(out) if s["status"] == "failed"]
    assert failed[0]["question_id"] == "q3" and failed[0]["attempts"] == 2
    assert "no JSON" in failed[0]["reason"] and "cannot answer" in failed[0]["last_reply"]
    assert len(read_jsonl(out)) == 2

    again = ScriptedGenerator(lambda prompt, params: entry_json(title="Retry worked"))
    summary = distill([trajectory_file], out, again, DistillConfig(), show_progress=False)
    assert [question_of(p) for p in again.prompts] == ["q3"]
    assert summary.groups_done_before == 2 and summary.groups_ok == 1 and summary.entries_total == 3

    nothing = ScriptedGenerator([])
    summary = distill([trajectory_file], out, nothing, DistillConfig(), show_progress=False)
    assert nothing.prompts == [] and summary.groups_done_before == 3 and summary.entries_total == 3


def test_generator_crash_is_a_recorded_failure(trajectory_file, tmp_path):
    class Broken(ScriptedGenerator):
        def generate(self, prompts, params):
            raise ConnectionError("server went away")

    out = tmp_path / "e1.jsonl"
    summary = distill([trajectory_file], out, Broken([]), DistillConfig(max_retries=0), show_progress=False)
    assert summary.groups_failed == 3
    assert all("server went away" in s["reason"] for s in statuses(out))


def test_resume_drops_entries_of_a_group_without_status(trajectory_file, tmp_path):
    """A crash between writing a group's entries and its status line: the orphans go, the group is redone."""
    out = tmp_path / "e1.jsonl"
    distill([trajectory_file], out, ScriptedGenerator(lambda p, s: entry_json()), DistillConfig(), show_progress=False)
    status_path = out.with_name("e1.groups.jsonl")
    lines = status_path.read_text().splitlines()
    status_path.write_text("\n".join(lines[:2]) + "\n")  # q3's status lost
    redo = ScriptedGenerator(lambda p, s: entry_json(title="Fresh"))
    summary = distill([trajectory_file], out, redo, DistillConfig(use_cache=False), show_progress=False)
    assert [question_of(p) for p in redo.prompts] == ["q3"]
    titles = [e["title"] for e in read_jsonl(out)]
    assert len(titles) == 3 and titles[-1].startswith("Fresh") and summary.entries_total == 3


def test_changed_trajectories_redo_the_group(trajectory_file, tmp_path):
    out = tmp_path / "e1.jsonl"
    distill([trajectory_file], out, ScriptedGenerator(lambda p, s: entry_json()), DistillConfig(), show_progress=False)
    more = write_trajectories(tmp_path / "more.jsonl", [make_trajectory("q1", 9, True)])
    redo = ScriptedGenerator(lambda p, s: entry_json(title="With more"))
    distill([trajectory_file, more], out, redo, DistillConfig(), show_progress=False)
    assert [question_of(p) for p in redo.prompts] == ["q1"]
    entries = read_jsonl(out)
    assert len(entries) == 3
    assert [e for e in entries if e["sources"]["question_id"] == "q1"][0]["title"].startswith("With more")


def test_other_schema_version_is_refused(tmp_path):
    path = write_trajectories(tmp_path / "t.jsonl", [make_trajectory("q1", 0, True)],
                              edit=lambda r: r.update(schema_version=99))
    with pytest.raises(HiexpError, match=r"t.jsonl:1: trajectory schema_version 99"):
        load_trajectories([path])
    from hiexp.experience.build import read_rollouts  # the cases and the threshold calibration read alike

    with pytest.raises(HiexpError, match=r"t.jsonl:1: trajectory schema_version 99"):
        read_rollouts([path])


def test_missing_rewards_are_listed_before_any_work(tmp_path):
    trajectories = [make_trajectory("q1", 0, True), make_trajectory("q1", 1, False)]
    path = write_trajectories(tmp_path / "t.jsonl", trajectories,
                              edit=lambda r: r.update(rewards={}) if r["sample"] == 1 else None)
    reflector = ScriptedGenerator([])
    with pytest.raises(HiexpError, match=r"1 trajectories have no 'cem' reward.*t.jsonl:2 \(q1#1\)"):
        distill([path], tmp_path / "e1.jsonl", reflector)
    assert reflector.prompts == [] and not (tmp_path / "e1.jsonl").exists()


def test_not_a_trajectory_file(tmp_path):
    path = tmp_path / "t.jsonl"
    path.write_text('{"question": "x"}\n')
    with pytest.raises(HiexpError, match="t.jsonl:1: .*lacks"):
        load_trajectories([path])


def test_threshold_and_reward_key(tmp_path):
    a, b = make_trajectory("q1", 0, True), make_trajectory("q1", 1, False)
    a.rewards["f1"], b.rewards["f1"] = 0.8, 0.4
    path = write_trajectories(tmp_path / "t.jsonl", [a, b])
    groups = group_trajectories(load_trajectories([path], "f1"), DistillConfig(reward_key="f1", threshold=0.5))
    assert groups[0].kind == "contrastive"
    groups = group_trajectories(load_trajectories([path], "f1"), DistillConfig(reward_key="f1", threshold=0.3))
    assert groups[0].kind == "all_success"


def test_chat_template_and_token_ids_when_the_generator_has_a_tokenizer(trajectory_file, tmp_path):
    class FakeTokenizer:
        chat_template = "x"

        def apply_chat_template(self, messages, add_generation_prompt, tokenize):
            return f"<user>{messages[0]['content']}<assistant>"

        def __call__(self, text, add_special_tokens):
            return {"input_ids": [len(text)]}

    class TokenGenerator(ScriptedGenerator):
        def generate(self, prompts, params):
            assert all(isinstance(p, list) and isinstance(p[0], int) for p in prompts)
            return super().generate(["x"] * len(prompts), params)

    generator = TokenGenerator(lambda p, s: entry_json())
    generator.tokenizer = FakeTokenizer()
    summary = distill([trajectory_file], tmp_path / "e1.jsonl", generator, DistillConfig(), show_progress=False)
    assert summary.groups_ok == 3


def test_text_only_backends_with_a_chat_endpoint_get_chat_messages(trajectory_file, tmp_path):
    class ChatServer(ScriptedGenerator):
        def __init__(self):
            super().__init__([])
            self.conversations = []

        def generate(self, prompts, params):
            raise AssertionError("raw completion must not be used when a chat endpoint exists")

        def chat_batch(self, conversations, params):
            self.conversations += conversations
            return super().generate(["x"] * 0, params) or [
                type("G", (), {"text": entry_json()})() for _ in conversations]

    server = ChatServer()
    summary = distill([trajectory_file], tmp_path / "e1.jsonl", server, DistillConfig(), show_progress=False)
    assert summary.groups_ok == 3
    assert all(c[0]["role"] == "user" and "Question:" in c[0]["content"] for c in server.conversations)


def test_the_same_entry_twice_in_one_reply_is_written_once(trajectory_file, tmp_path):
    out = tmp_path / "e1.jsonl"
    item = {"title": "Quote the full name", "tags": [], "description": "Search the exact name first."}
    twin = dict(item, title="  quote the FULL name ")
    reflector = ScriptedGenerator(lambda prompt, params: json.dumps([item, twin]))
    summary = distill([trajectory_file], out, reflector, DistillConfig(), show_progress=False)
    assert summary.groups_ok == 3 and summary.entries_written == 3


def test_the_success_rule_decides_which_questions_are_contrastive(tmp_path):
    # a wordy answer that contains the gold answer: a success by cover EM (the default), a failure by EM
    right, wordy = make_trajectory("q1", 0, False), make_trajectory("q1", 1, False)
    right.rewards = {"em": 1.0, "cem": 1.0, "f1": 1.0}
    wordy.rewards = {"em": 0.0, "cem": 1.0, "f1": 0.4}
    path = write_trajectories(tmp_path / "t.jsonl", [right, wordy])
    trajectories = load_trajectories([path])
    assert group_trajectories(trajectories, DistillConfig())[0].kind == "all_success"
    assert group_trajectories(trajectories, DistillConfig(reward_key="em"))[0].kind == "contrastive"
    assert group_trajectories(trajectories, DistillConfig(reward_key="f1", threshold=0.5))[0].kind == "contrastive"


def test_reflection_batches_greedy_requests_and_restores_the_serial_rule(tmp_path):
    class SerialScripted(ScriptedGenerator):
        serial_greedy = True
        seen: list[bool] = []

        def generate(self, prompts, params):
            self.seen.append(self.serial_greedy)
            return super().generate(prompts, params)

    trajectories = [make_trajectory("q1", 0, True), make_trajectory("q1", 1, False)]
    path = write_trajectories(tmp_path / "t.jsonl", trajectories)
    good = {"title": "Search the full name", "description": "Put the whole name in the query.", "thinking": "It worked."}
    reflector = SerialScripted([json.dumps([good])])
    summary = distill([path], tmp_path / "e1.jsonl", reflector, DistillConfig(), show_progress=False)
    assert summary.entries_written == 1
    assert reflector.seen == [False] and reflector.serial_greedy is True


def test_a_second_distillation_rereads_the_replies_instead_of_asking_again(tmp_path):
    trajectories = [make_trajectory("q1", 0, True), make_trajectory("q1", 1, False)]
    path = write_trajectories(tmp_path / "t.jsonl", trajectories)
    lesson = {"title": "Search the full name", "description": "Put the whole name in the query.", "thinking": "It worked."}
    first = ScriptedGenerator([json.dumps([lesson])])
    distill([path], tmp_path / "a.jsonl", first, DistillConfig(), show_progress=False)
    again = ScriptedGenerator([])  # would fail if asked
    summary = distill([path], tmp_path / "b.jsonl", again, DistillConfig(), show_progress=False)
    assert summary.entries_written == 1 and again.prompts == []
    fresh = ScriptedGenerator([json.dumps([lesson])])
    distill([path], tmp_path / "c.jsonl", fresh, DistillConfig(use_cache=False), show_progress=False)
    assert len(fresh.prompts) == 1
