"""The kind of answer a question asks for, read off its wording: yes or no, one of two offered choices, or
an open answer. The agent's answer rules, distillation's counted differences and the choice of worked cases
all ask the same thing, so it is answered once, here."""

from __future__ import annotations

import re

ANSWER_KINDS = ("yes/no", "choice", "open")
_YES_NO_OPENERS = frozenset({"is", "are", "was", "were", "do", "does", "did", "can", "could", "has", "have", "had",
                             "will", "would", "should"})
_OPTIONS = re.compile(r",\s*([^,]+?)\s+or\s+([^,]+?)\s*\??\s*$")
_MAX_OPTION_WORDS = 12


def expects_yes_no(question: str) -> bool:
    """A question that opens with an auxiliary verb ("Are both ...", "Did X ...") is answered yes or no."""
    words = question.strip().split()
    return bool(words) and words[0].lower().strip("\"'") in _YES_NO_OPENERS


def offered_options(question: str) -> tuple[str, str] | None:
    """The two choices a comparison question ends with (``Who was born first, A or B?``), else None."""
    match = _OPTIONS.search(question.strip())
    if match is None:
        return None
    first, second = (part.strip().rstrip("?").strip() for part in match.groups())
    if not first or not second or max(len(first.split()), len(second.split())) > _MAX_OPTION_WORDS:
        return None
    return first, second


def answer_kind(question: str) -> str:
    """``yes/no``, ``choice`` (one of two options the question names) or ``open``."""
    if expects_yes_no(question):
        return "yes/no"
    return "choice" if offered_options(question) is not None else "open"
