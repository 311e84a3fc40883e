"""The OpenAI-compatible HTTP backend against real local HTTP servers started by the tests."""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from hiexp.contracts.generation import SamplingParams
from hiexp.errors import HiexpError
from hiexp.llm import load_generator
from hiexp.llm.openai_http import OpenAIGenerator

SECRET = "sk-test-0123456789-secret"


class FakeServer:
    """A minimal OpenAI-compatible server on 127.0.0.1.

    ``failures`` is a list of ``(status, headers)`` answered, in order, before real answers. Completions
    answer ``"echo:" + prompt``, cut at the first stop string the way OpenAI servers do (stop string
    removed, reported in ``stop_reason``).
    """

    def __init__(self, failures=None, delay=0.0, report_stop=True):
        self.failures = list(failures or [])
        self.delay = delay
        self.report_stop = report_stop
        self.requests: list[dict] = []
        self.times: list[float] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self.lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep test output quiet
                pass

            def _reply(self, status, body, headers=None):
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for key, value in (headers or {}).items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self):
                server._record(self, None)
                if self.path == "/v1/models":
                    self._reply(200, {"object": "list", "data": [{"id": "fake-model", "object": "model"}]})
                else:
                    self._reply(404, {"error": {"message": "not found"}})

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                server._record(self, body)
                with server.lock:
                    server.in_flight += 1
                    server.max_in_flight = max(server.max_in_flight, server.in_flight)
                    failure = server.failures.pop(0) if server.failures else None
                time.sleep(server.delay)
                # Done before the reply goes out: once the client has it, it may send the next request.
                with server.lock:
                    server.in_flight -= 1
                if failure is not None:
                    status, headers = failure
                    self._reply(status, {"error": {"message": f"failure {status}"}}, headers)
                    return
                self._reply(200, server._answer(self.path, body))

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def _record(self, handler, body):
        with self.lock:
            self.times.append(time.monotonic())
            self.requests.append({"path": handler.path, "headers": dict(handler.headers), "body": body})

    def _answer(self, path, body):
        if path.endswith("/chat/completions"):
            text = "chat:" + body["messages"][-1]["content"]
        else:
            text = "echo:" + body["prompt"]
        finish, matched = "length", None
        for stop in body.get("stop") or []:
            at = text.find(stop)
            if at != -1 and (matched is None or at < text.find(matched)):
                matched = stop
        if matched is not None:
            text, finish = text[: text.find(matched)], "stop"
        choice = {"index": 0, "finish_reason": finish}
        if self.report_stop and matched is not None:
            choice["stop_reason"] = matched
        if path.endswith("/chat/completions"):
            choice["message"] = {"role": "assistant", "content": text}
        else:
            choice["text"] = text
        return {"id": "x", "object": "text_completion", "choices": [choice]}

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture(autouse=True)
def no_default_key(monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)


def fast(url, **kwargs):
    return OpenAIGenerator(url, backoff=0.01, max_backoff=2.0, timeout=5.0, **kwargs)


def test_completions_in_order_with_discovered_model():
    with FakeServer() as server:
        gen = load_generator(server.url, backend="auto", concurrency=3)
        assert isinstance(gen, OpenAIGenerator) and gen.tokenizer is None
        prompts = [f"question {i}" for i in range(7)]
        outs = gen.generate(prompts, SamplingParams(max_new_tokens=5, temperature=0.5, top_p=0.9, seed=3))
    assert [o.text for o in outs] == [f"echo:{p}" for p in prompts]
    assert all(o.finish_reason == "length" and o.token_ids == [] and o.logprobs is None for o in outs)
    assert gen.served_model == "fake-model" and gen.model_id == f"fake-model@{server.url}"
    body = server.requests[-1]["body"]
    assert body["model"] == "fake-model" and body["max_tokens"] == 5
    seeds = [r["body"]["seed"] for r in server.requests if r["body"]]
    assert len(set(seeds)) == 7  # one derived seed per prompt
    assert body["temperature"] == 0.5 and body["top_p"] == 0.9
    assert server.requests[0]["path"] == "/v1/models"


def test_explicit_per_prompt_seeds_are_sent():
    with FakeServer() as server:
        fast(server.url, served_model="m").generate(["a", "b"], SamplingParams(seed=1), seeds=[11, 12])
    assert sorted(r["body"]["seed"] for r in server.requests) == [11, 12]


def test_stop_string_is_put_back_into_the_text():
    with FakeServer() as server:
        gen = fast(server.url, served_model="m")
        out = gen.generate(["<search> capital </search> more"], SamplingParams(stop=["</search>", "zzz"]))[0]
    assert out.text == "echo:<search> capital </search>" and out.stop == "</search>" and out.finish_reason == "stop"


