"""Helpers for the agent tests: a keyword retriever, examples, a scripted policy keyed on the prompt."""

from __future__ import annotations

import re

import pytest

from hiexp.contracts.example import Example
from hiexp.contracts.passage import Passage

PASSAGES = [
    Passage("p1", "Jaws (film)", "Jaws is a 1975 thriller directed by Steven Spielberg."),
    Passage("p2", "Steven Spielberg", "Spielberg was born in Cincinnati, Ohio."),
    Passage("p3", "Cincinnati", "Cincinnati is a city in Ohio, United States."),
    Passage("p4", "Paris", "Paris is the capital of France."),
]


class KeywordRetriever:
    """Ranks passages by shared lowercase words; records every batch it was asked."""

    fingerprint = "keyword-test"

    def __init__(self, passages=PASSAGES):
        self.passages = list(passages)
        self.calls: list[list[str]] = []

    def search(self, queries, k=3):
        self.calls.append(list(queries))
        out = []
        for q in queries:
            words = set(re.findall(r"\w+", q.lower()))
            scored = sorted(self.passages, key=lambda p: -len(words & set(re.findall(r"\w+", (p.title + " " + p.text).lower()))))
            out.append([Passage(p.id, p.title, p.text, 1.0) for p in scored[:k]])
        return out


class RecordingHook:
    """An experience hook with fixed texts, recording its calls."""

    version = "hek-test-1"

    def __init__(self, start="Check the director first.", query="Birthplaces are in the first sentence."):
        self.start, self.query = start, query
        self.question_calls, self.query_calls, self.query_questions = [], [], []

    def for_questions(self, questions):
        from hiexp.contracts.experience import Injection

        self.question_calls.append(list(questions))
        return [Injection(self.start, {"entries": ["E3-1"], "scores": [0.9]}) for _ in questions]

    def for_queries(self, queries, questions=None):
        from hiexp.contracts.experience import Injection

        self.query_calls.append(list(queries))
        self.query_questions.append(list(questions) if questions is not None else None)
        return [Injection(self.query, {"entries": ["E1-7"], "scores": [0.85]}) for _ in queries]


@pytest.fixture
def examples():
    return [
        Example("q1", "Where was the director of Jaws born?", ["Cincinnati"], {"dataset": "toy"}),
        Example("q2", "What is the capital of France?", ["Paris"], {"dataset": "toy"}),
    ]


@pytest.fixture
def retriever():
    return KeywordRetriever()

