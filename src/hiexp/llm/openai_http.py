"""A text-only generator for any OpenAI-compatible ``/v1`` server (vLLM, SGLang, llama.cpp server, hosted APIs).

Requests run concurrently on an asyncio event loop (``httpx.AsyncClient`` with a semaphore bounding the
requests in flight) behind the synchronous ``generate`` the agent calls. Transient failures (connection
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
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
from typing import Any

from hiexp.contracts.generation import Generation, SamplingParams, derive_seed
from hiexp.errors import HiexpError
from hiexp.io import split_url_credentials
from hiexp.retry import Transient, policy, retry_after_seconds

logger = logging.getLogger(__name__)

RETRY_STATUSES = frozenset({408, 409, 425, 429, 500, 502, 503, 504})
# Fields under which servers report the stop string that ended a choice.
MATCHED_STOP_FIELDS = ("stop_reason", "matched_stop", "stopping_word")


class OpenAIGenerator:
    """Sample from an OpenAI-compatible server.

    Args:
        base_url: the server's API root, e.g. ``http://127.0.0.1:8000/v1``.
        served_model: the ``model`` field sent with each request; None asks the server (``GET /models``)
            and uses the first model it lists.
        endpoint: ``"completions"`` (raw prompts; the agent applies the chat template itself) or
            ``"chat"`` (each prompt becomes one user message; the server applies its template).
        api_key_env: the environment variable holding the API key. With the default, a missing variable
            means "no key" (local servers); a variable named explicitly must be set.
        concurrency: requests in flight at once.
        timeout: seconds one try may take from sending the request to the last byte of the answer (a server
            that drips bytes slowly is cut off at this deadline too); then it counts as a failed try.
        max_retries: retries of a request after a transient failure (so at most ``max_retries + 1`` tries).
        backoff: the first retry delay in seconds; doubled on each retry, with jitter.
        max_backoff: cap on one delay, including a server's ``Retry-After``.
        extra_body: extra JSON fields for every request (e.g. ``{"include_stop_str_in_output": True}``
            for vLLM, or ``{"top_k": 20}``).
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
    ):
        if not base_url.startswith(("http://", "https://")):
            raise HiexpError(f"server URL must start with http:// or https://, got '{base_url}'")
        if endpoint not in ("completions", "chat"):
            raise HiexpError(f"endpoint must be 'completions' or 'chat', got '{endpoint}'")
        if concurrency < 1 or max_retries < 0 or timeout <= 0:
            raise HiexpError("concurrency must be >= 1, max_retries >= 0 and timeout > 0")
        public, self._auth = split_url_credentials(base_url.rstrip("/"))
        self.base_url = public  # never the user:password of the URL: that goes to the client as basic auth
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
    def model_id(self) -> str:
        """``served_model@base_url`` (what manifests and trajectories record): the served name is asked from
        the server (``GET /models``) the first time, so two runs against the same model record the same id."""
        return f"{self.served_model}@{self.base_url}"

    def __repr__(self) -> str:
        key = f"${self.api_key_env} (set)" if self._api_key else "none"
        return (
            f"OpenAIGenerator(base_url={self.base_url!r}, served_model={self._served_model!r}, "
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

        limits = httpx.Limits(max_connections=self.concurrency, max_keepalive_connections=self.concurrency)
        return httpx.AsyncClient(headers=self._headers(), timeout=httpx.Timeout(self.timeout), limits=limits,
                                 auth=self._auth)

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
        semaphore = asyncio.Semaphore(self.concurrency_for(params))
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
                    return await self._complete(client, kind, payload, params, seed)

            return list(await asyncio.gather(*(one(i, kind, payload) for i, (kind, payload) in enumerate(items))))

    async def _complete(
        self, client: Any, kind: str, payload: Any, params: SamplingParams, seed: int | None
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
        response = await self._request(client, "POST", path, body)
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

    async def _request(self, client: Any, method: str, path: str, body: dict | None, url: str | None = None) -> Any:
        """One request with bounded retries on transient failures; the parsed JSON response.

        ``url`` overrides ``base_url + path`` (for a server's non-OpenAI endpoints).
        """
        import httpx
        from tenacity import AsyncRetrying

        url = url or f"{self.base_url}{path}"

        async def once() -> Any:
            try:  # one deadline for the whole answer, not per read
                response = await asyncio.wait_for(client.request(method, url, json=body), timeout=self.timeout)
            except (httpx.TimeoutException, TimeoutError):
                raise Transient(f"no complete response within {self.timeout:g}s") from None
            except httpx.TransportError as exc:
                raise Transient(f"connection error ({type(exc).__name__})") from None
            if response.status_code in RETRY_STATUSES or response.status_code >= 500:
                raise Transient(f"HTTP {response.status_code}", retry_after_seconds(response.headers.get("retry-after")))
            if response.status_code >= 400:
                hint = f"; check the API key in ${self.api_key_env}" if response.status_code in (401, 403) else ""
                raise HiexpError(f"{url}: HTTP {response.status_code}: {_error_text(response)}{hint}")
            try:
                return response.json()
            except ValueError:
                raise HiexpError(f"{url}: the response is not JSON: {response.text[:200]!r}") from None

        try:
            return await AsyncRetrying(**policy(self.max_retries, self.backoff, self.max_backoff, url))(once)
        except Transient as last:
            raise HiexpError(f"{url}: failed after {self.max_retries + 1} attempts; last: {last.what}") from None


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
