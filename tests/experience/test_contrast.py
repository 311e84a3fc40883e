"""Counted differences between successful and failed attempts, and advice rather than accounts of attempts."""

from __future__ import annotations

import json

from experience_fixtures import make_trajectory, write_trajectories

from hiexp.contracts.trajectory import Trajectory, Turn
from hiexp.experience.contrast import attempt_features, contrast_facts, expects_yes_no
from hiexp.experience.distill import DistillConfig, build_prompt, distill, group_trajectories, load_trajectories
from hiexp.experience.leaks import drop_narration, narrates
from hiexp.io import read_jsonl
from tests.fakes import ScriptedGenerator

QUESTION = "In which city was the director of the film Blue Harbour born?"


def attempt(sample: int, success: bool, steps: list[tuple[str, str]], answer: str) -> Trajectory:
    """An attempt whose searches return the given passage text (one passage per search)."""
    turns = [Turn("prompt", f"Question: {QUESTION}\n")]
    for query, passage in steps:
        turns.append(Turn("policy", f"<think>...</think><search>{query}</search>"))
        turns.append(Turn("tool", f"<information>Doc 1(Title: Result) {passage}</information>"))
    turns.append(Turn("policy", f"<answer>{answer}</answer>"))
    score = float(success)
    return Trajectory(id=f"q#{sample}", question_id="q", sample=sample, format="search_r1", model="m",
                      question=QUESTION, golden_answers=["Dublin"], turns=turns, queries=[q for q, _ in steps],
                      answer=answer, rewards={"em": score, "cem": score, "f1": score}, num_searches=len(steps),
                      finish="answer")


FILM = "Blue Harbour is a film directed by Maeve Kerrigan."
DIRECTOR = "Maeve Kerrigan was born in Dublin in 1950."


def test_a_follow_up_search_and_a_search_error_are_named():
    success = attempt(0, True, [("Blue Harbour director", FILM), ("Maeve Kerrigan birthplace", DIRECTOR)], "Dublin")
    failure = attempt(1, False, [("Blue Harbour director", FILM)], "Maeve Kerrigan")
    assert attempt_features(success, QUESTION, ["Dublin"])["follow_up"]
    facts = contrast_facts(QUESTION, ["Dublin"], [success], [failure], first_failure_number=2)
    assert any("searched more often (2.0" in f for f in facts)
    assert any("searched again for a name that the passages of an earlier search gave" in f for f in facts)
    assert "Failed attempt 2 never read a passage that holds the correct answer: its searches did not reach it." in facts
    assert not any("Maeve" in f or "Dublin" in f or "Blue Harbour" in f for f in facts)  # no facts of the question


def test_a_reading_error_a_long_answer_and_no_answer():
    success = attempt(0, True, [("Blue Harbour director", FILM + " " + DIRECTOR)], "Dublin")
    misread = attempt(1, False, [("Blue Harbour director", FILM + " " + DIRECTOR)],
                      "the director of the film was Maeve Kerrigan who was born in Ireland")
    silent = attempt(2, False, [("Blue Harbour director", FILM)], "")
    facts = contrast_facts(QUESTION, ["Dublin"], [success], [misread, silent], first_failure_number=2)
    assert any(f.startswith("Failed attempt 2 had read a passage that holds the correct answer") for f in facts)
    assert "Failed attempt 2 answered with many more words than the answer needs." in facts
    assert "Failed attempt 3 gave no answer." in facts
    assert not any("searched more often" in f for f in facts)  # both sides searched once
    longer = attempt(3, False, [("Blue Harbour director", FILM), ("Blue Harbour cast", FILM)], "Maeve Kerrigan")
    facts = contrast_facts(QUESTION, ["Dublin"], [success], [longer], first_failure_number=2)
    assert any(f.startswith("The successful attempts searched less often (1.0") for f in facts)


def test_yes_no_questions():
    assert expects_yes_no("Are both Blue Harbour and Red Sea films?") and not expects_yes_no(QUESTION)
    question = "Were both films directed by the same person?"
    success = attempt(0, True, [("q", FILM)], "yes")
    success.question = question
    wrong_kind = attempt(1, False, [("q", FILM)], "Maeve Kerrigan")
    facts = contrast_facts(question, ["yes"], [success], [wrong_kind], first_failure_number=2)
    assert "Failed attempt 2 answered a yes/no question with something other than yes or no." in facts
    assert not any("holds the correct answer" in f for f in facts)  # a yes/no answer is not read in a passage


