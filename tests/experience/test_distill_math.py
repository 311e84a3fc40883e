"""Distillation of math attempts: solution steps instead of searches, the step where solutions part ways."""

from __future__ import annotations

import json

from experience_fixtures import write_trajectories

from hiexp.contracts.trajectory import Trajectory, Turn
from hiexp.experience.build import build_hek
from hiexp.experience.distill import DistillConfig, build_prompt, distill, group_trajectories, load_trajectories
from hiexp.experience.math_steps import parting_step, solution_steps
from hiexp.experience.summarize import SummarizeConfig, build_summary_prompt
from hiexp.io import read_jsonl
from tests.fakes import ScriptedGenerator

PROBLEM = "Mia buys 3 boxes of 12 pencils and gives away 10 pencils. How many pencils does she keep?"
RIGHT = "She buys 3 * 12 = 36 pencils.\nShe keeps 36 - 10 = 26 pencils.\n\\boxed{26}"
WRONG = "She buys 3 + 12 = 15 pencils.\nShe keeps 15 - 10 = 5 pencils.\n\\boxed{5}"


def math_trajectory(sample: int, solution: str, answer: str, right: bool) -> Trajectory:
    score = float(right)
    return Trajectory(
        id=f"m1#{sample}", question_id="m1", sample=sample, format="math", model="test-model", question=PROBLEM,
        golden_answers=["26"], turns=[Turn("prompt", f"Problem: {PROBLEM}\n"), Turn("policy", solution)],
        answer=answer, rewards={"em": score, "cem": score, "f1": score}, num_tokens=40, finish="answer",
        metadata={"task": "math", "dataset": "gsm8k-demo"},
    )


def math_file(tmp_path):
    return write_trajectories(tmp_path / "math.jsonl", [math_trajectory(0, RIGHT, "26", True),
                                                        math_trajectory(1, WRONG, "5", False)])


def test_the_step_where_a_wrong_solution_leaves_the_right_path_is_found():
    right, wrong = math_trajectory(0, RIGHT, "26", True), math_trajectory(1, WRONG, "5", False)
    assert solution_steps(wrong)[:2] == ["She buys 3 + 12 = 15 pencils.", "She keeps 15 - 10 = 5 pencils."]
    assert parting_step(wrong, [right], PROBLEM) == 0  # 15 is reached by no correct solution
    same_path = math_trajectory(2, RIGHT.replace("\\boxed{26}", "\\boxed{36}"), "36", False)
    assert parting_step(same_path, [right], PROBLEM) is None  # the steps agree; only the final answer is wrong


def test_math_groups_get_the_solution_step_prompt(tmp_path):
    group = group_trajectories(load_trajectories([math_file(tmp_path)]), DistillConfig())[0]
    assert group.task == "math" and group.kind == "contrastive"
    prompt = build_prompt(group, DistillConfig())
    assert "Solution 1 [CORRECT] final answer: 26" in prompt and "Solution 2 [WRONG] final answer: 5" in prompt
    assert ">> step 1: She buys 3 + 12 = 15 pencils." in prompt
    assert "step 1 is the first to reach a result that no correct solution reaches" in prompt
    assert "search" not in prompt.lower().replace("research", "")  # no searches or passages in a math prompt
    assert "Problem: " + PROBLEM in prompt


def test_math_entries_record_their_task_and_are_summarised_in_a_solvers_words(tmp_path):
    lesson = [{"title": "Totals of several equal groups", "description": "Multiply the group size by the number "
               "of groups before taking anything away.", "thinking": "Adding them undercounts.", "tags": ["product"]}]
    reflector = ScriptedGenerator(lambda prompt, params: json.dumps(lesson))
    out = tmp_path / "e1.jsonl"
    summary = distill([math_file(tmp_path)], out, reflector, DistillConfig(), show_progress=False)
    assert summary.groups_by_kind == {"contrastive": 1} and summary.entries_written == 1
    (entry,) = read_jsonl(out)
    assert entry["sources"]["task"] == "math"
    from hiexp.experience.schema import Entry

    prompt = build_summary_prompt([Entry.model_validate(entry)] * 2, SummarizeConfig())
    assert "solving math problems" in prompt and "search" not in prompt


def test_a_gold_answer_in_a_math_lesson_is_refused(tmp_path):
    leaky = [{"title": "Pencils kept after giving some away", "description": "Answer 26 for this kind.",
              "thinking": "It was 26.", "tags": []},
             {"title": "Totals of equal groups", "description": "Multiply before subtracting.",
              "thinking": "Order of steps.", "tags": []}]
    reflector = ScriptedGenerator(lambda prompt, params: json.dumps(leaky))
    out = tmp_path / "e1.jsonl"
    summary = distill([math_file(tmp_path)], out, reflector, DistillConfig(rewrite_leaks=False), show_progress=False)
    assert [e["title"] for e in read_jsonl(out)] == ["Totals of equal groups"]
    assert summary.entries_rejected.get("gold_answer") == 1


def test_a_math_hek_builds_from_math_entries(tmp_path):
    from hiexp.search.embed import load_embedder

    lessons = [{"title": f"Totals of equal groups {i}", "description": "Multiply first.", "thinking": "Order.",
                "tags": []} for i in range(3)]
    reflector = ScriptedGenerator(lambda prompt, params: json.dumps(lessons) if "Solution" in prompt else json.dumps(
        {"title": "Multiply equal groups first", "description": "Multiply the group size by the count.",
         "thinking": "Then subtract.", "tags": ["product"]}))
    out = tmp_path / "e1.jsonl"
    distill([math_file(tmp_path)], out, reflector, DistillConfig(), show_progress=False)
    hek = build_hek([out], tmp_path / "hek", load_embedder("hashing-256"), reflector, show_progress=False)
    assert hek.counts()["E1"] == 3
    prompts = [p for p in reflector.prompts if "pieces of experience" in p]
    assert prompts and all("solving math problems" in p for p in prompts)
