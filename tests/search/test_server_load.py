"""A loopback load test of the retriever server (bounded clients and time, no timing asserted): every
normal request of 8 concurrent clients is answered 200 with its own passages while another client sends
oversized requests, which all get 4xx."""

from __future__ import annotations

import socket
import threading
import time

import httpx

from hiexp.search.bm25 import BM25Retriever
from hiexp.search.server import create_app


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_the_server_keeps_serving_concurrent_clients_while_oversized_requests_get_4xx(passages):
    import uvicorn

    retriever = BM25Retriever.build(passages, show_progress=False)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(retriever), host="127.0.0.1", port=port, log_level="error"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    url = f"http://127.0.0.1:{port}/retrieve"
    queries = ["queen", "rock band", "river", "film director", "the capital"]
    expected = {q: [p.id for p in retriever.search([q], k=2)[0]] for q in queries}
    results: list[tuple[str, int, list[str]]] = []
    failures: list[str] = []
    oversized: list[int] = []
    stop = threading.Event()

    def client(offset: int) -> None:
        with httpx.Client(timeout=30) as http:
            for i in range(40):
                query = queries[(offset + i) % len(queries)]
                try:
                    response = http.post(url, json={"queries": [query], "topk": 2})
                    ids = [d["id"] for d in response.json()["result"][0]] if response.status_code == 200 else []
                    results.append((query, response.status_code, ids))
                except Exception as exc:  # noqa: BLE001 - any client error is a failure of the test
                    failures.append(repr(exc))

    def abuser() -> None:
        bodies = [b'{"queries": ["' + b"x" * (2 << 20) + b'"]}', b'{"queries": ["a"], "topk": 100000}',
                  ('{"queries": [' + ",".join(['"q"'] * 5000) + "]}").encode()]
        with httpx.Client(timeout=30) as http:
            i = 0
            while not stop.is_set():
                response = http.post(url, content=bodies[i % len(bodies)], headers={"content-type": "application/json"})
                oversized.append(response.status_code)
                i += 1

    try:
        bad = threading.Thread(target=abuser)
        bad.start()
        clients = [threading.Thread(target=client, args=(n,)) for n in range(8)]
        for c in clients:
            c.start()
        for c in clients:
            c.join(timeout=120)
        stop.set()
        bad.join(timeout=60)
        health = httpx.get(f"http://127.0.0.1:{port}/health", timeout=10).json()
    finally:
        server.should_exit = True
        thread.join(timeout=30)
    assert not failures and len(results) == 320
    assert all(status == 200 and ids == expected[query] for query, status, ids in results)
    assert oversized and all(400 <= status < 500 for status in oversized)
    assert health["status"] == "ok" and 0 < health["searches"] <= 320
