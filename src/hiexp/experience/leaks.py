"""Keep experience general: find entries that carry facts of their own question instead of advice.

The reflector sees the gold answer and the passages of the attempts, and a small model readily copies them
into what should be transferable advice ("the correct answer was 1903", "Doc 4(Title: ...) ..."). Such an
entry helps no other question, and injected into an episode of its own question it hands over the answer.
An entry is refused when

- ``gold_answer``: it names one of the question's gold answers (as whole words, after the usual answer
  normalisation; yes/no and one-character answers are exempt, they are ordinary words of advice);
- ``passage_copy``: it repeats a run of ``min_copy_words`` words of a passage shown to the reflector, or quotes
  a passage header (``Doc 3(Title: ...)``);
- ``question_name``: it names what its question is about: a capitalised word of the question other than its
  first (a person, work, place: "Kelly Reichardt", "Commodore 16") or a number of three or more digits, as
  written there. Advice about "a film's director" transfers; advice about one director does not.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from hiexp.eval.metrics import normalize_answer

LEAK_REASONS = ("gold_answer", "passage_copy", "question_name")
_TOKEN = re.compile(r"[^\W_][\w.-]*[^\W_]|[^\W_]")
# Capitalised words that begin questions or name kinds of things rather than one thing.
_NOT_NAMES = frozenset({"The", "What", "Which", "Who", "Whom", "Whose", "When", "Where", "Why", "How", "Are",
                        "Were", "Was", "Is", "Did", "Does", "Do", "In", "On", "Of", "For", "And", "A", "An", "I"})
_PASSAGE_HEADER = re.compile(r"\bDoc\s*\d+\s*\(\s*Title\s*:", re.IGNORECASE)
_EXEMPT_ANSWERS = frozenset({"yes", "no", "noanswer", "true", "false"})


def _words(text: str) -> list[str]:
    return normalize_answer(text).split()


def _contains(words: Sequence[str], needle: Sequence[str]) -> bool:
    n = len(needle)
    if n == 0 or n > len(words):
        return False
    first = needle[0]
    return any(words[i] == first and list(words[i:i + n]) == list(needle) for i in range(len(words) - n + 1))


@dataclass
class LeakFilter:
    """The facts of one question that its entries must not carry."""

    golden_answers: Sequence[str]
    passages: Sequence[str] = ()
    min_copy_words: int = 8
    question: str = ""

    def __post_init__(self) -> None:
        answers = []
        for gold in self.golden_answers:
            words = _words(gold)
            if words and " ".join(words) not in _EXEMPT_ANSWERS and len("".join(words)) > 1:
                answers.append(words)
        self._answers = answers
        n = self.min_copy_words
        self._shingles = {tuple(w[i:i + n]) for p in self.passages for w in [_words(p)] for i in range(len(w) - n + 1)}
        tokens = _TOKEN.findall(self.question)[1:]
        self._names = {t for t in tokens if t not in _NOT_NAMES and len(t) > 1
                       and (t[0].isupper() or (t.isdigit() and len(t) >= 3))}

    def reason(self, texts: Iterable[str]) -> str | None:
        """Why an entry with these texts (title, description, thinking, tags) is refused; None if it is not."""
        raw = "\n".join(t for t in texts if t)
        if _PASSAGE_HEADER.search(raw):
            return "passage_copy"
        words = _words(raw)
        if any(_contains(words, answer) for answer in self._answers):
            return "gold_answer"
        n = self.min_copy_words
        if self._shingles and any(tuple(words[i:i + n]) in self._shingles for i in range(len(words) - n + 1)):
            return "passage_copy"
        if self._names and not self._names.isdisjoint(_TOKEN.findall(raw)):
            return "question_name"
        return None


__all__ = ["LEAK_REASONS", "LeakFilter"]
