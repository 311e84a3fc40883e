"""The agent's rules: when an answer is sent back once with a correction, and how a first query is anchored.

A small model answers too early, answers with a name the question did not offer, or answers with the
question's own words. Each such case is one ``AnswerRule`` in ``ANSWER_RULES``: the ``AgentConfig`` switch
that turns it on, the correction it sends (a key of the format's correction messages), and a check of the
answer. A rule fires at most once per episode, so the next rule is one entry, not another flag and branch.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from hiexp.scoring import normalize_answer
from hiexp.scoring.kinds import offered_options
from hiexp.search.tokenize import FUNCTION_WORDS

_WORD = re.compile(r"[^\W_]+(?:['’.-][^\W_]+)*")


@dataclass(frozen=True)
class AnswerCase:
    """What the rules see of one parsed answer."""

    question: str
    answer: str | None
    searches: int  # searches the episode made before answering
    has_retriever: bool
    format_searches: bool  # the format has a search action
    format_checks_options: bool  # the format asks for one of the offered options


@dataclass(frozen=True)
class AnswerRule:
    """Send an answer back once, with the correction ``error``, when ``switch`` is on and ``applies``."""

    error: str
    switch: str  # the AgentConfig field that turns the rule on
    applies: Callable[[AnswerCase], bool]
    quotes_answer: bool  # whether the correction quotes the rejected answer


def _answered_before_searching(case: AnswerCase) -> bool:
    return case.has_retriever and case.searches == 0


def _named_no_option(case: AnswerCase) -> bool:
    if not case.format_checks_options:
        return False
    options = offered_options(case.question)
    return options is not None and not names_an_option(case.answer, options)


def _echoed_the_question(case: AnswerCase) -> bool:
    return case.format_searches and case.has_retriever and repeats_question(case.answer, case.question)


# Checked in this order; the first that applies (and has not fired in the episode yet) sends the answer back.
ANSWER_RULES: tuple[AnswerRule, ...] = (
    AnswerRule("answer_without_search", "search_before_answer", _answered_before_searching, quotes_answer=False),
    AnswerRule("not_an_option", "answer_from_options", _named_no_option, quotes_answer=True),
    AnswerRule("echoed_question", "answer_beyond_question", _echoed_the_question, quotes_answer=True),
)


def rule_to_apply(config: object, case: AnswerCase, fired: set[str]) -> AnswerRule | None:
    """The first rule switched on in ``config`` that applies to ``case`` and is not in ``fired``."""
    for rule in ANSWER_RULES:
        if getattr(config, rule.switch) and rule.error not in fired and rule.applies(case):
            return rule
    return None


def anchored_query(query: str, question: str) -> str:
    """``query`` followed by the question's words it left out (function words aside), in question order."""
    have = {w.lower() for w in _WORD.findall(query)}
    missing: list[str] = []
    for word in _WORD.findall(question):
        key = word.lower()
        if key not in have and key not in FUNCTION_WORDS:
            have.add(key)
            missing.append(word)
    return " ".join([query.strip(), *missing]) if missing else query


def repeats_question(answer: str | None, question: str) -> bool:
    """Whether an answer is made only of the question's own words (function words aside), for a question that
    offers no choice: one with "or" in it may name its answer, and yes / no is always an answer of its own."""
    said = normalize_answer(answer or "").split()
    if not said or " ".join(said) in ("yes", "no") or re.search(r"\bor\b", question, re.IGNORECASE):
        return False
    content = {word for word in said if word not in FUNCTION_WORDS}
    return bool(content) and content <= set(normalize_answer(question).split())


def names_an_option(answer: str | None, options: tuple[str, str]) -> bool:
    """Whether the answer names one of the choices, after answer normalisation: either holds the other's
    words in order ("Berlioz" names "Hector Berlioz", "the film Gang Bullets" names "Gang Bullets")."""
    said = f" {normalize_answer(answer)} "
    if not said.strip():
        return False
    choices = (f" {normalize_answer(option)} " for option in options)
    return any(choice.strip() and (choice in said or said in choice) for choice in choices)
