"""The steps of a math solution, and the step where a wrong solution leaves the path of the right ones.

A math attempt has no searches to contrast. What the reflector is asked to explain instead is the first step
of a wrong solution that computes a result neither the problem nor any correct solution contains. Finding that
step is arithmetic on the trajectories, so it lives apart from the prompt that shows it
(``distill.format_math_attempt``), as the counted differences of search attempts live in ``contrast.py``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from hiexp.contracts.trajectory import Trajectory

_STEP_SPLIT = re.compile(r"\n+|(?<=[.!?])\s+(?=[A-Z])")
_RESULT = re.compile(r"=\s*\$?\s*(-?\d[\d,]*(?:\.\d+)?)")
_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?")


def solution_steps(trajectory: Trajectory) -> list[str]:
    """A math attempt's reasoning as steps: its lines, long lines split into sentences."""
    text = "\n".join(t.text for t in trajectory.turns if t.role == "policy")
    text = re.sub(r"<\|[^|>]*\|>", "\n", text)
    return [step.strip() for step in _STEP_SPLIT.split(text) if step.strip()]


def _as_number(text: str) -> float | None:
    try:
        return float(text.replace(",", ""))
    except ValueError:
        return None


def _numbers(text: str) -> set[float]:
    return {v for v in (_as_number(m) for m in _NUMBER.findall(text)) if v is not None}


def parting_step(failure: Trajectory, successes: Sequence[Trajectory], question: str) -> int | None:
    """The index of the first step of a failed math solution whose computed result (a number after ``=``)
    appears neither in any successful solution nor in the problem: where the failure left the right path.
    None when no such step exists (a failure that only mis-states its final answer, say)."""
    known = _numbers(question)
    for success in successes:
        known |= _numbers(" ".join(solution_steps(success)))
    for index, step in enumerate(solution_steps(failure)):
        for match in _RESULT.findall(step):
            value = _as_number(match)
            if value is not None and not any(abs(value - k) <= 1e-6 * max(1.0, abs(k)) for k in known):
                return index
    return None


__all__ = ["parting_step", "solution_steps"]
