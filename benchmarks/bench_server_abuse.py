"""The retriever server under abuse: latency of normal queries alone and while other clients send
oversized requests, in one run.

A ``hiexp serve-retriever`` app (BM25 over the shipped HotpotQA corpus, default ``ServerLimits``) runs on
loopback. Phase 1: one client sends single-question requests (what an agent sends) and we record each
latency. Then the same three times, each beside four abusive clients: requests the limits must stop (a
5 MB body, 100,000 queries, a 1 MB query, ``topk`` 1000, deeply nested JSON), 512-query requests whose
clients hang up at once, and requests for the largest answer (512 queries x topk 100). The refused requests
must all get 4xx; the headline is the worst 99th-percentile latency of normal queries under abuse.

Run: ``python benchmarks/bench_server_abuse.py`` (about 20 s on 2 cores; uses port 8765 unless --port).
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import threading
import time

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--queries", type=int, default=300, help="normal requests per phase")
    args = parser.parse_args()

    import httpx
    import uvicorn

    from hiexp.components import make_retriever
    from hiexp.data import DEMO_DATASET, load_dataset
    from hiexp.search.server import create_app

    retriever = make_retriever(dataset=DEMO_DATASET)
    questions = [e.question for e in load_dataset(DEMO_DATASET)][: args.queries]
    server_app = create_app(retriever)
    server = uvicorn.Server(uvicorn.Config(server_app, host="127.0.0.1", port=args.port, log_level="error"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    url = f"http://127.0.0.1:{args.port}/retrieve"

    def normal_phase() -> np.ndarray:
        times = []
        with httpx.Client(timeout=30) as client:
            for question in questions:
                start = time.perf_counter()
                response = client.post(url, json={"queries": [question], "topk": 3})
                times.append(time.perf_counter() - start)
                assert response.status_code == 200, response.text
        return np.array(times) * 1000

    abusive = [
        b'{"queries": ["' + b"x" * (5 << 20) + b'"]}',
        ('{"queries": [' + ",".join(['"q"'] * 100_000) + "]}").encode(),
        b'{"queries": ["' + b"word " * 200_000 + b'"]}',
        b'{"queries": ["a"], "topk": 1000}',
        b'{"queries": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
    ]
    statuses: dict[int, int] = {}
    stop = threading.Event()

    def abuse(offset: int) -> None:
        with httpx.Client(timeout=30) as client:
            i = offset
            while not stop.is_set():
                response = client.post(url, content=abusive[i % len(abusive)],
                                       headers={"content-type": "application/json"})
                statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
                i += 1

    big = json.dumps({"queries": questions[:512], "topk": 3}).encode()
    hang_ups = [0]

    def hang_up(offset: int) -> None:
        """Posts a 512-query request and closes the connection without reading the answer."""
        head = (f"POST /retrieve HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(big)}\r\n\r\n").encode()
        while not stop.is_set():
            with socket.create_connection(("127.0.0.1", args.port)) as sock:
                sock.sendall(head + big)
            hang_ups[0] += 1
            time.sleep(0.01)

    largest = json.dumps({"queries": questions[:512], "topk": 100}).encode()

    def large_answer(offset: int) -> None:
        """Asks for the largest answer a request may have (refused when over ``max_passages``)."""
        with httpx.Client(timeout=60) as client:
            while not stop.is_set():
                response = client.post(url, content=largest, headers={"content-type": "application/json"})
                statuses[response.status_code] = statuses.get(response.status_code, 0) + 1

    def under(kind) -> np.ndarray:
        stop.clear()
        attackers = [threading.Thread(target=kind, args=(i,)) for i in range(4)]
        for attacker in attackers:
            attacker.start()
        times = normal_phase()
        stop.set()
        for attacker in attackers:
            attacker.join()
        return times

    normal_phase()  # warm-up
    alone = normal_phase()
    phases = {"oversized requests": under(abuse), "512-query requests that hang up": under(hang_up),
              "largest answers": under(large_answer)}
    dropped = server_app.state.batcher.dropped
    server.should_exit = True
    thread.join(5)

    print(f"normal queries alone: p50 {np.percentile(alone, 50):.1f} ms, p99 {np.percentile(alone, 99):.1f} ms")
    for name, times in phases.items():
        print(f"normal queries under {name}: p50 {np.percentile(times, 50):.1f} ms, "
              f"p99 {np.percentile(times, 99):.1f} ms")
    print(f"abusive requests: {sum(statuses.values())}, by status {dict(sorted(statuses.items()))}; "
          f"{hang_ups[0]} hung up, {dropped} of them dropped before their search")
    bad = {s: n for s, n in statuses.items() if s < 400 or s >= 500}
    if bad:
        raise SystemExit(f"abusive requests that were not refused with 4xx: {bad}")
    worst = max(np.percentile(times, 99) for times in phases.values())
    print(f"normal_p99_under_abuse_ms: {worst:.1f}")


if __name__ == "__main__":
    main()
