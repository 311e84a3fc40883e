"""Experience entries and the tolerant reader for what a reflector or summariser writes.

An ``Entry`` is one unit of experience at any level of the HEK: E1 entries come from contrastive
distillation of one question's trajectories, E2/E3 entries summarise a cluster of lower-level entries.
Small models rarely emit clean JSON, so ``parse_entries`` accepts the usual slips (code fences, prose
around the JSON, a single object instead of a list, trailing commas, single quotes, raw newlines inside
strings, a reply cut off by the token limit) and raises ``ReplyParseError`` with a message short enough to
show back to the model when it still cannot read the reply.
"""

from __future__ import annotations

import json
import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from hiexp.contracts.fields import field_of

LEVELS = ("E1", "E2", "E3")
MAX_TAGS = 8
Level = Literal["E1", "E2", "E3"]


class CaseDoc(BaseModel):
    """A passage as a case shows it: its title and the sentences that bore on the search (abridged)."""

    model_config = ConfigDict(extra="ignore")

    title: str
    text: str = ""


class CaseStep(BaseModel):
    """One search of a case: what the policy thought, what it searched, what it read."""

    model_config = ConfigDict(extra="ignore")

    thought: str = ""
    query: str
    docs: list[CaseDoc] = Field(default_factory=list)


class Case(BaseModel):
    """A verified successful episode of a training question, abridged, shown as a worked example.

    ``trajectory_id`` and ``reward`` say which episode it is and how it scored (``reward_key``); the text
    fields are the policy's own, cut to a word budget (``cases.py``).
    """

    model_config = ConfigDict(extra="ignore")

    question_id: str
    question: str
    steps: list[CaseStep] = Field(default_factory=list)
    final_thought: str = ""
    answer: str
    trajectory_id: str = ""
    reward_key: str = "em"
    reward: float = 1.0

    @property
    def searches(self) -> int:
        return len(self.steps)


def is_case_only(entry: Any) -> bool:
    """Whether an entry (an ``Entry`` or its plain dict) is a bare case of a cases-only HEK (``meta.kind``)."""
    return (field_of(entry, "meta") or {}).get("kind") == "case"


class Entry(BaseModel):
    """One experience entry (a line of a HEK's ``entries.jsonl``).

    ``children`` lists the ids of the lower-level entries an E2/E3 entry summarises (empty for E1).
    ``sources`` says where an entry came from: for E1 the question id and trajectory ids it was distilled
    from; for E2/E3 the question ids of all descendants. ``model`` is the reflector or summariser that wrote
    it (None for an entry promoted without a model call). ``meta`` holds details such as ``promoted`` or
    ``fallback`` (a summary that failed and was replaced by the cluster's most central member).
    """

    model_config = ConfigDict(extra="ignore")

    id: str
    level: Level
    title: str
    tags: list[str] = Field(default_factory=list)
    description: str = ""
    thinking: str = ""
    children: list[str] = Field(default_factory=list)
    sources: dict[str, Any] = Field(default_factory=dict)
    model: str | None = None
    meta: dict[str, Any] = Field(default_factory=dict)
    case: Case | None = None
    """The entry's best verified success on its question, shown as a worked example (``cases.py``). An entry
    of a cases-only HEK is its case alone: ``meta.kind == "case"``, the question as title, no description."""

    @property
    def is_case_only(self) -> bool:
        return is_case_only(self)

    @field_validator("sources")
    @classmethod
    def _source_kinds(cls, sources: dict[str, Any]) -> dict[str, Any]:
        """Ids read as text (a number is an id too); a list of ids must be a list."""
        checked = dict(sources)
        for key in ("question_id", "question"):
            if checked.get(key) is not None:
                if not isinstance(checked[key], (str, int)) or isinstance(checked[key], bool):
                    raise ValueError(f"sources.{key} must be text, got {type(checked[key]).__name__}")
                checked[key] = str(checked[key])
        for key in ("question_ids", "trajectory_ids", "success_ids", "failure_ids", "merged_ids", "merged_questions"):
            if checked.get(key) is not None:
                value = checked[key]
                if not isinstance(value, list) or any(isinstance(v, (dict, list, bool)) or v is None for v in value):
                    raise ValueError(f"sources.{key} must be a list of ids, got {value!r:.60}")
                checked[key] = [str(v) for v in value]
        return checked

    def to_dict(self) -> dict[str, Any]:
        return _without_empty_case(self.model_dump(mode="json"))

    @classmethod
    def from_dict(cls, record: dict[str, Any]) -> Entry:
        return cls.model_validate(record)

    def text_for_prompt(self) -> str:
        """The entry as a short block of text, for summary prompts and for injection."""
        lines = [f"Title: {self.title}"]
        if self.tags:
            lines.append("Tags: " + ", ".join(self.tags))
        if self.description:
            lines.append(f"Description: {self.description}")
        if self.thinking:
            lines.append(f"Thinking: {self.thinking}")
        return "\n".join(lines)