def test_the_prompt_carries_the_facts_and_can_leave_them_out(tmp_path):
    success = attempt(0, True, [("Blue Harbour director", FILM), ("Maeve Kerrigan birthplace", DIRECTOR)], "Dublin")
    failure = attempt(1, False, [("Blue Harbour director", FILM)], "Maeve Kerrigan")
    path = write_trajectories(tmp_path / "t.jsonl", [success, failure])
    group = group_trajectories(load_trajectories([path]), DistillConfig())[0]
    prompt = build_prompt(group, DistillConfig())
    assert "What differs between them (counted from the attempts):" in prompt
    assert prompt.index("Attempt 2 [FAILURE]") < prompt.index("What differs") < prompt.index("Think it through")
    assert "What differs" not in build_prompt(group, DistillConfig(contrast_facts=False))


def test_narration_is_recognised_and_dropped():
    assert narrates("The successful attempts searched twice.") and narrates("Search 1 found the film.")
    assert narrates("The correct answer was in the second passage.")
    assert not narrates("Search for the director first, then for where the director was born.")
    assert not narrates("Attempt a second search when the passages name a new person.")
    assert narrates("Compare the results with the correct answer.")  # an agent never has it
    text = "The failed attempts stopped early. Search again for the person the passages name."
    assert drop_narration(text) == "Search again for the person the passages name."


def test_distillation_mends_or_refuses_entries_that_retell_the_attempts(tmp_path):
    trajectories = [make_trajectory("q1", 0, True), make_trajectory("q1", 1, False)]
    path = write_trajectories(tmp_path / "t.jsonl", trajectories)
    reply = json.dumps([
        {"title": "The failed attempts stopped early", "description": "They answered after one search.",
         "thinking": "", "tags": []},
        {"title": "A person found in the passages", "description": "The successful attempts searched twice. "
         "Search for the person the passages name before answering.", "thinking": "", "tags": []},
    ])
    reflector = ScriptedGenerator(lambda prompt, params: reply)
    summary = distill([path], tmp_path / "e1.jsonl", reflector, DistillConfig(), show_progress=False)
    entries = read_jsonl(tmp_path / "e1.jsonl")
    assert [e["description"] for e in entries] == ["Search for the person the passages name before answering."]
    assert summary.entries_rejected == {"narration": 1} and summary.entries_rewritten == {"narration": 1}
    assert "retold the attempts (narration 1)" in summary.render()


def test_a_reply_of_accounts_only_is_asked_again(tmp_path):
    trajectories = [make_trajectory("q1", 0, True), make_trajectory("q1", 1, False)]
    path = write_trajectories(tmp_path / "t.jsonl", trajectories)
    replies = iter([
        json.dumps([{"title": "Search 1 found it", "description": "The successful attempt read search 1.",
                     "thinking": "", "tags": []}]),
        json.dumps([{"title": "A place of birth of a person", "description": "Search for the person, then the "
                     "place of birth.", "thinking": "", "tags": []}]),
    ])
    prompts = []
    reflector = ScriptedGenerator(lambda prompt, params: prompts.append(prompt) or next(replies))
    summary = distill([path], tmp_path / "e1.jsonl", reflector, DistillConfig(), show_progress=False)
    assert summary.groups_ok == 1 and summary.entries_written == 1
    assert "told what the attempts did" in prompts[1]


def test_a_title_that_repeats_an_example_of_the_prompt_is_refused(tmp_path):
    trajectories = [make_trajectory("q1", 0, True), make_trajectory("q1", 1, False)]
    path = write_trajectories(tmp_path / "t.jsonl", trajectories)
    reply = json.dumps([
        {"title": "A film's director", "description": "Search for the director of the film.", "thinking": "",
         "tags": []},
        {"title": "Where the director of a film was born", "description": "Search for the director first, then "
         "for the director's place of birth.", "thinking": "", "tags": []},
    ])
    summary = distill([path], tmp_path / "e1.jsonl", ScriptedGenerator(lambda prompt, params: reply),
                      DistillConfig(), show_progress=False)
    assert [e["title"] for e in read_jsonl(tmp_path / "e1.jsonl")] == ["Where the director of a film was born"]
    assert summary.entries_rejected == {"echo": 1}
