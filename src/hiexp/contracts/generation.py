"""The generation contract shared by every backend (transformers, llama.cpp, OpenAI-compatible HTTP).

Token-in, token-out: a backend with a tokenizer accepts prompts as token ids and returns the exact ids it
sampled, so the agent never re-tokenises a history. Backends without access to token ids (most HTTP
servers) accept text and return text; ``token_ids`` is then empty and ``logprobs`` is None.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable


def derive_seed(seed: int, index: int, bits: int = 63) -> int:
    """An independent seed per prompt from a call's seed and the prompt's position, so the random streams
    of different prompts and seeds do not overlap; ``bits`` fits it to what a backend accepts."""
    digest = hashlib.sha256(f"hiexp:{seed}:{index}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & ((1 << bits) - 1)


@dataclass
class SamplingParams:
    """How to sample. ``temperature == 0`` means greedy decoding."""

    max_new_tokens: int = 256
    temperature: float = 1.0
    top_p: float = 1.0
    stop: list[str] = field(default_factory=list)
    seed: int | None = None


@dataclass
class Generation:
    """One sampled continuation.

    ``finish_reason`` is ``"stop"`` (a stop string or end-of-sequence), ``"length"`` (max_new_tokens) or
    ``"error"`` (a backend that records failures instead of raising could not get an answer: ``error`` says
    why, and ``text`` is empty). ``stop`` is the stop string that ended it, if any; ``text`` includes it.
    """

    text: str
    token_ids: list[int] = field(default_factory=list)
    logprobs: list[float] | None = None
    finish_reason: str = "stop"
    stop: str | None = None
    error: str | None = None


@runtime_checkable
class Generator(Protocol):
    """A batch sampler. ``tokenizer`` is a Hugging Face tokenizer, or None for text-only backends."""

    model_id: str
    tokenizer: Any

    def generate(self, prompts: list[list[int]] | list[str], params: SamplingParams) -> list[Generation]:
        """One generation per prompt, in order. Prompts are token ids, or text for text-only backends."""
        ...
