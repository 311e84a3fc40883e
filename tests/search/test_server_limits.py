"""The retriever server bounds every request (issue 12, class 3): size, queries, length, topk, in-flight work.

Oversized or malformed requests get 413 / 422 (never 500, never a search), a request that finds every
search slot taken for too long gets 503 with ``Retry-After``, and ``/docs`` is off unless asked for.
"""

from __future__ import annotations

import json
import threading
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hiexp.search.bm25 import BM25Retriever
from hiexp.search.server import ServerLimits, create_app

LIMITS = ServerLimits(max_body_bytes=4096, max_queries=8, max_query_chars=100, max_topk=5, max_in_flight=2)


class CountingRetriever:
    """A retriever that records every search it is asked for (an oversized request must cost none)."""

    def __init__(self, inner, delay: float = 0.0):
        self.inner, self.delay, self.calls, self.queries = inner, delay, 0, 0

    def search(self, queries, k=3):
        self.calls += 1
        self.queries += len(queries)
        time.sleep(self.delay)
        return self.inner.search(queries, k)


@pytest.fixture
def retriever(passages):
    return CountingRetriever(BM25Retriever.build(passages, show_progress=False))


@pytest.fixture
def client(retriever):
    from fastapi.testclient import TestClient

    return TestClient(create_app(retriever, limits=LIMITS))


def test_a_normal_request_is_answered(client, retriever):
    response = client.post("/retrieve", json={"queries": ["queen"], "topk": 1})
    assert response.status_code == 200 and len(response.json()["result"][0]) == 1
    assert retriever.calls == 1


@pytest.mark.parametrize("body, status, words", [
    ({"queries": ["q"] * 9}, 422, "9 queries"),
    ({"queries": ["x" * 101]}, 422, "101 characters"),
    ({"queries": ["q"], "topk": 6}, 422, "topk 6"),
    ({"queries": ["q"], "topk": -1}, 422, "greater than or equal"),
    ({"queries": "not a list"}, 422, "queries"),
    ({"queries": [1, 2]}, 422, "valid string"),
    ({}, 422, "Field required"),
    ({"queries": ["q " * 3000]}, 413, "over 4096 bytes"),
])
def test_requests_that_ask_too_much_are_refused_without_a_search(client, retriever, body, status, words):
    response = client.post("/retrieve", content=json.dumps(body))
    assert response.status_code == status
    assert words in json.dumps(response.json())
    assert retriever.calls == 0


@pytest.mark.parametrize("raw", [b"{", b"\xff\xfe not json", b"[" * 5000 + b"]" * 5000, b"[" * 2000 + b"]" * 2000,
                                 b'{"queries": ' + b"[" * 1900 + b"]" * 1900 + b"}", b"null", b'"queries"'])
def test_malformed_bodies_are_422_or_413(client, retriever, raw):
    assert client.post("/retrieve", content=raw).status_code in (413, 422)
    assert retriever.calls == 0


def test_a_body_without_a_length_is_still_bounded(client, retriever):
    def chunks():
        for _ in range(100):
            yield b"x" * 1024  # streamed: no Content-Length header

    assert client.post("/retrieve", content=chunks()).status_code == 413
    assert retriever.calls == 0


def test_docs_are_off_unless_asked_for(retriever):
    from fastapi.testclient import TestClient

    assert TestClient(create_app(retriever)).get("/docs").status_code == 404
    assert TestClient(create_app(retriever)).get("/openapi.json").status_code == 404
    assert TestClient(create_app(retriever, docs=True)).get("/docs").status_code == 200


def test_work_in_flight_is_bounded_and_the_overflow_is_told_when_to_come_back(passages):
    from fastapi.testclient import TestClient

    slow = CountingRetriever(BM25Retriever.build(passages, show_progress=False), delay=0.5)
    limits = ServerLimits(max_in_flight=1, queue_seconds=0.05)
    statuses: list[int] = []
    retry_after: list[str | None] = []

    def ask():
        response = client.post("/retrieve", json={"queries": ["queen"]})
        statuses.append(response.status_code)
        retry_after.append(response.headers.get("retry-after"))

    with TestClient(create_app(slow, limits=limits)) as client:  # one event loop, as under uvicorn
        threads = [threading.Thread(target=ask) for _ in range(3)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert sorted(statuses)[0] == 200 and 503 in statuses
    assert all(r == "1" for s, r in zip(statuses, retry_after) if s == 503)
    # concurrent requests may share one search (the server merges them): count queries, not calls
    assert slow.queries == statuses.count(200) and 1 <= slow.calls <= slow.queries


json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
                           lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                                        max_size=4), max_leaves=20)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=st.one_of(json_values, st.fixed_dictionaries({"queries": json_values}, optional={"topk": json_values})))
def test_any_json_body_gets_an_answer_not_a_crash(client, body):
    response = client.post("/retrieve", content=json.dumps(body))
    assert response.status_code in (200, 413, 422)


def test_concurrent_requests_are_scored_together_and_each_gets_its_own_rows(passages):
    from fastapi.testclient import TestClient

    slow = CountingRetriever(BM25Retriever.build(passages, show_progress=False), delay=0.3)
    alone = BM25Retriever.build(passages, show_progress=False)
    app = create_app(slow, limits=ServerLimits(max_in_flight=1))
    questions = ["queen", "rock band", "river", "film director", "queen band"]
    answers: dict[str, list] = {}
    with TestClient(app) as client:
        def ask(query, k):
            answers[query] = client.post("/retrieve", json={"queries": [query], "topk": k}).json()["result"][0]

        threads = [threading.Thread(target=ask, args=(q, 1 + i % 3)) for i, q in enumerate(questions)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        health = client.get("/health").json()
    assert slow.calls < len(questions) and health["searches"] == slow.calls  # merged into fewer searches
    for i, query in enumerate(questions):
        expected = [p.id for p in alone.search([query], k=1 + i % 3)[0]]
        assert [doc["id"] for doc in answers[query]] == expected
