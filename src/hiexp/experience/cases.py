"""Cases: verified successful episodes of training questions, kept to be shown as worked examples.

A small policy copies a concrete episode better than it follows written advice (docs/experience.md,
"Cases"). A case keeps what a reader needs to copy the search: the question, each thought, query and the
passages it read that led on (those sharing most terms with the next query or the answer; each cut to its
first sentence and the sentences sharing most of those terms), the final thought and the answer, all cut to
word budgets. Only an episode whose reward reaches the threshold becomes a
case, so every case shown ends in a gold answer.

``cases_from_trajectories`` turns rollouts into case entries (a HEK of cases needs no reflector);
``best_case`` picks the case an E1 entry keeps from the successes it was distilled from.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from hiexp.contracts.fields import field_of
from hiexp.contracts.passage import parse_passages
from hiexp.search.abridge import abridge, search_terms

from .schema import Case, CaseDoc, CaseStep, Entry

_TAG = re.compile(r"</?(think|search|answer|information|tool_call|tool_response)>")


@dataclass
class CaseConfig:
    """How an episode is cut into a case.

    reward_key: the reward that verifies a success. ``em`` (the answer is a gold answer, normalised) by
      default: a case teaches the form of the answer too, and a cover-EM success can be a sentence.
    threshold: the reward a case must reach.
    docs_per_search: passages kept per search, in the retriever's order.
    doc_words: words kept per passage (its first sentence, then the sentences sharing most terms with the
      query and the answer; ``search/abridge.py``).
    thought_words: words kept of each thought.
    max_searches: searches kept (the last ones are dropped first; a case of more searches is rarely the
      one to copy).
    """

    reward_key: str = "em"
    threshold: float = 1.0
    docs_per_search: int = 2
    doc_words: int = 30
    thought_words: int = 30
    max_searches: int = 4


def _reward(record: Any, key: str) -> float | None:
    rewards = field_of(record, "rewards") or {}
    value = rewards.get(key) if isinstance(rewards, dict) else None
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _words(text: str, limit: int) -> str:
    words = text.split()
    return " ".join(words[:limit]) + (" ..." if len(words) > limit else "")


def _thought(policy_text: str, limit: int) -> str:
    """The policy's words before its action, without tags: what it thought."""
    cut = len(policy_text)
    for marker in ("<search>", "<answer>", "<tool_call>", "\\boxed"):
        at = policy_text.find(marker)
        if at >= 0:
            cut = min(cut, at)
    return _words(_TAG.sub(" ", policy_text[:cut]), limit)


def _read_docs(observation: str, wanted: frozenset[str], keep: int) -> list[tuple[str, str]]:
    """The passages of an observation worth showing: those holding most of the ``wanted`` terms (what the
    search led to: the next query, the answer) first, then the retriever's order; shown in that order."""
    docs = [(title, _TAG.sub(" ", body)) for title, body in parse_passages(observation)]
    holds = [len(wanted & search_terms(title + " " + body)) for title, body in docs]
    chosen = sorted(sorted(range(len(docs)), key=lambda i: (-holds[i], i))[:keep])
    return [docs[i] for i in chosen]


def case_from_trajectory(record: Any, config: CaseConfig | None = None) -> Case | None:
    """The case of one trajectory (a ``Trajectory`` or its dict), or None when it is not a verified
    success that searched and answered."""
    config = config or CaseConfig()
    reward = _reward(record, config.reward_key)
    answer = field_of(record, "answer")
    if reward is None or reward < config.threshold or not answer or field_of(record, "finish") != "answer":
        return None
    thoughts: list[str] = []
    searches: list[tuple[str, str, str]] = []  # (thought, query, observation)
    for turn in field_of(record, "turns") or []:
        role, text, meta = field_of(turn, "role"), field_of(turn, "text") or "", field_of(turn, "meta") or {}
        if role == "policy":
            thoughts.append(_thought(text, config.thought_words))
        elif role == "tool" and meta.get("query"):
            thought = thoughts[-1] if thoughts and len(thoughts) > len(searches) else ""
            searches.append((thought, str(meta["query"]), text))
    answer_terms = search_terms(str(answer))
    steps: list[CaseStep] = []
    for i, (thought, query, observation) in enumerate(searches):
        # what a passage led to: the next query's terms, or the answer's
        wanted = answer_terms | (search_terms(searches[i + 1][1]) if i + 1 < len(searches) else frozenset())
        terms = search_terms(query) | wanted
        docs = [CaseDoc(title=title.strip(), text=abridge(" ".join(body.split()), terms, config.doc_words))
                for title, body in _read_docs(observation, wanted, config.docs_per_search)]
        steps.append(CaseStep(thought=thought, query=query, docs=docs))
    if not steps or any(not step.docs for step in steps):  # a search that found nothing is no model to copy
        return None
    final = thoughts[-1] if len(thoughts) > len(steps) else ""
    return Case(question_id=str(field_of(record, "question_id")), question=str(field_of(record, "question")),
                steps=steps[: config.max_searches], final_thought=final, answer=str(answer).strip(),
                trajectory_id=str(field_of(record, "id") or ""), reward_key=config.reward_key, reward=reward)


def case_rank(case: Case) -> tuple:
    """Sort key of the successes of one question, best first: two or three searches (a multi-hop search
    to copy) before one, fewer before more beyond that, then the shorter text."""
    searches = case.searches
    shape = 0 if 2 <= searches <= 3 else 1
    length = sum(len(d.text.split()) for s in case.steps for d in s.docs) + len(case.final_thought.split())
    return (shape, searches, length, case.trajectory_id)


def best_case(records: Iterable[Any], config: CaseConfig | None = None) -> Case | None:
    """The best case among the trajectories of one question (see ``case_rank``), or None."""
    cases = [c for c in (case_from_trajectory(r, config) for r in records) if c is not None]
    return min(cases, key=case_rank) if cases else None


def case_entry(case: Case, entry_id: str, model: str | None = None) -> Entry:
    """A case as an E1 entry of a cases-only HEK: the question is its title (so the HEK's title vectors
    are the question vectors the lookup needs), no description, ``meta.kind == "case"``."""
    return Entry(id=entry_id, level="E1", title=case.question, tags=[f"{case.searches} searches"],
                 sources={"question_id": case.question_id, "question": case.question,
                          "trajectory_ids": [case.trajectory_id] if case.trajectory_id else []},
                 model=model, meta={"kind": "case"}, case=case)


def cases_from_trajectories(records: Iterable[Any], config: CaseConfig | None = None,
                            exclude_questions: Sequence[str] = ()) -> tuple[list[Entry], dict[str, int]]:
    """One case entry per question that has a verified success (the best one), in first-seen order, and
    counts: questions seen, questions with a case, episodes read."""
    config = config or CaseConfig()
    excluded = {" ".join(q.split()).casefold() for q in exclude_questions}
    by_question: dict[str, list[Any]] = {}
    episodes = 0
    for record in records:
        episodes += 1
        key = str(field_of(record, "question_id"))
        by_question.setdefault(key, []).append(record)
    entries: list[Entry] = []
    for n, (question_id, group) in enumerate(by_question.items()):
        if " ".join(str(field_of(group[0], "question", "")).split()).casefold() in excluded:
            continue
        case = best_case(group, config)
        if case is not None:
            model = field_of(group[0], "model")
            entries.append(case_entry(case, f"C-{len(entries):04d}", model=model))
    return entries, {"episodes": episodes, "questions": len(by_question), "cases": len(entries)}
