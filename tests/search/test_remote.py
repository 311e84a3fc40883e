"""The HTTP client against a real server on 127.0.0.1 (a free port), started inside the test."""

from __future__ import annotations

import socket
import threading
import time

import pytest
import uvicorn

from hiexp.errors import HiexpError
from hiexp.search.bm25 import BM25Retriever
from hiexp.search.remote import RemoteRetriever


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class RunningServer:
    """uvicorn in a background thread; stopped when the test ends."""

    def __init__(self, app):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self):
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("test server did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc):
        self.server.should_exit = True
        self.thread.join(10)


@pytest.fixture
def local(passages):
    return BM25Retriever.build(passages, show_progress=False)


@pytest.fixture
def served(local):
    from hiexp.search.server import create_app

    with RunningServer(create_app(local)) as running:
        yield running


def test_remote_results_equal_local_ones(served, local):
    queries = ["queen of Lotharingia", "the of", "runners marathon", "Genentech"]
    with RemoteRetriever(served.url + "/retrieve") as remote:
        got = remote.search(queries, k=2)
        assert [[(p.id, p.title, p.text) for p in row] for row in got] == [
            [(p.id, p.title, p.text) for p in row] for row in local.search(queries, k=2)
        ]
        assert [p.score for p in got[0]] == pytest.approx([p.score for p in local.search(queries, k=2)[0]])
        assert got[1] == []
        assert remote.fingerprint == f"remote-{local.fingerprint}"


def test_wire_format_is_search_r1(served):
    import httpx

    body = httpx.post(served.url + "/retrieve", json={"queries": ["queen"], "topk": 1, "return_scores": True}).json()
    hit = body["result"][0][0]
    assert hit["document"]["id"] == "p1"
    assert hit["document"]["contents"].startswith('"Teutberga"\n')
    assert hit["score"] > 0
    bare = httpx.post(served.url + "/retrieve", json={"queries": ["queen"], "topk": 1}).json()
    assert bare["result"][0][0]["id"] == "p1"  # without return_scores: documents only, as Search-R1 does
    assert httpx.post(served.url + "/retrieve", json={"queries": "queen"}).status_code == 422


def test_batches_split_into_several_requests(served, local):
    queries = [f"queen {i}" for i in range(7)]
    remote = RemoteRetriever(served.url, batch_size=3)
    assert [[p.id for p in row] for row in remote.search(queries, k=1)] == [["p1"]] * 7


def test_unreachable_server_is_a_clear_error():
    remote = RemoteRetriever(f"http://127.0.0.1:{free_port()}", timeout=2, retries=1, backoff=0.01)
    with pytest.raises(HiexpError, match=r"unreachable after 2 tries.*hiexp serve-retriever"):
        remote.search(["queen"], k=1)


def test_server_errors_are_retried(local):
    import fastapi

    from hiexp.search.server import create_app

    app = fastapi.FastAPI()
    inner = create_app(local)
    calls = {"n": 0}

    @app.middleware("http")
    async def flaky(request, call_next):
        calls["n"] += 1
        if calls["n"] <= 2:
            return fastapi.responses.JSONResponse({"detail": "warming up"}, status_code=503)
        return await call_next(request)

    app.mount("/", inner)
    with RunningServer(app) as running:
        remote = RemoteRetriever(running.url, retries=3, backoff=0.01)
        assert [p.id for p in remote.search(["queen"], k=1)[0]] == ["p1"]
        assert calls["n"] == 3
        # A client error is not retried: it cannot get better.
        failing = RemoteRetriever(running.url, retries=3, backoff=0.01)
        with pytest.raises(HiexpError, match="refused the request: HTTP 422"):
            failing._post({"queries": "not a list"})


def test_serve_retriever_command_end_to_end(index_dir, tmp_path):
    """`hiexp serve-retriever` in its own process, queried through `hiexp.search.load_retriever(url)`."""
    import os
    import subprocess
    import sys

    import httpx

    from hiexp.search import load_retriever

    port = free_port()
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    process = subprocess.Popen(
        [sys.executable, "-c", "from hiexp.cli import main; main()", "serve-retriever", str(index_dir),
         "--port", str(port), "--topk", "2"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"server did not start: {process.stderr.read().decode()[-2000:]}")
            time.sleep(0.1)
        remote = load_retriever(f"http://127.0.0.1:{port}")
        assert [p.title for p in remote.search(["queen of Lotharingia"], k=1)[0]] == ["Teutberga"]
        body = httpx.post(f"http://127.0.0.1:{port}/retrieve", json={"queries": ["Lotharingia"]}).json()
        assert len(body["result"][0]) == 2  # the server's --topk when the request names none
    finally:
        process.terminate()
        process.wait(timeout=20)


def test_missing_server_packages_are_explained(monkeypatch, local):
    import sys

    from hiexp.search.server import create_app

    monkeypatch.setitem(sys.modules, "fastapi", None)
    with pytest.raises(HiexpError, match=r"pip install 'hiexp\[serve\]'"):
        create_app(local)


def test_the_client_waits_as_a_server_asks_and_names_a_server_that_keeps_failing(local):
    """``Retry-After`` sets the delay of the next try; a server that answers 500 every time is not "unreachable"."""
    import fastapi

    from hiexp.search.server import create_app

    app = fastapi.FastAPI()
    inner = create_app(local)
    seen: list[float] = []

    @app.middleware("http")
    async def busy_then_broken(request, call_next):
        seen.append(time.monotonic())
        if len(seen) == 1:
            return fastapi.responses.JSONResponse({"detail": "busy"}, status_code=429, headers={"Retry-After": "1"})
        if request.headers.get("x-broken"):
            return fastapi.responses.JSONResponse({"detail": "broken"}, status_code=500)
        return await call_next(request)

    app.mount("/", inner)
    with RunningServer(app) as running:
        remote = RemoteRetriever(running.url, retries=2, backoff=0.01)
        assert [p.id for p in remote.search(["queen"], k=1)[0]] == ["p1"]
        assert seen[1] - seen[0] >= 0.9  # waited as told, not the 0.01 s backoff
        remote._client.headers["x-broken"] = "1"
        with pytest.raises(HiexpError, match="failed 3 tries \\(HTTP 500") as info:
            remote.search(["queen"], k=1)
        assert "unreachable" not in str(info.value)
