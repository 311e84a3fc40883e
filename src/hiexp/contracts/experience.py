"""Where experience enters an episode, and the embedder that finds it.

The agent calls the hooks of an ``ExperienceHook``; ``experience.retrieve`` implements them. Both hooks are
batched, like everything in the loop. Whatever they return is injected as a non-trainable ``experience``
turn (or system-prompt text) and recorded in the trajectory with ``meta``. An ``Embedder`` turns titles,
questions and queries into unit vectors (for the HEK's clusters and lookups, and for dense retrieval).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np


@dataclass
class Injection:
    """Text to inject (empty for none) and what produced it (entry ids, scores) for the record.

    ``cases`` (start of an episode only) are worked examples as plain dicts of ``experience.schema.Case``
    fields, which the agent's format renders in its own tags; ``cases_meta`` records them (their entry ids
    and scores); ``replace_example`` drops the format's fixed worked example when cases are given.
    """

    text: str = ""
    meta: dict[str, Any] = field(default_factory=dict)
    cases: list[dict[str, Any]] = field(default_factory=list)
    cases_meta: dict[str, Any] = field(default_factory=dict)
    replace_example: bool = True


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


@runtime_checkable
class Embedder(Protocol):
    """Turns texts into unit vectors. Queries and passages may be encoded differently (E5 prefixes)."""

    model_id: str
    dim: int

    def encode_queries(self, texts: list[str]) -> np.ndarray:
        """float32 array of shape (len(texts), dim), rows L2-normalised."""
        ...

    def encode_passages(self, texts: list[str]) -> np.ndarray:
        """float32 array of shape (len(texts), dim), rows L2-normalised."""
        ...
