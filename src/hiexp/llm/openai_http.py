"""A text-only generator for any OpenAI-compatible ``/v1`` server (vLLM, SGLang, llama.cpp server, hosted APIs).

Requests run concurrently on an asyncio event loop (``httpx.AsyncClient``, at most ``concurrency`` requests
in flight on each server) behind the synchronous ``generate`` the agent calls. Transient failures (connection
errors, timeouts, HTTP 429 and 5xx) are retried a bounded number of times with exponential backoff,
honouring ``Retry-After``; anything else fails at once with a HiexpError naming the URL and the status.

The API key is read from an environment variable (``OPENAI_API_KEY`` unless ``api_key_env`` names another),
sent only as an ``Authorization: Bearer`` header, and never appears in reprs, errors or logs.

Stop strings: OpenAI-style servers cut the stop string off the text. hiexp's contract keeps it, so when the
server says which stop string fired (vLLM ``stop_reason``, SGLang ``matched_stop``, llama.cpp
``stopping_word``) it is appended back and recorded in ``Generation.stop``. A server that does not say
leaves ``stop`` None and the text without the stop string (``finish_reason`` is still ``"stop"``).
Generations carry no token ids (``token_ids == []``, ``logprobs is None``): use the transformers backend
where the agent must keep exact ids.

Seeds: each request gets its own seed, derived from ``(params.seed, prompt position)`` or taken from the
optional ``seeds`` list, so K copies of one prompt in a call are K different samples.

Several servers: ``base_url`` may list several API roots (a list, or one string separated by commas) that
serve the same model. Each request goes to the least loaded server (fewest requests in flight; ties in turn)
or to the next in turn (``routing="round_robin"``); a server that fails a try is rested for its
``Retry-After`` or the backoff delay, and the retry goes to another server at once when one is free of
trouble. ``concurrency`` is a cap per server that holds while others rest too: their share waits for a
free slot rather than piling onto the healthy server. With ``on_failure="record"`` a request whose tries all failed gives a
``Generation`` with ``finish_reason="error"`` instead of raising, so the other requests of the call still
complete and the agent records that one episode as failed (``rollout.py``: a sidecar file that a re-run
retries) instead of losing the whole batch.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from hiexp.contracts.generation import Generation, SamplingParams, derive_seed
from hiexp.errors import HiexpError
from hiexp.io import split_url_credentials
from hiexp.retry import Transient, retry_after_seconds, retry_delay

logger = logging.getLogger(__name__)

RETRY_STATUSES = frozenset({408, 409, 425, 429, 500, 502, 503, 504})
# Fields under which servers report the stop string that ended a choice.
MATCHED_STOP_FIELDS = ("stop_reason", "matched_stop", "stopping_word")
ROUTINGS = ("least_loaded", "round_robin")
ON_FAILURE = ("raise", "record")


@dataclass
class _Server:
    """One API root and what the router knows of it."""

    url: str
    auth: Any
    in_flight: int = 0  # requests routed here and not yet answered (sent, or waiting for one of its slots)
    resting_until: float = 0.0  # monotonic time before which it gets no request unless all others rest too
    failures: int = 0
    served: int = 0


def split_base_urls(base_url: str | Sequence[str]) -> list[str]:
    """The API roots of ``base_url``: a list, or one string with roots separated by commas."""
    urls = [base_url] if isinstance(base_url, str) else list(base_url)
    urls = [u.strip().rstrip("/") for url in urls for u in str(url).split(",") if u.strip()]
    if not urls:
        raise HiexpError("no server URL given")
    return urls


class OpenAIGenerator:
    """Sample from an OpenAI-compatible server.

    Args:
        base_url: the server's API root, e.g. ``http://127.0.0.1:8000/v1``; several roots serving the same
            model as a list or separated by commas.
        served_model: the ``model`` field sent with each request; None asks the server (``GET /models``)
            and uses the first model it lists.
        endpoint: ``"completions"`` (raw prompts; the agent applies the chat template itself) or
            ``"chat"`` (each prompt becomes one user message; the server applies its template).
        api_key_env: the environment variable holding the API key. With the default, a missing variable
            means "no key" (local servers); a variable named explicitly must be set.
        concurrency: requests in flight at once, per server.
        timeout: seconds one try may take from sending the request to the last byte of the answer (a server
            that drips bytes slowly is cut off at this deadline too); then it counts as a failed try.
        max_retries: retries of a request after a transient failure (so at most ``max_retries + 1`` tries).
        backoff: the first retry delay in seconds; doubled on each retry, with jitter.
        max_backoff: cap on one delay, including a server's ``Retry-After``.
        extra_body: extra JSON fields for every request (e.g. ``{"include_stop_str_in_output": True}``
            for vLLM, or ``{"top_k": 20}``).
        routing: ``least_loaded`` (fewest requests in flight) or ``round_robin``, across the servers.
        on_failure: ``raise`` (a request whose tries all failed fails the call with a HiexpError) or
            ``record`` (it gives a ``Generation`` with ``finish_reason="error"`` and the reason in ``error``).
    """

    def __init__(
        self,
        base_url: str,
        served_model: str | None = None,
        endpoint: str = "completions",
        api_key_env: str | None = None,
        concurrency: int = 8,
        timeout: float = 120.0,
        max_retries: int = 4,
        backoff: float = 0.5,
        max_backoff: float = 30.0,
        extra_body: dict[str, Any] | None = None,
        routing: str = "least_loaded",
        on_failure: str = "raise",
    ):
        urls = split_base_urls(base_url)
        for url in urls:
            if not url.startswith(("http://", "https://")):
                raise HiexpError(f"server URL must start with http:// or https://, got '{url}'")
        if routing not in ROUTINGS:
            raise HiexpError(f"routing must be one of {', '.join(ROUTINGS)}, got '{routing}'")
        if on_failure not in ON_FAILURE:
            raise HiexpError(f"on_failure must be one of {', '.join(ON_FAILURE)}, got '{on_failure}'")
        if endpoint not in ("completions", "chat"):
            raise HiexpError(f"endpoint must be 'completions' or 'chat', got '{endpoint}'")
        if concurrency < 1 or max_retries < 0 or timeout <= 0:
            raise HiexpError("concurrency must be >= 1, max_retries >= 0 and timeout > 0")
        # never the user:password of a URL in what is shown or recorded: that goes to the client as basic auth
        self.servers = [_Server(*split_url_credentials(url)) for url in urls]
        self.base_url = self.servers[0].url
        self.routing = routing
        self.on_failure = on_failure
        self._turn = itertools.count()
        self.endpoint = endpoint
        self.concurrency = concurrency
        self.timeout = timeout
        self.max_retries = max_retries
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.extra_body = dict(extra_body or {})
        self.tokenizer = None
        variable = api_key_env or "OPENAI_API_KEY"
        key = os.environ.get(variable)
        if api_key_env and not key:
            raise HiexpError(f"the API key variable ${api_key_env} is not set")
        self._api_key = key or None
        self.api_key_env = variable
        self._served_model = served_model

    # ----------------------------------------------------------------------------------------- naming

    @property
    def served_model(self) -> str:
        """The server-side model name (asked from the server once if not given)."""
        if self._served_model is None:
            self._served_model = _run(self._discover_model())
        return self._served_model

    @property
    def base_urls(self) -> list[str]:
        return [server.url for server in self.servers]

    @property
    def model_id(self) -> str:
        """``served_model@base_url`` (what manifests and trajectories record): the served name is asked from
        the server (``GET /models``) the first time, so two runs against the same model record the same id.
        Several servers are recorded as ``served_model@url1,url2``."""
        return f"{self.served_model}@{','.join(self.base_urls)}"

    def server_stats(self) -> list[dict[str, Any]]:
        """Per server: requests answered, failed tries, requests in flight now."""
        return [{"url": s.url, "served": s.served, "failures": s.failures, "in_flight": s.in_flight}
                for s in self.servers]

    def __repr__(self) -> str:
        key = f"${self.api_key_env} (set)" if self._api_key else "none"
        where = self.base_url if len(self.servers) == 1 else self.base_urls
        return (
            f"OpenAIGenerator(base_url={where!r}, served_model={self._served_model!r}, "
            f"endpoint={self.endpoint!r}, api_key={key})"
        )

    # ------------------------------------------------------------------------------------- public API

    def generate(
        self, prompts: list[list[int]] | list[str], params: SamplingParams, seeds: list[int] | None = None
    ) -> list[Generation]:
        """One generation per text prompt, in order. Token-id prompts are refused (no tokenizer here).

        ``seeds`` (optional, one per prompt) are sent as they are instead of seeds derived from
        ``params.seed``.
        """
        if any(not isinstance(p, str) for p in prompts):
            raise HiexpError("the OpenAI-compatible backend is text-only: pass prompts as strings")
        if seeds is not None and len(seeds) != len(prompts):
            raise HiexpError(f"got {len(seeds)} seeds for {len(prompts)} prompts")
        if self.endpoint == "chat":
            return self.chat_batch([[{"role": "user", "content": p}] for p in prompts], params, seeds)
        return _run(self._many([("completions", p) for p in prompts], params, seeds))  # type: ignore[list-item]

    def chat_batch(
        self, conversations: list[list[dict[str, str]]], params: SamplingParams, seeds: list[int] | None = None
    ) -> list[Generation]:
        """One assistant reply per conversation (lists of ``{"role", "content"}``), via chat completions."""
        return _run(self._many([("chat", c) for c in conversations], params, seeds))

    def chat(self, messages: list[dict[str, str]], params: SamplingParams | None = None) -> Generation:
        """One assistant reply to ``messages`` (a convenience for reflection and distillation prompts)."""
        return self.chat_batch([messages], params or SamplingParams())[0]

    def concurrency_for(self, params: SamplingParams) -> int:
        """Requests in flight for one call with these sampling parameters."""
        return self.concurrency

    # -------------------------------------------------------------------------------------- internals

    def _headers(self) -> dict[str, str]:
        headers = {"Content-Type": "application/json"}
        if self._api_key:
            headers["Authorization"] = f"Bearer {self._api_key}"
        return headers

    def _client(self) -> Any:
        import httpx

        total = self.concurrency * len(self.servers)
        limits = httpx.Limits(max_connections=total, max_keepalive_connections=total)
        return httpx.AsyncClient(headers=self._headers(), timeout=httpx.Timeout(self.timeout), limits=limits)

    async def _discover_model(self) -> str:
        async with self._client() as client:
            return await self._ask_model(client)

    async def _ask_model(self, client: Any) -> str:
        body = await self._request(client, "GET", "/models", None)
        models = body.get("data") if isinstance(body, dict) else None
        if not models or not isinstance(models[0], dict) or "id" not in models[0]:
            raise HiexpError(f"{self.base_url}/models: the server lists no model, so hiexp cannot tell which "
                             "model to ask for; check that the URL is the server's API root (…/v1)")
        return str(models[0]["id"])

    async def _many(
        self, items: list[tuple[str, Any]], params: SamplingParams, seeds: list[int] | None = None
    ) -> list[Generation]:
        cap = self.concurrency_for(params)
        # The shared semaphore holds a request back until some slot is free, so the server is chosen when
        # it is sent (least loaded then, not when queued); each server's own semaphore enforces the cap.
        semaphore = asyncio.Semaphore(cap * len(self.servers))
        slots = {id(server): asyncio.Semaphore(cap) for server in self.servers}
        async with self._client() as client:
            if self._served_model is None:
                self._served_model = await self._ask_model(client)

            async def one(index: int, kind: str, payload: Any) -> Generation:
                # Each prompt gets its own seed, so K copies of one prompt in a call are K different samples.
                if seeds is not None:
                    seed: int | None = int(seeds[index]) & 0x7FFFFFFF
                else:
                    seed = None if params.seed is None else derive_seed(params.seed, index, bits=31)
                async with semaphore:
                    try:
                        return await self._complete(client, kind, payload, params, seed, slots)
                    except HiexpError as exc:
                        if self.on_failure == "raise":
                            raise
                        return Generation(text="", finish_reason="error", error=str(exc))

            return list(await asyncio.gather(*(one(i, kind, payload) for i, (kind, payload) in enumerate(items))))

    async def _complete(
        self, client: Any, kind: str, payload: Any, params: SamplingParams, seed: int | None,
        slots: dict[int, asyncio.Semaphore],
    ) -> Generation:
        body: dict[str, Any] = {
            "model": self._served_model,
            "max_tokens": params.max_new_tokens,
            "temperature": params.temperature,
            "top_p": params.top_p,
            "n": 1,
        }
        if params.stop:
            body["stop"] = list(params.stop)
        if seed is not None:
            body["seed"] = seed
        body.update(self.extra_body)
        if kind == "chat":
            body["messages"] = payload
            path = "/chat/completions"
        else:
            body["prompt"] = payload
            path = "/completions"
        response = await self._request(client, "POST", path, body, slots=slots)
        try:
            choice = response["choices"][0]
            text = choice["message"]["content"] if kind == "chat" else choice["text"]
            text = text or ""
        except (KeyError, IndexError, TypeError):
            raise HiexpError(f"{self.base_url}{path}: unexpected response shape: {str(response)[:200]}") from None
        finish = "length" if choice.get("finish_reason") == "length" else "stop"
        matched = None
        for name in MATCHED_STOP_FIELDS:
            value = choice.get(name)
            if isinstance(value, str) and value in params.stop:
                matched = value
                break
        if matched is None and finish == "stop":
            # Some servers keep the stop string (vLLM with include_stop_str_in_output): recognise it.
            matched = next((s for s in params.stop if text.endswith(s)), None)
        elif matched is not None and not text.endswith(matched):
            text += matched
        return Generation(text=text, token_ids=[], logprobs=None, finish_reason=finish, stop=matched)

    def _pick(self, avoid: _Server | None) -> _Server:
        """The server for the next try: not resting (nor ``avoid``) if any such exists; the least loaded
        of those, or the next in turn."""
        now = time.monotonic()
        candidates = [s for s in self.servers if s.resting_until <= now and s is not avoid]
        if not candidates:
            candidates = [s for s in self.servers if s is not avoid] or list(self.servers)
            candidates = [min(candidates, key=lambda s: s.resting_until)]
        turn = next(self._turn)
        if self.routing == "round_robin" or len(candidates) == 1:
            return candidates[turn % len(candidates)]
        low = min(s.in_flight for s in candidates)
        tied = [s for s in candidates if s.in_flight == low]
        return tied[turn % len(tied)]

    async def _request(
        self, client: Any, method: str, path: str, body: dict | None, url: str | None = None,
        slots: dict[int, asyncio.Semaphore] | None = None,
    ) -> Any:
        """One request with bounded retries on transient failures; the parsed JSON response.

        Each try goes to a server chosen by ``_pick``; a server that failed rests for the backoff delay (or
        its ``Retry-After``), and the next try waits only when every other server rests too. ``url``
        overrides the server's root + ``path`` (for a single server's non-OpenAI endpoints). ``slots`` (one
        semaphore per server) caps the requests in flight on each server; the deadline starts once sent.
        """
        import httpx

        async def once(server: _Server) -> Any:
            target = url or f"{server.url}{path}"
            server.in_flight += 1  # counted before any wait, so the next pick sees this one
            try:
                async with slots[id(server)] if slots else contextlib.nullcontext():
                    # one deadline for the whole answer, not per read
                    response = await asyncio.wait_for(
                        client.request(method, target, json=body, auth=server.auth), timeout=self.timeout)
            except (httpx.TimeoutException, TimeoutError):
                raise Transient(f"no complete response within {self.timeout:g}s") from None
            except httpx.TransportError as exc:
                raise Transient(f"connection error ({type(exc).__name__})") from None
            finally:
                server.in_flight -= 1
            if response.status_code in RETRY_STATUSES or response.status_code >= 500:
                raise Transient(f"HTTP {response.status_code}", retry_after_seconds(response.headers.get("retry-after")))
            if response.status_code >= 400:
                hint = f"; check the API key in ${self.api_key_env}" if response.status_code in (401, 403) else ""
                raise HiexpError(f"{target}: HTTP {response.status_code}: {_error_text(response)}{hint}")
            try:
                parsed = response.json()
            except ValueError:
                raise HiexpError(f"{target}: the response is not JSON: {response.text[:200]!r}") from None
            server.served += 1
            return parsed

        last: Transient | None = None
        server: _Server | None = None
        for attempt in range(self.max_retries + 1):
            server = self.servers[0] if url else self._pick(avoid=server if last is not None else None)
            try:
                return await once(server)
            except Transient as exc:
                last = exc
                server.failures += 1
                delay = retry_delay(attempt, self.backoff, self.max_backoff, exc.retry_after)
                server.resting_until = time.monotonic() + delay
                if attempt == self.max_retries:
                    break
                now = time.monotonic()
                if url or not any(s.resting_until <= now for s in self.servers if s is not server):
                    logger.info("retrying %s in %.1fs after %s", url or f"{server.url}{path}", delay, exc.what)
                    await asyncio.sleep(delay)
        where = url or (f"{server.url}{path}" if len(self.servers) == 1 else f"{path} on {len(self.servers)} servers")
        raise HiexpError(f"{where}: failed after {self.max_retries + 1} attempts; last: {last.what if last else '?'}")


def _error_text(response: Any) -> str:
    try:
        body = response.json()
        if isinstance(body, dict) and isinstance(body.get("error"), dict):
            return str(body["error"].get("message", body["error"]))[:300]
        return str(body)[:300]
    except ValueError:
        return response.text[:300]


def _run(coroutine: Any) -> Any:
    """Run a coroutine to completion from synchronous code, even if this thread already runs a loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coroutine)
    result: dict[str, Any] = {}

    def target() -> None:
        try:
            result["value"] = asyncio.run(coroutine)
        except BaseException as exc:  # re-raised in the caller's thread
            result["error"] = exc

    thread = threading.Thread(target=target, name="hiexp-openai-http")
    thread.start()
    thread.join()
    if "error" in result:
        raise result["error"]
    return result["value"]
