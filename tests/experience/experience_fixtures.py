"""Trajectory records in the trajectory schema (hiexp.contracts.trajectory), for distillation and HEK tests."""

from __future__ import annotations

import json
from pathlib import Path

from hiexp.contracts.trajectory import Trajectory, Turn


def make_trajectory(question_id: str, sample: int, success: bool, question: str = "", answer: str | None = None,
                    queries: list[str] | None = None, golden: str = "Paris") -> Trajectory:
    """A small search_r1 trajectory with one tool turn per query and EM/CEM/F1 rewards."""
    queries = queries if queries is not None else [f"capital of country {question_id}"]
    answer = answer if answer is not None else (golden if success else "Lyon")
    turns = [Turn("prompt", f"Question: {question or question_id}\n")]
    for number, query in enumerate(queries, start=1):
        turns.append(Turn("policy", f"<think>step {number}</think><search>{query}</search>"))
        turns.append(Turn("tool", f"<information>Doc 1(Title: Passage {number}) {'long text ' * 40}\n"
                                  f"Doc 2(Title: Other {number}) short text</information>"))
    turns.append(Turn("policy", f"<answer>{answer}</answer>"))
    score = 1.0 if success else 0.0
    return Trajectory(
        id=f"{question_id}#{sample}", question_id=question_id, sample=sample, format="search_r1",
        model="test-model", question=question or f"What is the answer to {question_id}?", golden_answers=[golden],
        turns=turns, queries=queries, passage_ids=[[f"p{number}"] for number in range(len(queries))],
        answer=answer, rewards={"em": score, "cem": score, "f1": score}, num_searches=len(queries),
        num_tokens=50, finish="answer", seed=sample,
    )


def write_trajectories(path: Path, trajectories: list[Trajectory], edit=None) -> Path:
    with path.open("w", encoding="utf-8") as handle:
        for trajectory in trajectories:
            record = trajectory.to_dict()
            if edit:
                edit(record)
            handle.write(json.dumps(record) + "\n")
    return path
