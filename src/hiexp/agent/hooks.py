"""Where experience enters an episode: the agent calls these hooks; ``experience.retrieve`` implements them.

Both hooks are batched, like everything in the loop. Whatever they return is injected as a non-trainable
``experience`` turn (or system-prompt text) and recorded in the trajectory with ``meta``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol


@dataclass
class Injection:
    """Text to inject (empty for none) and what produced it (entry ids, scores) for the record."""

    text: str = ""
    meta: dict[str, Any] = field(default_factory=dict)


class ExperienceHook(Protocol):
    """Experience provider. ``version`` names the HEK (its content hash) for the trajectory record."""

    version: str | None

    def for_questions(self, questions: list[str]) -> list[Injection]:
        """Text added to the system prompt at the start of each episode (E2/E3 in HiExp)."""
        ...

    def for_queries(self, queries: list[str], questions: list[str] | None = None) -> list[Injection]:
        """Text added to the tool response of each search call (E1 in HiExp); ``questions`` holds the
        question of each query's episode, for providers that treat an episode's own question specially."""
        ...
