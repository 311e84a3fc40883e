"""Rollouts against several local OpenAI-compatible servers that fail: time-outs, 500s, 429 with Retry-After
and dropped connections. Every episode ends up in exactly one place: the trajectory file, or the failed
sidecar that a re-run retries; none is lost or written twice."""

from __future__ import annotations

import itertools
import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from hiexp.agent import AgentConfig, SearchAgent
from hiexp.agent.rollout import failed_path, run_rollouts
from hiexp.contracts.example import Example
from hiexp.io import read_jsonl
from hiexp.llm.openai_http import OpenAIGenerator


class FaultyServer:
    """Answers completions with ``\\boxed{7}``, but first plays its ``faults`` in a cycle, one per request:
    ``ok``, ``500``, ``429`` (Retry-After: 0.1), ``drop`` (closes the connection unanswered) or ``hang``
    (answers after ``hang_seconds``, past the client's deadline)."""

    def __init__(self, faults, hang_seconds=2.0):
        self.faults = itertools.cycle(faults)
        self.lock = threading.Lock()
        self.seen: dict[str, int] = {}
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with server.lock:
                    fault = next(server.faults)
                    server.seen[fault] = server.seen.get(fault, 0) + 1
                if fault == "drop":
                    self.connection.shutdown(socket.SHUT_RDWR)
                    self.close_connection = True
                    return
                if fault == "hang":
                    time.sleep(hang_seconds)
                if fault in ("500", "429"):
                    data = b'{"error": {"message": "try later"}}'
                    self.send_response(int(fault))
                    if fault == "429":
                        self.send_header("Retry-After", "0.1")
                else:
                    data = json.dumps({"choices": [{"text": "The sum is 7. \\\\boxed{7}", "finish_reason": "stop",
                                                    "index": 0}], "prompt": body["prompt"][:10]}).encode()
                    self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def problems():
    return [Example(f"p{i}", f"Add 3 and 4 (problem {i}).", ["7"], {"task": "math", "dataset": "toy"})
            for i in range(24)]


def generator(urls, **options):
    return OpenAIGenerator(urls, served_model="fake", timeout=0.5, backoff=0.01, max_backoff=0.2,
                           concurrency=4, on_failure="record", **options)


def test_every_episode_completes_or_is_recorded_as_failed_and_a_rerun_finishes_them(tmp_path, problems):
    flaky = FaultyServer(["500", "ok", "429", "drop", "ok", "hang", "500", "500", "ok"])
    dead = FaultyServer(["500", "drop", "429", "hang"])
    out = tmp_path / "rollouts.jsonl"
    config = AgentConfig(format="math", temperature=1.0, max_new_tokens=64, batch_size=16)
    try:
        agent = SearchAgent(generator([flaky.url, dead.url], max_retries=2), None, config)
        first = run_rollouts(problems, agent, 2, out, seed=0, progress=False)
        written = [r["id"] for r in read_jsonl(out)]
        failed = [r["id"] for r in read_jsonl(failed_path(out))] if failed_path(out).exists() else []
        assert first.written == len(written) and first.failed == len(failed)
        assert len(written) == len(set(written)) and not set(written) & set(failed)  # never twice
        assert set(written) | set(failed) == {f"p{i}#{s}" for i in range(24) for s in range(2)}  # none lost
        assert failed, "with a dead server and 3 tries some requests must fail"
        assert all(r["error"] for r in read_jsonl(failed_path(out)))
        assert {"500", "429", "drop", "hang"} <= set(flaky.seen) | set(dead.seen)

        healthy = FaultyServer(["ok"])
        try:
            again = run_rollouts(problems, SearchAgent(generator([healthy.url]), None, config), 2, out, seed=0,
                                 progress=False)
        finally:
            healthy.close()
        ids = [r["id"] for r in read_jsonl(out)]
        assert again.written == len(failed) and again.failed == 0 and not failed_path(out).exists()
        assert len(ids) == len(set(ids)) == 48
        assert all(r["rewards"]["em"] == 1.0 for r in read_jsonl(out))
    finally:
        flaky.close()
        dead.close()
