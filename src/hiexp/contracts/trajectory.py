"""The trajectory record: one JSONL line per (question, sample), with exact token ids.

``turns`` alternate between what the policy generated (``role="policy"``, trainable) and what was injected
(``role="tool"`` for search results and format corrections, ``role="experience"`` for HEK text), so the
loss mask is derived from roles and never from re-tokenised text.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field
from typing import Any

SCHEMA_VERSION = 1

FINISH_REASONS = ("answer", "max_turns", "max_tokens", "invalid")


@dataclass
class Turn:
    """A span of the episode. ``token_ids`` are the ids as generated or as injected (empty for text-only
    backends). ``meta`` records details such as the parsed query or the experience entries used."""

    role: str  # "prompt" | "policy" | "tool" | "experience"
    text: str
    token_ids: list[int] = field(default_factory=list)
    logprobs: list[float] | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def trainable(self) -> bool:
        return self.role == "policy"


@dataclass
class Trajectory:
    """One episode of the search agent on one question."""

    id: str
    question_id: str
    sample: int
    format: str
    model: str
    question: str = ""
    golden_answers: list[str] = field(default_factory=list)
    turns: list[Turn] = field(default_factory=list)
    queries: list[str] = field(default_factory=list)
    passage_ids: list[list[str]] = field(default_factory=list)
    answer: str | None = None
    rewards: dict[str, float] = field(default_factory=dict)
    num_searches: int = 0
    num_tokens: int = 0
    finish: str = "invalid"
    hek_version: str | None = None
    seed: int | None = None
    created: float = field(default_factory=time.time)
    metadata: dict[str, Any] = field(default_factory=dict)
    schema_version: int = SCHEMA_VERSION

    # --- token views -------------------------------------------------------------------------------
    def _prompt_end(self) -> int:
        """Index just after the last ``prompt`` turn: the initial prompt may hold an ``experience`` turn
        (HEK text in the system prompt) between two ``prompt`` turns, and that belongs to the prompt."""
        end = 0
        for i, turn in enumerate(self.turns):
            if turn.role == "prompt":
                end = i + 1
        return end

    def prompt_ids(self) -> list[int]:
        """Token ids of the initial prompt (system + user + generation header)."""
        return [t for turn in self.turns[: self._prompt_end()] for t in turn.token_ids]

    def completion_ids_and_mask(self) -> tuple[list[int], list[int]]:
        """Everything after the prompt, with 1 for policy tokens and 0 for injected ones."""
        ids: list[int] = []
        mask: list[int] = []
        for turn in self.turns[self._prompt_end():]:
            ids.extend(turn.token_ids)
            mask.extend([1 if turn.trainable else 0] * len(turn.token_ids))
        return ids, mask

    @property
    def text(self) -> str:
        return "".join(turn.text for turn in self.turns)

    @property
    def reward(self) -> float:
        return float(self.rewards.get("reward", self.rewards.get("em", 0.0)))

    # --- (de)serialisation -------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, record: dict[str, Any]) -> Trajectory:
        from hiexp.errors import HiexpError

        version = record.get("schema_version", SCHEMA_VERSION)
        if version != SCHEMA_VERSION:
            raise HiexpError(
                f"trajectory {record.get('id')!r} has schema_version {version}; this hiexp reads {SCHEMA_VERSION}"
            )
        missing = [k for k in ("id", "question_id", "sample", "format", "model") if k not in record]
        if missing:
            raise HiexpError(f"trajectory record lacks {', '.join(missing)}: not a hiexp trajectory file?")
        problem = record_problem(record)
        if problem:
            raise HiexpError(f"trajectory {str(record.get('id'))[:80]!r}: {problem}; not a hiexp trajectory record")
        data = dict(record)
        data["turns"] = [Turn(**t) for t in record.get("turns", [])]
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in data.items() if k in known})


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def record_problem(record: dict[str, Any]) -> str | None:
    """What makes a trajectory record unusable (a field of the wrong kind), or None; readers that skip bad
    records (the browser) use it too."""
    turns = record.get("turns", [])
    if not isinstance(turns, list) or not all(isinstance(t, dict) for t in turns):
        return "turns must be a list of turn objects"
    turn_fields = set(Turn.__dataclass_fields__)
    for turn in turns:
        if not isinstance(turn.get("role"), str) or not isinstance(turn.get("text", ""), str):
            return "every turn needs a role and a text"
        if set(turn) - turn_fields:
            return f"a turn has unknown fields {sorted(set(turn) - turn_fields)}"
        if not isinstance(turn.get("meta") or {}, dict):
            return "a turn's meta must be an object"
    rewards = record.get("rewards") or {}
    if not isinstance(rewards, dict) or not all(_is_number(v) for v in rewards.values()):
        return "rewards must map names to finite numbers"
    if isinstance(record.get("sample"), bool) or not isinstance(record.get("sample"), int):
        return "sample must be a whole number"
    for key in ("num_searches", "num_tokens"):
        if key in record and (isinstance(record[key], bool) or not isinstance(record[key], int)):
            return f"{key} must be a whole number"
    queries = record.get("queries") or []
    if not isinstance(queries, list) or not all(isinstance(q, str) for q in queries):
        return "queries must be a list of text"
    return None
