"""Structured replies from a model: ask, parse, and ask again with the error, caching every reply.

Distillation (E1 entries from trajectory groups) and cluster summaries (E2/E3) both need the same loop: send
a batch of prompts, read each reply with a parser that raises ``ReplyParseError``, and re-ask the unreadable
ones with the error shown. It lives here rather than in ``distill.py`` so that ``summarize.py`` does not
depend on distillation, and so that the replies of both share one cache format (``ReplyCache``).
"""

from __future__ import annotations

import json
import string
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Any

from hiexp.contracts.generation import Generator, SamplingParams
from hiexp.errors import HiexpError
from hiexp.io import append_jsonl, cache_dir, iter_jsonl, sha256_text, stable_hash
from hiexp.llm import batched_greedy

from .schema import ReplyParseError


def load_template(name: str) -> string.Template:
    """A prompt template from ``experience/prompts`` (``$name`` placeholders, so JSON braces are literal)."""
    text = resources.files("hiexp.experience").joinpath("prompts", name).read_text(encoding="utf-8")
    return string.Template(text)


def to_model_prompt(generator: Generator, text: str) -> str | list[int]:
    """Wrap ``text`` as one user turn: the tokenizer's chat template and token ids where there is a
    tokenizer, the plain text for text-only backends (HTTP servers apply their own template)."""
    tokenizer = getattr(generator, "tokenizer", None)
    if tokenizer is None:
        return text
    messages = [{"role": "user", "content": text}]
    if getattr(tokenizer, "chat_template", None):
        rendered = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    else:
        rendered = text + "\n"
    return list(tokenizer(rendered, add_special_tokens=False)["input_ids"])


def _ask(generator: Generator, texts: list[str], params: SamplingParams):
    """Send user messages: through the chat endpoint of text-only backends that have one (OpenAI-compatible
    servers, llama.cpp), else through ``generate`` with the chat template applied here. Greedy requests go
    out batched (``batched_greedy``): a HEK is a recorded artefact, and reflection need not repeat exactly."""
    with batched_greedy(generator):
        chat_batch = getattr(generator, "chat_batch", None)
        if getattr(generator, "tokenizer", None) is None and callable(chat_batch):
            return chat_batch([[{"role": "user", "content": text}] for text in texts], params)
        return generator.generate([to_model_prompt(generator, text) for text in texts], params)


class ReplyCache:
    """Append-only JSONL of one model's replies by request (prompt and sampling settings).

    Reflection and summaries are the slow part of building a HEK; a re-run with other filters, thresholds
    or clusters asks the model only for requests it has not answered before. Lives in
    ``hiexp.io.cache_dir(kind)``, one file per model id.
    """

    def __init__(self, model_id: str, kind: str, enabled: bool = True):
        self.enabled = enabled
        self.path = cache_dir(kind) / f"{stable_hash(model_id, 16)}.jsonl"
        self.replies: dict[str, str] = {}
        if enabled and self.path.exists():
            for record in iter_jsonl(self.path, skip_bad=True):
                if isinstance(record.get("reply"), str):
                    self.replies[str(record.get("key"))] = record["reply"]

    @staticmethod
    def key(prompt: str, params: SamplingParams) -> str:
        return sha256_text(json.dumps([prompt, params.max_new_tokens, params.temperature, params.top_p,
                                       list(params.stop), params.seed]))

    def get(self, key: str) -> str | None:
        return self.replies.get(key) if self.enabled else None

    def put(self, key: str, reply: str) -> None:
        if self.enabled and self.replies.get(key) != reply:
            self.replies[key] = reply
            append_jsonl(self.path, {"key": key, "reply": reply})


@dataclass
class StructuredResult:
    """The outcome of one structured request after retries."""

    ok: bool
    value: Any = None
    attempts: int = 0
    reason: str = ""
    last_reply: str = ""


def _replies(
    generator: Generator, prompts: dict[int, str], params: SamplingParams, cache: ReplyCache | None
) -> tuple[dict[int, str], str]:
    """One round's replies by prompt index, from ``cache`` where it has them and else from one batch to the
    generator, with the generator's error if that batch failed (its prompts then have no reply)."""
    keys = {i: ReplyCache.key(prompt, params) for i, prompt in prompts.items()} if cache else {}
    known = {i: cache.get(key) for i, key in keys.items()} if cache else {}
    ask = [i for i in prompts if known.get(i) is None]
    error = ""
    try:
        generations = _ask(generator, [prompts[i] for i in ask], params) if ask else []
        answered = {i: g.text for i, g in zip(ask, generations)}
    except HiexpError as exc:
        answered, error = {}, f"generator failed: {exc}"
    except Exception as exc:  # an HTTP timeout, a server error: record it, keep the other groups
        answered, error = {}, f"generator failed: {type(exc).__name__}: {exc}"
    if cache:
        for i, text in answered.items():
            cache.put(keys[i], text)
    replies = {i: text for i, text in known.items() if text is not None}
    return replies | answered, error


def structured_generate(
    generator: Generator,
    prompts: Sequence[str],
    parse: Callable[[str], Any] | Sequence[Callable[[str], Any]],
    params: SamplingParams,
    max_retries: int = 2,
    retry_temperature: float = 0.7,
    cache: ReplyCache | None = None,
) -> list[StructuredResult]:
    """Ask for every prompt, parse each reply with ``parse`` (which raises ``ReplyParseError``), and ask
    again, showing the error and the bad reply, up to ``max_retries`` times. All pending prompts of a round
    go to the generator in one batch. A generator failure counts as a failed attempt with its message.
    ``parse`` is one function for every prompt, or a list of one function per prompt. Requests answered
    in ``cache`` are not sent again."""
    repair = load_template("repair.txt")
    parsers = list(parse) if isinstance(parse, Sequence) else [parse] * len(prompts)
    results = [StructuredResult(ok=False) for _ in prompts]
    pending = list(range(len(prompts)))
    current = list(prompts)
    for round_index in range(max_retries + 1):
        if not pending:
            break
        round_params = SamplingParams(
            max_new_tokens=params.max_new_tokens,
            temperature=params.temperature if round_index == 0 else retry_temperature,
            top_p=params.top_p, stop=list(params.stop),
            seed=None if params.seed is None else params.seed + round_index,
        )
        replies, error = _replies(generator, {i: current[i] for i in pending}, round_params, cache)
        still = []
        for index in pending:
            reply = replies.get(index)
            result = results[index]
            result.attempts += 1
            if reply is None:
                result.reason = error
                still.append(index)
                continue
            result.last_reply = reply
            try:
                result.value = parsers[index](reply)
                result.ok = True
                result.reason = ""
            except ReplyParseError as exc:
                result.reason = str(exc)
                short_reply = reply.strip()[:1200] or "(nothing)"
                current[index] = repair.substitute(prompt=prompts[index], reply=short_reply, error=str(exc))
                still.append(index)
        pending = still
    return results


__all__ = ["ReplyCache", "StructuredResult", "load_template", "structured_generate", "to_model_prompt"]