def _without_empty_case(record: dict[str, Any]) -> dict[str, Any]:
    """Entries without a case serialise as before (the HEK's content hash of older HEKs stays the same)."""
    if record.get("case") is None:
        record.pop("case", None)
    return record


def drop_repeated_sentences(text: str) -> str:
    """Keep the first copy of each sentence: small reflectors loop, and a loop is not experience."""
    seen: set[str] = set()
    kept = []
    for sentence in re.split(r"(?<=[.!?])\s+", text):
        key = " ".join(sentence.lower().split())
        if key and key not in seen:
            seen.add(key)
            kept.append(sentence)
    return " ".join(kept)


class ReflectedEntry(BaseModel):
    """The fields a model writes for one entry; ids, levels and provenance are added by hiexp."""

    model_config = ConfigDict(extra="ignore")

    title: str = Field(min_length=1)
    tags: list[str] = Field(default_factory=list)
    description: str = Field(min_length=1)
    thinking: str = ""

    @field_validator("title", "description", "thinking", mode="before")
    @classmethod
    def _text(cls, value: Any) -> Any:
        if value is None:
            return ""
        if isinstance(value, list):  # a model that writes bullet lists as JSON arrays
            value = " ".join(str(v) for v in value)
        return drop_repeated_sentences(str(value).strip())

    @field_validator("tags", mode="before")
    @classmethod
    def _tags(cls, value: Any) -> Any:
        if value is None:
            return []
        if isinstance(value, str):
            value = re.split(r"[,;]", value)
        if isinstance(value, list):
            # small models loop on tags: keep distinct ones, at most MAX_TAGS
            tags = list(dict.fromkeys(str(t).strip().lstrip("#") for t in value if str(t).strip()))
            return tags[:MAX_TAGS]
        return value


class ReplyParseError(ValueError):
    """The reply holds no usable entry; the message is meant to be shown back to the model."""


# --------------------------------------------------------------------------------------------------------
# Tolerant JSON reading
# --------------------------------------------------------------------------------------------------------

_FENCE = re.compile(r"```(?:json|JSON)?\s*\n?(.*?)(?:```|$)", re.DOTALL)
_PY_LITERALS = {"True": "true", "False": "false", "None": "null"}


def _candidate_spans(text: str) -> list[str]:
    """Pieces of the reply that may hold the JSON: fenced blocks first, then the whole reply."""
    spans = [m.group(1) for m in _FENCE.finditer(text) if m.group(1).strip()]
    spans.append(text)
    return spans


def _closes(text: str, i: int, quote: str) -> bool:
    """Whether the quote at ``i`` ends a string. A single quote followed by a letter is an apostrophe."""
    if quote == '"':
        return True
    j = i + 1
    while j < len(text) and text[j] in " \t":
        j += 1
    return j >= len(text) or text[j] in ",:}]\n\r"


def _extract_balanced(text: str) -> list[str]:
    """Candidates for the first JSON-looking value (from the first ``[`` or ``{`` to its matching bracket).

    Strings in either quote style are skipped while counting. A value cut off before its end (the token
    limit) gives two candidates: the text with the open string and brackets closed, and the text cut back
    to the last complete object and closed.
    """
    starts = [i for i in (text.find("["), text.find("{")) if i != -1]
    if not starts:
        return []
    start = min(starts)
    stack: list[str] = []
    quote: str | None = None
    escaped = False
    for i in range(start, len(text)):
        ch = text[i]
        if quote:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == quote and _closes(text, i, quote):
                quote = None
            continue
        if ch in "\"'":
            # an apostrophe after a letter (don't) does not open a string
            if ch == "'" and i > 0 and text[i - 1].isalnum():
                continue
            quote = ch
        elif ch in "[{":
            stack.append("]" if ch == "[" else "}")
        elif ch in "]}":
            if stack and stack[-1] == ch:
                stack.pop()
            if not stack:
                return [text[start : i + 1]]
    # ran off the end: close what is open
    tail = text[start:].rstrip()
    if quote:
        tail += quote
    candidates = [re.sub(r",\s*$", "", tail) + "".join(reversed(stack))]
    last_close = text.rfind("}", start)
    if last_close != -1 and last_close + 1 < len(text.rstrip()):
        candidates.extend(_extract_balanced(text[: last_close + 1]))
    return candidates


