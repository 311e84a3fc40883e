"""The retriever server under abuse (issue 33): the queued work of a client that hung up is dropped before
it is searched, the queue is bounded, and an answer cannot be made arbitrarily large."""

from __future__ import annotations

import json
import socket
import threading
import time

import httpx

from hiexp.contracts.passage import Passage
from hiexp.search.server import ServerLimits, create_app
from tests.search.test_server_load import free_port


class GatedRetriever:
    """Blocks every search until ``gate`` is set; records the queries it searched."""

    def __init__(self):
        self.gate = threading.Event()
        self.searched: list[str] = []

    def search(self, queries, k=3):
        self.gate.wait(30)
        self.searched.extend(queries)
        return [[Passage(f"{q}-{i}", q, "text") for i in range(k)] for q in queries]


def serve(app):
    import uvicorn

    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=free_port(), log_level="error"))
    threading.Thread(target=server.run, daemon=True).start()
    deadline = time.monotonic() + 30
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    return server, f"http://127.0.0.1:{server.config.port}/retrieve"


def post_and_hang_up(port: int, queries: list[str]) -> None:
    body = json.dumps({"queries": queries}).encode()
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(b"POST /retrieve HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     + f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
        time.sleep(0.2)  # the server has read the request and queued it


def test_requests_of_clients_that_hung_up_are_never_searched():
    retriever = GatedRetriever()
    app = create_app(retriever, limits=ServerLimits(max_in_flight=1))
    server, url = serve(app)
    try:
        blocker = threading.Thread(target=lambda: httpx.post(url, json={"queries": ["first"]}, timeout=30))
        blocker.start()
        time.sleep(0.3)  # the one search slot is busy with "first"
        for i in range(5):
            post_and_hang_up(server.config.port, [f"gone-{i}-{j}" for j in range(50)])
        deadline = time.monotonic() + 10
        while app.state.batcher.dropped < 5 and time.monotonic() < deadline:
            time.sleep(0.05)
        retriever.gate.set()
        blocker.join(30)
        answer = httpx.post(url, json={"queries": ["after"]}, timeout=30)
        assert answer.status_code == 200 and answer.json()["result"][0][0]["id"] == "after-0"
        assert app.state.batcher.dropped == 5
        assert not [q for q in retriever.searched if q.startswith("gone")]
    finally:
        retriever.gate.set()
        server.should_exit = True


def test_an_answer_over_the_passage_limit_and_a_full_queue_are_refused_at_once():
    retriever = GatedRetriever()
    app = create_app(retriever, limits=ServerLimits(max_in_flight=1, max_passages=100, max_queued_queries=60))
    server, url = serve(app)
    try:
        big = httpx.post(url, json={"queries": ["q"] * 40, "topk": 3}, timeout=30)
        assert big.status_code == 422 and "120 passages" in big.json()["detail"]
        threads = [threading.Thread(target=lambda i=i: httpx.post(url, json={"queries": [f"w{i}"] * 30}, timeout=30))
                   for i in range(3)]
        for thread in threads:
            thread.start()
            time.sleep(0.2)
        full = httpx.post(url, json={"queries": ["late"] * 30}, timeout=30)
        assert full.status_code == 503 and "queue is full" in full.json()["detail"]
        retriever.gate.set()
        for thread in threads:
            thread.join(30)
    finally:
        retriever.gate.set()
        server.should_exit = True
