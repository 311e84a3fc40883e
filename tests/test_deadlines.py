"""Deadlines (issue 12, class 4): a server that drips its answer a byte at a time cannot hold a client.

Each read arrives well within the read time-out, so only a deadline on the whole answer stops it: the
OpenAI-compatible generator and the remote retriever each give up after ``timeout`` seconds per try and
``retries`` retries, with one line naming the URL.
"""

from __future__ import annotations

import socket
import threading
import time

import pytest

from hiexp.contracts.generation import SamplingParams
from hiexp.errors import HiexpError


class SlowDripServer:
    """Answers every request with HTTP 200 headers, then one byte of body every ``every`` seconds."""

    def __init__(self, every: float = 0.05, total: int = 10_000):
        self.every, self.total, self.requests = every, total, 0
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.closed = threading.Event()
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while not self.closed.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.requests += 1
            threading.Thread(target=self._drip, args=(conn,), daemon=True).start()

    def _drip(self, conn: socket.socket) -> None:
        try:
            conn.recv(65536)
            conn.sendall(f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {self.total}\r\n"
                         "\r\n".encode())
            for _ in range(self.total):
                if self.closed.is_set():
                    break
                conn.sendall(b" ")
                time.sleep(self.every)
        except OSError:
            pass
        finally:
            conn.close()

    def close(self) -> None:
        self.closed.set()
        self.sock.close()


@pytest.fixture
def drip():
    server = SlowDripServer()
    yield server
    server.close()


def test_the_generator_gives_up_at_the_deadline(drip):
    from hiexp.llm.openai_http import OpenAIGenerator

    gen = OpenAIGenerator(f"http://127.0.0.1:{drip.port}/v1", served_model="m", timeout=0.5, max_retries=1,
                          backoff=0.01)
    # The message is the deadline's own: without it each try would drip for 10,000 bytes x 0.05 s = 500 s.
    with pytest.raises(HiexpError, match=r"failed after 2 attempts; last: no complete response within 0\.5s"):
        gen.generate(["hi"], SamplingParams(max_new_tokens=4))
    assert drip.requests == 2


def test_the_remote_retriever_gives_up_at_the_deadline(drip):
    from hiexp.search.remote import RemoteRetriever

    remote = RemoteRetriever(f"http://127.0.0.1:{drip.port}", timeout=0.5, retries=1, backoff=0.01)
    remote._fingerprint = "drip"  # no /info probe
    with pytest.raises(HiexpError, match=r"unreachable after 2 tries \(no complete answer within 0\.5s\)") as info:
        remote.search(["queen"], k=1)
    assert "\n" not in str(info.value)
    assert drip.requests == 2


def test_http_settings_reach_url_generators_and_retrievers(drip):
    from hiexp.components import http_settings, make_generator, make_retriever

    with http_settings(timeout=0.25, retries=0):
        gen = make_generator(f"http://127.0.0.1:{drip.port}/v1", served_model="m")
        remote = make_retriever(f"http://127.0.0.1:{drip.port}")
    assert (gen.timeout, gen.max_retries) == (0.25, 0)
    assert (remote.timeout, remote.retries) == (0.25, 0)
    assert make_generator(f"http://127.0.0.1:{drip.port}/v1", served_model="m").timeout == 120.0
