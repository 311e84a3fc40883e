"""The math format: no tool, reasoning then ``\\boxed{}``, a correction when the box is missing, math
grading, and experience in the system prompt only (E2/E3 and the E1 entry matched on the problem)."""

from __future__ import annotations

from hiexp.agent import AgentConfig, SearchAgent
from hiexp.contracts.example import Example
from tests.agent.conftest import RecordingHook
from tests.fakes import ScriptedGenerator

PROBLEM = Example(id="m1", question="Janet has 16 eggs and eats 3. How many are left?", golden_answers=["13"],
                  metadata={"task": "math", "dataset": "inline"})


def run(replies, hook=None, **config):
    generator = ScriptedGenerator(list(replies))
    agent = SearchAgent(generator, None, AgentConfig(format="math", temperature=0.0, **config), hook)
    return agent.run([PROBLEM])[0], generator


def test_a_boxed_answer_ends_the_episode_and_is_graded_as_math():
    traj, generator = run(["16 - 3 = 13 eggs are left. \\boxed{13.0}"])
    assert traj.finish == "answer" and traj.answer == "13.0" and traj.num_searches == 0
    assert traj.rewards["em"] == 1.0 and traj.rewards["cem"] == 1.0  # 13.0 = 13 as numbers
    assert "\\boxed{}" in generator.prompts[0] and "Problem: Janet" in generator.prompts[0]
    assert "search" not in generator.prompts[0].lower()


def test_a_reply_without_a_box_gets_one_correction():
    traj, generator = run(["16 - 3 = 13", "\\boxed{13}"])
    assert traj.answer == "13" and traj.rewards["em"] == 1.0
    assert [t.role for t in traj.turns].count("policy") == 2
    correction = [t for t in traj.turns if t.role == "tool"][0]
    assert "\\boxed{}" in correction.text and "<|im_start|>user" in correction.text


def test_a_wrong_answer_scores_zero():
    traj, _ = run(["\\boxed{12}"])
    assert traj.rewards["em"] == 0.0


def test_experience_goes_into_the_system_prompt_with_the_e1_of_the_problem():
    hook = RecordingHook(start="Write the equation first.", query="Subtract what is used from what there is.")
    traj, generator = run(["\\boxed{13}"], hook=hook)
    prompt = generator.prompts[0]
    assert "Write the equation first." in prompt and "Subtract what is used" in prompt
    assert hook.query_calls == [[PROBLEM.question]]  # matched on the problem itself, once
    experience = [t for t in traj.turns if t.role == "experience"]
    assert len(experience) == 1 and experience[0].meta["where"] == "system"
    assert "e1" in experience[0].meta


def test_the_format_follows_the_data_unless_given():
    from hiexp.cli.agent import MATH_MAX_NEW_TOKENS, task_format, turn_budget

    qa = Example(id="q", question="Who?", golden_answers=["x"], metadata={"task": "qa"})
    assert task_format(None, [PROBLEM]) == "math" and task_format(None, [PROBLEM, qa]) == "search_r1"
    assert task_format("tool_call", [PROBLEM]) == "tool_call"
    assert turn_budget("math", None) == MATH_MAX_NEW_TOKENS and turn_budget("math", 99) == 99
    assert turn_budget("search_r1", None) is None