def _repair(text: str) -> str:
    """Fix small slips outside and inside strings: single quotes, raw newlines, trailing commas, Python
    literals. Works on one pass over the characters so that string contents are never mistaken for syntax."""
    out: list[str] = []
    quote: str | None = None
    escaped = False
    i = 0
    n = len(text)
    while i < n:
        ch = text[i]
        if quote:
            if escaped:
                escaped = False
                out.append(ch)
            elif ch == "\\":
                escaped = True
                out.append(ch)
            elif ch == quote and _closes(text, i, quote):
                quote = None
                out.append('"')
            elif ch == "'" and quote == "'":  # an apostrophe inside a single-quoted string
                out.append("'")
            elif ch == '"':  # a double quote inside a single-quoted string
                out.append('\\"')
            elif ch == "\n":
                out.append("\\n")
            elif ch == "\r":
                pass
            elif ch == "\t":
                out.append("\\t")
            else:
                out.append(ch)
            i += 1
            continue
        if ch in "\"'":
            quote = ch
            out.append('"')
            i += 1
            continue
        if ch == ",":
            j = i + 1
            while j < n and text[j].isspace():
                j += 1
            if j < n and text[j] in "]}":
                i += 1
                continue
        if ch.isalpha():
            j = i
            while j < n and (text[j].isalnum() or text[j] == "_"):
                j += 1
            word = text[i:j]
            out.append(_PY_LITERALS.get(word, word))
            i = j
            continue
        out.append(ch)
        i += 1
    return "".join(out)


def _loads_tolerant(text: str) -> Any:
    """Parse the first JSON value found in ``text``, repairing small slips; raise ``ReplyParseError``."""
    if not text or not text.strip():
        raise ReplyParseError("the reply was empty")
    last_error = "no JSON object or list found in the reply"
    for span in _candidate_spans(text):
        attempts = [a for value in _extract_balanced(span) for a in (value, _repair(value))]
        for attempt in attempts:
            try:
                return json.loads(attempt)
            except ValueError as exc:
                last_error = f"invalid JSON ({exc})"
    raise ReplyParseError(last_error)


def _normalise_keys(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k).strip().lower(): v for k, v in obj.items()}
    return obj


def parse_object(text: str) -> dict[str, Any]:
    """The one JSON object a model was asked for (the first of a list is taken), keys lower-cased; raise
    ``ReplyParseError`` otherwise."""
    value = _normalise_keys(_loads_tolerant(text))
    if isinstance(value, list) and value and isinstance(value[0], dict):
        value = _normalise_keys(value[0])
    if not isinstance(value, dict):
        raise ReplyParseError("reply with one JSON object")
    return value


def parse_entries(text: str, max_entries: int | None = None) -> tuple[list[ReflectedEntry], list[str]]:
    """Read the entries a model wrote. Returns ``(entries, problems)``.

    Accepts a list of objects, a single object, or an object wrapping the list (``{"entries": [...]}``).
    Items that fail validation are reported in ``problems`` (never dropped without a word); if no item is
    valid, ``ReplyParseError`` is raised with the reasons.
    """
    value = _loads_tolerant(text)
    value = _normalise_keys(value)
    if isinstance(value, dict):
        wrapped = [v for k, v in value.items() if isinstance(v, list) and k not in ("tags",)]
        if "title" not in value and len(wrapped) == 1:
            value = wrapped[0]
        else:
            value = [value]
    if not isinstance(value, list):
        raise ReplyParseError(f"expected a JSON list of objects, got {type(value).__name__}")
    entries: list[ReflectedEntry] = []
    problems: list[str] = []
    for index, item in enumerate(value):
        item = _normalise_keys(item)
        if not isinstance(item, dict):
            problems.append(f"item {index}: expected an object, got {type(item).__name__}")
            continue
        try:
            entries.append(ReflectedEntry.model_validate(item))
        except ValidationError as exc:
            fields = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'item'}: {e['msg']}" for e in exc.errors())
            problems.append(f"item {index}: {fields}")
    if not entries:
        detail = "; ".join(problems) if problems else "the list was empty"
        raise ReplyParseError(
            f"no usable entry ({detail}); each entry needs a non-empty title and description"
        )
    if max_entries is not None and len(entries) > max_entries:
        problems.append(f"{len(entries) - max_entries} entries beyond the limit of {max_entries} were cut")
        entries = entries[:max_entries]
    return entries, problems
