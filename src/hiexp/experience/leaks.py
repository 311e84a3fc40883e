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
- ``passage_name``: it names someone or something only the passages shown to it mention: a capitalised word
  of a passage title, or one written capitalised inside a passage sentence (not as its first word) and
  never in lower case there ("Peter Thiel" in a passage about the book a question only describes).

Apart from facts, an entry must be advice rather than an account of the attempts it came from: a title or
description that ``narrates`` ("the successful attempts read the passages", "search 1 found ...", "the correct
answer was in ...", "compare it with the correct answer", which an agent never has) helps no other question
either. ``drop_narration`` takes such sentences out of a description; an entry left with nothing, or whose
title narrates, is refused as ``narration``.

A small reflector rarely writes a lesson without one of these, so ``rewrite`` first tries to mend an entry:
sentences that name a gold answer or copy a passage are dropped, and the question's names become
placeholders (``X``, ``Y``, ... for names, "a year" / "a number" for numbers), so that "search for Kelly
Reichardt's film companies" becomes "search for X's film companies". What cannot be mended is refused.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from hiexp.scoring.metrics import normalize_answer

LEAK_REASONS = ("gold_answer", "passage_copy", "question_name", "passage_name", "narration", "echo")
_TOKEN = re.compile(r"[^\W_][\w.-]*[^\W_]|[^\W_]")
# Capitalised words that begin questions or name kinds of things rather than one thing.
NOT_NAMES = frozenset({"The", "What", "Which", "Who", "Whom", "Whose", "When", "Where", "Why", "How", "Are",
                       "Were", "Was", "Is", "Did", "Does", "Do", "In", "On", "Of", "For", "And", "A", "An", "I"})
_PASSAGE_HEADER = re.compile(r"\bDoc\s*\d+\s*\(\s*Title\s*:", re.IGNORECASE)
_EXEMPT_ANSWERS = frozenset({"yes", "no", "noanswer", "true", "false"})
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
_OPENS_SENTENCE = frozenset('.!?:;"\'(')
_PLACEHOLDERS = ("X", "Y", "Z", "W", "V")
_NARRATION = re.compile(
    r"\b(?:the|successful|failed|unsuccessful|failing|other|both|all|these|those|some|each|most|many|two|three)"
    r"\s+(?:\w+\s+)?attempts?\b"
    r"|\battempts?\s+\d|\bsearch(?:es)?\s+\d"
    r"|\b(?:correct|right)\s+answer\s+(?:is|was|were|appeared)\b"
    r"|\b(?:with|to|against)\s+the\s+(?:correct|right|gold)\s+answer\b"
    r"|\bthe\s+(?:search\s+)?agent\s+(?:found|used|did|searched|read|stopped|answered)\b",
    re.IGNORECASE)


def narrates(text: str) -> bool:
    """Whether ``text`` tells what the attempts did ("the failed attempts stopped early") instead of advising."""
    return bool(_NARRATION.search(text or ""))


def drop_narration(text: str) -> str:
    """``text`` without its narrating sentences."""
    return " ".join(s for s in _SENTENCE_END.split((text or "").strip()) if s and not narrates(s)).strip()


def _words(text: str) -> list[str]:
    return normalize_answer(text).split()


def _contains(words: Sequence[str], needle: Sequence[str]) -> bool:
    n = len(needle)
    if n == 0 or n > len(words):
        return False
    first = needle[0]
    return any(words[i] == first and list(words[i:i + n]) == list(needle) for i in range(len(words) - n + 1))


def _passage_names(passages: Iterable[str], titles: Iterable[str]) -> set[str]:
    """Capitalised words that name things in the passages: every one of a title, and those written
    capitalised inside a sentence (not as its first word) and never in lower case in the passages."""
    names = {t for title in titles for t in _TOKEN.findall(title)
             if t[0].isupper() and len(t) > 1 and t not in NOT_NAMES}
    lower: set[str] = set()
    for passage in passages:
        for match in _TOKEN.finditer(passage):
            token = match.group()
            if not token[0].isupper():
                lower.add(token)
                continue
            before = passage[: match.start()].rstrip()
            if len(token) > 1 and token not in NOT_NAMES and before and before[-1] not in _OPENS_SENTENCE:
                names.add(token)
    return {name for name in names if name.lower() not in lower}


@dataclass
class LeakFilter:
    """The facts of one question that its entries must not carry."""

    golden_answers: Sequence[str]
    passages: Sequence[str] = ()
    min_copy_words: int = 8
    question: str = ""
    titles: Sequence[str] = ()
    """Titles of the passages shown (their capitalised words are names)."""

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
        self._question_names = {t for t in tokens if t not in NOT_NAMES and len(t) > 1
                                and (t[0].isupper() or (t.isdigit() and len(t) >= 3))}
        self._passage_names = _passage_names(self.passages, self.titles) - self._question_names
        self._names = self._question_names | self._passage_names

    def reason(self, texts: Iterable[str]) -> str | None:
        """Why an entry with these texts (title, description, thinking, tags) is refused; None if it is not."""
        raw = "\n".join(t for t in texts if t)
        reason = self._fact(raw)
        if reason is not None or not self._names:
            return reason
        tokens = set(_TOKEN.findall(raw))
        if not self._question_names.isdisjoint(tokens):
            return "question_name"
        if not self._passage_names.isdisjoint(tokens):
            return "passage_name"
        return None

    def _fact(self, raw: str) -> str | None:
        """``gold_answer`` or ``passage_copy`` when ``raw`` carries one, else None (names are not looked at)."""
        if _PASSAGE_HEADER.search(raw):
            return "passage_copy"
        words = _words(raw)
        if any(_contains(words, answer) for answer in self._answers):
            return "gold_answer"
        n = self.min_copy_words
        if self._shingles and any(tuple(words[i:i + n]) in self._shingles for i in range(len(words) - n + 1)):
            return "passage_copy"
        return None

    def rewrite(self, title: str, description: str, thinking: str = "",
                tags: Sequence[str] = ()) -> tuple[str, str, str, list[str]] | None:
        """The entry with its question's facts taken out, or None when too little is left of it.

        Sentences naming a gold answer or copying a passage are dropped; the question's names and numbers
        are replaced by placeholders (the same name, the same letter across the fields); tags that leak
        are dropped. The result passes ``reason``, or None is returned.
        """
        letters: dict[str, str] = {}
        title, description, thinking = (self._mend(t, letters) for t in (title, description, thinking))
        kept_tags = [t for t in tags if self.reason([t]) is None]
        if len(title.split()) < 2 or len(description.split()) < 3:
            return None
        if self.reason([title, description, thinking, *kept_tags]) is not None:
            return None
        return title, description, thinking, kept_tags

    def _mend(self, text: str, letters: dict[str, str]) -> str:
        kept = []
        for sentence in _SENTENCE_END.split(text.strip()):
            if sentence and self._fact(sentence) is None:
                kept.append(self._placeholders(sentence, letters))
        return " ".join(kept).strip()

    def _placeholders(self, sentence: str, letters: dict[str, str]) -> str:
        """Replace each run of the question's names (``Kelly Reichardt``, ``Channel 8``) by one letter, and
        its numbers by their kind. A name keeps its letter across sentences and fields, also in part
        ("Kelly" after "Kelly Reichardt")."""
        runs: list[list[re.Match]] = []
        extends = False  # whether the previous token ended a name run that this one may continue
        for m in _TOKEN.finditer(sentence):
            token = m.group()
            adjacent = extends and not sentence[runs[-1][-1].end():m.start()].strip()
            is_name = token in self._names
            part_of_name = token.isdigit() and adjacent and not runs[-1][-1].group().isdigit()  # "Channel 8"
            if is_name or part_of_name:
                if adjacent:
                    runs[-1].append(m)
                else:
                    runs.append([m])
                extends = True
            else:
                extends = False
        if not runs:
            return sentence
        out, cursor = [], 0
        for run in runs:
            tokens = [m.group() for m in run]
            if all(t.isdigit() for t in tokens):
                value = int(tokens[0])
                word = "a year" if len(tokens) == 1 and 1000 <= value <= 2100 else "a number"
            else:
                word = next((letters[t] for t in tokens if t in letters), None)
                if word is None:
                    used = set(letters.values())
                    word = next((p for p in _PLACEHOLDERS if p not in used), _PLACEHOLDERS[-1])
                for t in tokens:
                    letters.setdefault(t, word)
            out.append(sentence[cursor:run[0].start()])
            out.append(word)
            cursor = run[-1].end()
        out.append(sentence[cursor:])
        return "".join(out)


__all__ = ["LEAK_REASONS", "LeakFilter", "drop_narration", "narrates"]