def test_server_that_does_not_report_the_stop():
    with FakeServer(report_stop=False) as server:
        out = fast(server.url, served_model="m").generate(["a </search> b"], SamplingParams(stop=["</search>"]))[0]
    assert out.text == "echo:a " and out.stop is None and out.finish_reason == "stop"


def test_concurrency_limit_is_respected():
    with FakeServer(delay=0.05) as server:
        outs = fast(server.url, served_model="m", concurrency=2).generate([str(i) for i in range(8)], SamplingParams())
    assert len(outs) == 8 and server.max_in_flight <= 2


def test_fails_twice_with_503_then_answers():
    with FakeServer(failures=[(503, {}), (503, {})]) as server:
        out = fast(server.url, served_model="m").generate(["hi"], SamplingParams())[0]
    assert out.text == "echo:hi"
    assert len(server.requests) == 3


def test_429_honours_retry_after():
    with FakeServer(failures=[(429, {"Retry-After": "1"})]) as server:
        out = fast(server.url, served_model="m").generate(["hi"], SamplingParams())[0]
    assert out.text == "echo:hi" and len(server.requests) == 2
    assert server.times[1] - server.times[0] >= 0.9  # waited as told, not the 0.01 s backoff


def test_retries_are_bounded_and_the_error_names_url_and_status():
    with FakeServer(failures=[(500, {})] * 10) as server:
        with pytest.raises(HiexpError) as info:
            fast(server.url, served_model="m", max_retries=2).generate(["hi"], SamplingParams())
    assert len(server.requests) == 3
    message = str(info.value)
    assert f"{server.url}/completions" in message and "3 attempts" in message and "HTTP 500" in message


def test_client_error_is_not_retried():
    with FakeServer(failures=[(400, {})]) as server:
        with pytest.raises(HiexpError, match="HTTP 400: failure 400"):
            fast(server.url, served_model="m").generate(["hi"], SamplingParams())
    assert len(server.requests) == 1


def test_server_that_never_answers_times_out():
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)  # accepts connections into the backlog, never reads or replies
    url = f"http://127.0.0.1:{silent.getsockname()[1]}/v1"
    try:
        gen = OpenAIGenerator(url, served_model="m", timeout=0.3, max_retries=1, backoff=0.01)
        with pytest.raises(HiexpError, match=r"failed after 2 attempts; last: no complete response within 0\.3s"):
            gen.generate(["hi"], SamplingParams())
    finally:
        silent.close()


def test_nothing_listening_is_a_connection_error():
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    gen = OpenAIGenerator(f"http://127.0.0.1:{port}/v1", served_model="m", max_retries=1, backoff=0.01)
    with pytest.raises(HiexpError, match="connection error"):
        gen.generate(["hi"], SamplingParams())


def test_api_key_sent_as_bearer_but_never_shown(monkeypatch, caplog):
    monkeypatch.setenv("MY_SERVER_KEY", SECRET)
    caplog.set_level(logging.DEBUG)
    with FakeServer(failures=[(503, {}), (401, {})]) as server:
        gen = fast(server.url, served_model="m", api_key_env="MY_SERVER_KEY")
        with pytest.raises(HiexpError) as info:
            gen.generate(["hi"], SamplingParams())
    assert server.requests[0]["headers"]["Authorization"] == f"Bearer {SECRET}"
    assert "MY_SERVER_KEY" in str(info.value)
    for shown in (repr(gen), str(info.value), caplog.text, str(gen.__dict__.get("api_key_env"))):
        assert SECRET not in shown
    assert "MY_SERVER_KEY" in repr(gen)


