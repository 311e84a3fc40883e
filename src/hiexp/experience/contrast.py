"""What the successful and failed attempts at one question did differently, counted rather than guessed.

A small reflector asked "what was the decisive step?" tends to retell the attempts ("the successful attempts
read the passages"). The differences that decide a search episode can be read off the trajectories: how
often each side searched, whether a later search followed a name the first passages gave, whether a failed
attempt had the correct answer in front of it (a reading error) or never reached it (a search error),
whether it answered a yes/no question with a name, or with far more words than the answer needs. These
facts are written into the reflector's prompt (``distill_contrast.txt``, ``$facts``), so the model only has
to turn a known difference into advice. They never carry the question's names or answer.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from hiexp.contracts.passage import parse_passages
from hiexp.contracts.trajectory import Trajectory
from hiexp.experience.leaks import NOT_NAMES
from hiexp.scoring.kinds import expects_yes_no
from hiexp.scoring.metrics import normalize_answer

_SEARCH_TAG = re.compile(r"<search>(.*?)</search>", re.DOTALL)
_NAME = re.compile(r"\b[A-Z][\w'-]*[\w]")
# leaks' list plus the passage header's words and pronouns that open sentences
_COMMON_CAPITALS = NOT_NAMES | {"Doc", "Title", "It", "He", "She", "They", "This", "That", "His", "Her", "Their"}


def search_steps(trajectory: Trajectory) -> list[tuple[str, list[tuple[str, str]]]]:
    """(query, [(title, passage text), ...]) per search, from the recorded queries and the tool turns that
    answered them."""
    tool_texts = [t.text for t in trajectory.turns if t.role == "tool" and "Doc" in t.text]
    queries = list(trajectory.queries)
    if not queries:
        queries = [q.strip() for t in trajectory.turns if t.role == "policy" for q in _SEARCH_TAG.findall(t.text)]
    steps = []
    for index, query in enumerate(queries):
        rendered = tool_texts[index] if index < len(tool_texts) else ""
        passages = [(title, re.sub(r"</?\w+>", " ", text).strip()) for title, text in parse_passages(rendered)]
        steps.append((query, passages))
    return steps


def _names(text: str) -> set[str]:
    return {m.group() for m in _NAME.finditer(text) if m.group() not in _COMMON_CAPITALS}


def has_words(haystack: str, needle: str) -> bool:
    """Whether ``needle`` occurs in ``haystack`` as whole words, after answer normalisation."""
    needle = normalize_answer(needle)
    return bool(needle) and f" {needle} " in f" {normalize_answer(haystack)} "


def attempt_features(trajectory: Trajectory, question: str, golden_answers: Sequence[str]) -> dict:
    """What one attempt did: searches, a follow-up search on a name the passages gave, the answer among the
    passages read, the answer's kind and length."""
    steps = search_steps(trajectory)
    question_names = _names(question)
    seen_names: set[str] = set()
    follow_up = False
    for index, (query, passages) in enumerate(steps):
        if index and (_names(query) - question_names) & seen_names:
            follow_up = True
        for title, text in passages:
            seen_names |= _names(f"{title} {text}")
    read = " ".join(f"{title} {text}" for _, passages in steps for title, text in passages)
    answer = trajectory.answer or ""
    gold_words = min((len(normalize_answer(g).split()) for g in golden_answers if normalize_answer(g)), default=1)
    return {
        "searches": len(steps),
        "follow_up": follow_up,
        "answer_read": any(has_words(read, g) for g in golden_answers if normalize_answer(g) not in ("yes", "no")),
        "answered": bool(answer.strip()),
        "yes_no_answer": normalize_answer(answer) in ("yes", "no"),
        "long_answer": len(normalize_answer(answer).split()) > 2 * gold_words + 3,
        "forced": bool((trajectory.metadata or {}).get("forced_answer")),
    }


def contrast_facts(question: str, golden_answers: Sequence[str], successes: Sequence[Trajectory],
                   failures: Sequence[Trajectory], first_failure_number: int) -> list[str]:
    """Sentences on how the shown successful and failed attempts differ. Failed attempts are named by the
    number they carry in the prompt (the first one is ``first_failure_number``)."""
    if not successes or not failures:
        return []
    good = [attempt_features(t, question, golden_answers) for t in successes]
    bad = [attempt_features(t, question, golden_answers) for t in failures]
    facts = []
    mean_good = sum(f["searches"] for f in good) / len(good)
    mean_bad = sum(f["searches"] for f in bad) / len(bad)
    if abs(mean_good - mean_bad) >= 0.5:
        more = "more" if mean_good > mean_bad else "less"
        facts.append(f"The successful attempts searched {more} often ({mean_good:.1f} searches on average) than the "
                     f"failed ones ({mean_bad:.1f}).")
    good_follow, bad_follow = [f["follow_up"] for f in good], [f["follow_up"] for f in bad]
    if any(good_follow) and not any(bad_follow):
        who = "Every successful attempt" if all(good_follow) else "Some of the successful attempts"
        facts.append(f"{who} searched again for a name that the passages of an earlier search gave; no failed "
                     "attempt did.")
    elif any(bad_follow) and not any(good_follow):
        facts.append("The failed attempts searched again for a name the earlier passages gave; the successful "
                     "ones answered from what they had.")
    yes_no = expects_yes_no(question)
    readable = any(normalize_answer(g) not in ("", "yes", "no") for g in golden_answers)
    for number, features in enumerate(bad, start=first_failure_number):
        label = f"Failed attempt {number}"
        if not features["answered"]:
            facts.append(f"{label} gave no answer.")
        elif features["searches"] == 0:
            facts.append(f"{label} answered without searching.")
        elif not readable:
            pass
        elif features["answer_read"]:
            facts.append(f"{label} had read a passage that holds the correct answer, yet answered something "
                         "else: a reading error, not a search error.")
        else:
            facts.append(f"{label} never read a passage that holds the correct answer: its searches did not "
                         "reach it.")
        if yes_no and features["answered"] and not features["yes_no_answer"]:
            facts.append(f"{label} answered a yes/no question with something other than yes or no.")
        if features["long_answer"]:
            facts.append(f"{label} answered with many more words than the answer needs.")
        if features["forced"]:
            facts.append(f"{label} ran out of searches and had to answer from what it had.")
    return facts


__all__ = ["attempt_features", "contrast_facts", "expects_yes_no", "search_steps"]
