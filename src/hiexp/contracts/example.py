"""The one example schema shared by every dataset (QA and math): ``{id, question, golden_answers, metadata}``."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class Example:
    """A question with its accepted answers; ``metadata`` holds dataset, split, type and the like."""

    id: str
    question: str
    golden_answers: list[str]
    metadata: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, record: dict[str, Any]) -> Example:
        return cls(
            id=str(record["id"]),
            question=str(record["question"]),
            golden_answers=[str(a) for a in record.get("golden_answers", [])],
            metadata=dict(record.get("metadata") or {}),
        )
