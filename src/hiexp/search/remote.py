"""A client for retriever servers that speak Search-R1's ``/retrieve`` protocol.

Request ``{"queries": [...], "topk": k, "return_scores": true}``; answer
``{"result": [[{"document": {"id", "contents"}, "score"}, ...], ...]}`` (one list per query, best first).
``hiexp serve-retriever`` speaks it, and so do Search-R1's and FlashRAG's servers, so an agent can be
pointed at a big remote index without code changes.
"""

from __future__ import annotations

import json
import time
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from hiexp.contracts.passage import Passage, check_queries
from hiexp.errors import HiexpError
from hiexp.io import split_url_credentials, stable_hash
from hiexp.retry import Transient, policy, retry_after_seconds

# HTTP statuses worth another try: the server is overloaded, restarting or behind a proxy that gave up.
RETRYABLE_STATUS = frozenset({429, 500, 502, 503, 504})


def retrieve_url(url: str) -> str:
    """``url`` with the ``/retrieve`` path added when only the server root was given."""
    parts = urlsplit(url)
    path = parts.path.rstrip("/")
    if not path.endswith("/retrieve"):
        path = f"{path}/retrieve"
    return urlunsplit((parts.scheme, parts.netloc, path, parts.query, ""))


class RemoteRetriever:
    """A ``Retriever`` whose index lives behind HTTP.

    Connection failures, time-outs and 5xx/429 answers are retried ``retries`` times with exponential
    backoff (``backoff``, 2x, 4x... seconds, or the server's ``Retry-After``); one try may take at most
    ``timeout`` seconds for the whole answer. When every try fails, a ``HiexpError`` names the URL and the
    last problem. Large batches are sent in requests of at most ``batch_size`` queries.
    """

    def __init__(self, url: str, timeout: float = 30.0, retries: int = 3, backoff: float = 0.5,
                 batch_size: int = 64):
        import httpx

        if not url.startswith(("http://", "https://")):
            raise HiexpError(f"{url}: a remote retriever needs an http:// or https:// URL")
        public, auth = split_url_credentials(url)
        self.url = retrieve_url(public)  # the credentials of the URL go to the client as basic auth only
        self.timeout = timeout
        self.retries = max(0, int(retries))
        self.backoff = backoff
        self.batch_size = max(1, int(batch_size))
        self._client = httpx.Client(timeout=timeout, auth=auth)
        self._fingerprint: str | None = None

    @property
    def fingerprint(self) -> str:
        """The server's index fingerprint when it reports one (``GET /info``), else a hash of the URL."""
        if self._fingerprint is None:
            info = self.info()
            served = info.get("fingerprint") if isinstance(info, dict) else None
            self._fingerprint = f"remote-{served}" if served else f"remote-url-{stable_hash(self.url)}"
        return self._fingerprint

    def info(self) -> dict[str, Any]:
        """``GET /info`` of a hiexp server (other servers lack it: then an empty dict)."""
        try:
            response = self._client.get(self.url[: -len("/retrieve")] + "/info", timeout=min(self.timeout, 5.0))
            if response.status_code == 200:
                body = response.json()
                return body if isinstance(body, dict) else {}
        except Exception:  # noqa: BLE001 - optional metadata; any failure means "unknown"
            pass
        return {}

    def search(self, queries: list[str] | str, k: int = 3) -> list[list[Passage]]:
        """Top-``k`` passages per query from the server, best first."""
        queries = check_queries(queries, k)
        if k == 0:
            return [[] for _ in queries]
        results: list[list[Passage]] = []
        for start in range(0, len(queries), self.batch_size):
            batch = queries[start : start + self.batch_size]
            body = self._post({"queries": batch, "topk": k, "return_scores": True})
            results.extend(self._parse(body, len(batch)))
        return results

    def _post(self, payload: dict[str, Any]) -> Any:
        import httpx
        from tenacity import Retrying

        def once() -> Any:
            deadline = time.monotonic() + self.timeout  # for the whole answer: a slow drip is cut off too
            try:
                with self._client.stream("POST", self.url, json=payload) as response:
                    chunks = []
                    for chunk in response.iter_bytes():
                        chunks.append(chunk)
                        if time.monotonic() > deadline:
                            raise Transient(f"no complete answer within {self.timeout:g}s")
            except httpx.TransportError as exc:  # connection refused, DNS, time-out, reset
                raise Transient(f"{type(exc).__name__}: {exc}") from None
            body = b"".join(chunks)
            text = body[:300].decode("utf-8", errors="replace")
            if response.status_code in RETRYABLE_STATUS:
                raise Transient(f"HTTP {response.status_code}: {text[:200]}",
                                retry_after_seconds(response.headers.get("retry-after")))
            if response.status_code != 200:
                raise HiexpError(f"retriever server {self.url} refused the request: HTTP {response.status_code}: "
                                 f"{text}")
            try:
                return json.loads(body)
            except ValueError:
                raise HiexpError(f"retriever server {self.url} answered with something that is not JSON: "
                                 f"{text[:200]!r}") from None

        try:
            return Retrying(**policy(self.retries, self.backoff, label=self.url))(once)
        except Transient as last:
            if last.what.startswith("HTTP"):  # the server answered, with an error every time
                raise HiexpError(f"retriever server {self.url} failed {self.retries + 1} tries ({last.what})") from None
            raise HiexpError(
                f"retriever server {self.url} is unreachable after {self.retries + 1} tries ({last.what}); "
                "start one with `hiexp serve-retriever INDEX --port PORT` or check the URL"
            ) from None

    def _parse(self, body: Any, expected: int) -> list[list[Passage]]:
        result = body.get("result") if isinstance(body, dict) else None
        if not isinstance(result, list) or len(result) != expected:
            raise HiexpError(
                f"retriever server {self.url} answered without a 'result' list of {expected} entries: "
                f"{str(body)[:200]}"
            )
        parsed = []
        for hits in result:
            passages = []
            for hit in hits or []:
                # With return_scores the server wraps each document; without, it sends documents bare.
                document = hit.get("document", hit) if isinstance(hit, dict) else None
                if not isinstance(document, dict):
                    raise HiexpError(f"retriever server {self.url} sent a hit that is not an object: {hit!r:.200}")
                passage = Passage.from_record(document)
                passage.score = float(hit.get("score", document.get("score", 0.0)))
                passages.append(passage)
            parsed.append(passages)
        return parsed

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> RemoteRetriever:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