def test_default_key_variable_and_missing_named_variable(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    with FakeServer() as server:
        fast(server.url, served_model="m").generate(["x"], SamplingParams())
    assert server.requests[0]["headers"]["Authorization"] == f"Bearer {SECRET}"
    monkeypatch.delenv("OPENAI_API_KEY")
    with FakeServer() as server:
        fast(server.url, served_model="m").generate(["x"], SamplingParams())
    assert "Authorization" not in server.requests[0]["headers"]
    with pytest.raises(HiexpError, match=r"\$HIEXP_NOT_SET_KEY is not set"):
        OpenAIGenerator("http://127.0.0.1:1/v1", api_key_env="HIEXP_NOT_SET_KEY")


def test_chat_helpers_and_chat_endpoint():
    with FakeServer() as server:
        gen = fast(server.url, served_model="m")
        reply = gen.chat([{"role": "system", "content": "s"}, {"role": "user", "content": "reflect"}])
        assert reply.text == "chat:reflect"
        assert server.requests[-1]["path"] == "/v1/chat/completions"
        chat_gen = fast(server.url, served_model="m", endpoint="chat")
        assert [o.text for o in chat_gen.generate(["a", "b"], SamplingParams())] == ["chat:a", "chat:b"]


def test_usable_from_inside_a_running_event_loop():
    with FakeServer() as server:
        gen = fast(server.url, served_model="m")

        async def caller():
            return gen.generate(["inside"], SamplingParams())

        assert asyncio.run(caller())[0].text == "echo:inside"


def test_bad_configuration_and_token_prompts():
    with pytest.raises(HiexpError, match="endpoint"):
        OpenAIGenerator("http://127.0.0.1:1/v1", endpoint="embeddings")
    with pytest.raises(HiexpError, match="http://"):
        OpenAIGenerator("127.0.0.1:1/v1")
    with pytest.raises(HiexpError, match="text-only"):
        OpenAIGenerator("http://127.0.0.1:1/v1", served_model="m").generate([[1, 2]], SamplingParams())


# ---- several servers ---------------------------------------------------------------------------------


def test_requests_are_spread_over_several_servers():
    with FakeServer(delay=0.02) as a, FakeServer(delay=0.02) as b:
        generator = fast(f"{a.url},{b.url}", concurrency=2)
        out = generator.generate([f"p{i}" for i in range(12)], SamplingParams(max_new_tokens=8))
        assert [g.text for g in out] == [f"echo:p{i}" for i in range(12)]
        posts = lambda s: sum(1 for r in s.requests if r["path"] == "/v1/completions")  # noqa: E731
        assert posts(a) + posts(b) == 12 and posts(a) >= 3 and posts(b) >= 3
        assert a.max_in_flight <= 2 and b.max_in_flight <= 2  # concurrency is per server
        assert generator.model_id == f"fake-model@{a.url},{b.url}"
        robin = fast([a.url, b.url], routing="round_robin", served_model="fake-model")
        robin.generate(["x", "y", "z", "w"], SamplingParams(max_new_tokens=8))
        assert [s["served"] for s in robin.server_stats()] == [2, 2]


def test_a_failing_server_is_rested_and_its_requests_go_to_the_other():
    with FakeServer(failures=[(500, {})] * 50) as bad, FakeServer(delay=0.02) as good:
        generator = fast([bad.url, good.url], max_retries=3, concurrency=2)
        out = generator.generate([f"p{i}" for i in range(8)], SamplingParams(max_new_tokens=8))
        assert [g.text for g in out] == [f"echo:p{i}" for i in range(8)]
        stats = {s["url"]: s for s in generator.server_stats()}
        assert stats[good.url]["served"] == 8
        assert stats[bad.url]["failures"] >= 1
        assert good.max_in_flight <= 2  # the resting server's share waits for a slot, not piled on


def test_a_429_with_retry_after_sends_the_retry_elsewhere_without_waiting(monkeypatch):
    import hiexp.llm.openai_http as openai_http

    waits: list[float] = []
    real_sleep = asyncio.sleep

    async def recorded_sleep(delay, *args, **kwargs):
        waits.append(delay)
        return await real_sleep(delay, *args, **kwargs)

    monkeypatch.setattr(openai_http.asyncio, "sleep", recorded_sleep)
    with FakeServer(failures=[(429, {"Retry-After": "30"})]) as busy, FakeServer() as free:
        generator = OpenAIGenerator([busy.url, free.url], served_model="fake-model", routing="round_robin",
                                    backoff=0.01, max_backoff=30.0, timeout=5.0)
        out = generator.generate(["only"], SamplingParams(max_new_tokens=8))
        assert out[0].text == "echo:only"
        assert not [w for w in waits if w >= 1]  # the 30 s Retry-After rested the busy server, not the request
        assert [s["served"] for s in generator.server_stats()] == [0, 1]


def test_with_on_failure_record_a_dead_request_is_an_error_generation_and_the_rest_complete():
    with FakeServer(failures=[(500, {})] * 3) as server:
        generator = OpenAIGenerator(server.url, served_model="fake-model", max_retries=2, backoff=0.01,
                                    timeout=5.0, concurrency=1, on_failure="record")
        out = generator.generate(["a", "b", "c"], SamplingParams(max_new_tokens=8))
        assert out[0].finish_reason == "error" and "HTTP 500" in out[0].error and out[0].text == ""
        assert [g.text for g in out[1:]] == ["echo:b", "echo:c"]
        with pytest.raises(HiexpError, match="routing"):
            OpenAIGenerator(server.url, routing="random")
