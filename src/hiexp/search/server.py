"""Serve any ``Retriever`` over HTTP with Search-R1's ``/retrieve`` protocol (see ``remote.py``).

Needs the ``serve`` extra (fastapi, uvicorn); both are imported only when a server is made.

Every request is bounded before it costs anything (``ServerLimits``): the body is read up to a size limit
(413 beyond it), then parsed and checked for the number of queries, their length and ``topk`` (422), and
at most ``max_in_flight`` searches run at once; a request that waits longer than ``queue_seconds`` for a
slot gets 503 with ``Retry-After``. The interactive ``/docs`` pages are off unless asked for.

Concurrent requests are scored together (``QueryBatcher``): while a search runs, the requests that arrive
queue up, and the next free search slot takes them (up to ``max_batch_queries`` queries, the smallest
requests first, a large one ``chunk_queries`` at a time) as one ``retriever.search`` call, which BM25 and
dense retrievers score as one matrix product. Nothing waits on purpose: a lone request is searched at
once. Responses are serialised with orjson when it is installed.
"""

import asyncio
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, Field, ValidationError

from hiexp.contracts.passage import Passage, Retriever
from hiexp.errors import HiexpError
from hiexp.search.corpus import IndexDamaged


class RetrieveRequest(BaseModel):
    """The body of ``POST /retrieve``; ``topk`` falls back to the server's default."""

    queries: list[str]
    topk: int | None = Field(default=None, ge=0)
    return_scores: bool = False


@dataclass(frozen=True)
class ServerLimits:
    """What one request may ask of the server (the defaults suit Search-R1 style agents: a few short
    queries, a handful of passages each)."""

    max_body_bytes: int = 1 << 20
    """Largest request body read; a bigger one is refused with 413 before it is parsed."""

    max_queries: int = 512
    """Queries in one request."""

    max_query_chars: int = 2000
    """Characters in one query."""

    max_topk: int = 100
    """Passages per query a request may ask for."""

    max_in_flight: int = 4
    """Searches running at once; the rest wait for a slot."""

    queue_seconds: float = 30.0
    """How long a request waits for a slot before it gets 503 with ``Retry-After``."""

    max_batch_queries: int = 512
    """Queries of concurrent requests scored together in one search (1 turns batching off)."""

    max_passages: int = 2048
    """Passages one answer may hold (queries x topk): bounds the bytes a client can make the server send."""

    max_queued_queries: int = 4096
    """Queries waiting for a search slot, all requests together; a request beyond that gets 503 at once."""

    chunk_queries: int = 16
    """A request of more queries is searched this many at a time, smallest requests first: one large request
    then delays a small one by one piece at most, and stops at the next piece when its client hangs up."""

    def __post_init__(self) -> None:
        for name in ("max_body_bytes", "max_queries", "max_query_chars", "max_topk", "max_in_flight",
                     "max_batch_queries", "max_passages", "max_queued_queries", "chunk_queries"):
            if getattr(self, name) < 1:
                raise HiexpError(f"server limit {name} must be >= 1, got {getattr(self, name)}")

    def problem(self, request: RetrieveRequest) -> str | None:
        """Why a parsed request asks too much, or None."""
        if len(request.queries) > self.max_queries:
            return f"{len(request.queries)} queries in one request; the limit is {self.max_queries}"
        longest = max((len(q) for q in request.queries), default=0)
        if longest > self.max_query_chars:
            return f"a query of {longest} characters; the limit is {self.max_query_chars}"
        if request.topk is not None and request.topk > self.max_topk:
            return f"topk {request.topk}; the limit is {self.max_topk}"
        return None

    def answer_problem(self, queries: int, k: int) -> str | None:
        """Why the answer to ``queries`` queries of ``k`` passages would be too large, or None."""
        if queries * k > self.max_passages:
            return (f"{queries} queries x topk {k} = {queries * k} passages in one answer; the limit is "
                    f"{self.max_passages} (send fewer queries per request)")
        return None


@dataclass(eq=False)
class _Pending:
    """One request's queries, handed to searches in pieces (``next``: the first not yet handed out)."""

    queries: list[str]
    k: int
    future: asyncio.Future
    expired: bool = False
    next: int = 0
    found: int = 0
    rows: list = field(default_factory=list)

    def __post_init__(self) -> None:
        self.rows = [None] * len(self.queries)

    @property
    def taken(self) -> bool:
        """Whether a search has taken any of its queries."""
        return self.next > 0

    @property
    def left(self) -> int:
        return 0 if self.expired else len(self.queries) - self.next


@dataclass
class QueryBatcher:
    """Searches the queries of concurrent requests together: ``max_in_flight`` workers each take what is
    waiting (up to ``max_batch_queries`` queries), search it in one call of the retriever on a thread, and
    hand each request its own rows (cut to its own ``k``). The smallest requests go first, and a request of
    more than ``chunk_queries`` queries is searched that many at a time, so that a large request delays an
    agent's one-query request by one piece at most, and a large request whose client hung up stops at the
    next piece. A request not taken within ``queue_seconds`` is answered None (the caller's 503)."""

    retriever: Any
    max_in_flight: int
    max_batch_queries: int
    max_queued_queries: int = 1 << 30
    chunk_queries: int = 16
    queued_queries: int = 0
    """Queries waiting now (not yet handed to a search)."""
    dropped: int = 0
    """Requests dropped before their search because their client had gone (a test and the benchmark read it)."""
    queue: asyncio.Queue | None = None
    loop: Any = None
    executor: ThreadPoolExecutor | None = None
    workers: list = field(default_factory=list)
    waiting: list = field(default_factory=list)
    batches: int = 0
    """Searches run so far (a test and the benchmark read it)."""

    def _start(self) -> None:
        """Queue and workers on the running loop (again, if the app now runs on another loop, as a test
        client that is not used as a context manager does per request)."""
        self.loop = asyncio.get_running_loop()
        self.queue = asyncio.Queue()
        self.waiting = []
        if self.executor is None:
            self.executor = ThreadPoolExecutor(self.max_in_flight, thread_name_prefix="hiexp-retrieve")
        self.workers = [self.loop.create_task(self._work(self.queue)) for _ in range(self.max_in_flight)]

    def full(self, queries: int) -> bool:
        """Whether ``queries`` more would overfill the queue."""
        return self.queued_queries + queries > self.max_queued_queries

    async def search(self, queries: list[str], k: int, queue_seconds: float,
                     gone: asyncio.Future | None = None) -> list[list[Passage]] | None:
        """The rows of ``queries``, or None when no slot took them within ``queue_seconds`` or ``gone`` (the
        client hung up) finished first; what was not searched yet when the client left costs no search."""
        if not queries:
            return []
        if self.loop is not asyncio.get_running_loop():
            self._start()
        pending = _Pending(list(queries), k, asyncio.get_running_loop().create_future())
        self.queued_queries += len(pending.queries)
        self.queue.put_nowait(pending)
        waits = {pending.future} if gone is None else {pending.future, gone}
        while True:
            done, _ = await asyncio.wait(waits, timeout=queue_seconds, return_when=asyncio.FIRST_COMPLETED)
            if pending.future in done:
                return pending.future.result()
            hung_up = gone is not None and gone in done
            if hung_up or not pending.taken:
                self.queued_queries -= pending.left
                pending.expired = True
                self.dropped += hung_up and not pending.taken
                return None

    async def _work(self, queue: asyncio.Queue) -> None:
        loop = asyncio.get_running_loop()
        while True:
            arrived = await queue.get()  # (not ``self.waiting.append(await ...)``: that binds the list first)
            self.waiting.append(arrived)
            while not queue.empty():
                self.waiting.append(queue.get_nowait())
            while True:
                pieces = self._take()
                if not pieces:
                    break
                self._settle(await loop.run_in_executor(self.executor, self._search, pieces))
                while not queue.empty():
                    self.waiting.append(queue.get_nowait())

    def _take(self) -> list[tuple[_Pending, int, int]]:
        """The next search: (request, first query, end) pieces, smallest requests first (runs on the loop,
        so workers never take the same piece)."""
        self.waiting[:] = [p for p in self.waiting if p.left > 0]
        pieces, size = [], 0
        for pending in sorted(self.waiting, key=lambda p: p.left):
            n = min(pending.left, self.chunk_queries, self.max_batch_queries - size)
            if n <= 0:
                break
            pieces.append((pending, pending.next, pending.next + n))
            pending.next += n
            size += n
            self.queued_queries -= n
        return pieces

    def _search(self, pieces: list[tuple[_Pending, int, int]]) -> list[tuple[_Pending, int, int, Any]]:
        """One search for all pieces (on a worker thread): each piece with its rows, or with the exception
        the retriever raised for it. Pieces the retriever refuses together are searched one by one, so that
        one bad request fails alone."""
        self.batches += 1
        try:
            rows = self.retriever.search([q for p, a, b in pieces for q in p.queries[a:b]],
                                         k=max(p.k for p, _, _ in pieces))
        except Exception as exc:  # noqa: BLE001 - handed to the requests, which answer it
            if len(pieces) > 1:
                return [found for piece in pieces for found in self._search([piece])]
            return [(*pieces[0], exc)]
        out, start = [], 0
        for pending, a, b in pieces:
            out.append((pending, a, b, [list(row)[: pending.k] for row in rows[start:start + b - a]]))
            start += b - a
        return out

    @staticmethod
    def _settle(found: list[tuple[_Pending, int, int, Any]]) -> None:
        """Put each piece's rows in place (on the loop: pieces of one request can finish on two threads)
        and answer every request whose queries are all searched, or that failed."""
        for pending, a, b, rows in found:
            if pending.future.done():
                continue
            if isinstance(rows, BaseException):
                pending.future.set_exception(rows)
                continue
            pending.rows[a:b] = rows
            pending.found += b - a
            if pending.found == len(pending.queries):
                pending.future.set_result(pending.rows)


async def _hang_up(request: Any) -> None:
    """Return when the client of ``request`` (whose body was read) closes its connection: the next ASGI
    message of a request is then ``http.disconnect``."""
    while True:
        message = await request.receive()
        if message.get("type") == "http.disconnect":
            return


def _json_response():
    """A response class that serialises with orjson when it is installed (several times faster)."""
    try:
        import orjson
        from fastapi.responses import Response
    except ImportError:
        from fastapi.responses import JSONResponse

        return JSONResponse

    class FastJSON(Response):
        media_type = "application/json"

        def render(self, content: Any) -> bytes:
            return orjson.dumps(content)

    return FastJSON


def _require_server_packages():
    try:
        import fastapi
        import uvicorn
    except ImportError as exc:
        raise HiexpError(
            f"serving a retriever needs fastapi and uvicorn ({exc.name} is missing): pip install 'hiexp[serve]'"
        ) from None
    return fastapi, uvicorn


def passage_document(passage: Passage) -> dict[str, Any]:
    """A passage as Search-R1 servers send it (``contents = '"Title"\\ntext'``), plus title and text."""
    return {
        "id": passage.id,
        "contents": f'"{passage.title}"\n{passage.text}',
        "title": passage.title,
        "text": passage.text,
    }


class _Refused(Exception):
    """A request answered with an error status instead of a search: raised by the checks, answered in one
    place, so each check reads as a plain step."""

    def __init__(self, status: int, detail: Any, **headers: str) -> None:
        super().__init__(status, detail)
        self.status, self.detail, self.headers = status, detail, headers

    def response(self) -> Any:
        from fastapi.responses import JSONResponse

        return JSONResponse({"detail": self.detail}, status_code=self.status, headers=self.headers or None)


async def _bounded_body(request: Any, max_bytes: int) -> bytes:
    """The body, read no further than ``max_bytes``: a larger one costs nothing and gets 413."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > max_bytes:
        raise _Refused(413, f"request body over {max_bytes} bytes")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > max_bytes:
            raise _Refused(413, f"request body over {max_bytes} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _parse_request(body: bytes, limits: ServerLimits, default_topk: int) -> tuple[RetrieveRequest, int]:
    """The request and its topk, or 422 naming what it gets wrong or asks too much of (before any search)."""
    try:
        parsed = RetrieveRequest.model_validate_json(body)
    except ValidationError as exc:
        raise _Refused(422, [{"loc": list(e["loc"]), "msg": e["msg"]} for e in exc.errors()[:5]]) from None
    problem = limits.problem(parsed)
    if problem is not None:
        raise _Refused(422, problem)
    k = default_topk if parsed.topk is None else parsed.topk
    problem = limits.answer_problem(len(parsed.queries), k)
    if problem is not None:
        raise _Refused(422, problem)
    return parsed, k


async def _search_request(batcher: QueryBatcher, request: Any, parsed: RetrieveRequest, k: int,
                          queue_seconds: float) -> list[list[Passage]]:
    """The rows of the request's queries; 503 when the queue is full or no slot came in time, 500 for a damaged
    index (the server's fault, said plainly, not as a traceback), 400 for another refusal of the retriever."""
    if batcher.full(len(parsed.queries)):
        raise _Refused(503, "busy: the search queue is full", **{"Retry-After": "1"})
    gone = asyncio.ensure_future(_hang_up(request))
    try:
        hits = await batcher.search(parsed.queries, k, queue_seconds, gone)
    except IndexDamaged as exc:
        raise _Refused(500, str(exc)) from None
    except HiexpError as exc:
        raise _Refused(400, str(exc)) from None
    finally:
        gone.cancel()
    if hits is None:
        raise _Refused(503, "busy: every search slot is taken", **{"Retry-After": "1"})
    return hits


def _result(hits: list[list[Passage]], return_scores: bool) -> list[list[dict[str, Any]]]:
    """The rows as Search-R1 clients read them: documents, or documents with their scores."""
    if return_scores:
        return [[{"document": passage_document(p), "score": p.score} for p in row] for row in hits]
    return [[passage_document(p) for p in row] for row in hits]


@dataclass(frozen=True)
class _Endpoints:
    """What the routes do, apart from the app, so that each reads on its own (the app holds thin wrappers)."""

    retriever: Any
    default_topk: int
    limits: ServerLimits
    batcher: QueryBatcher
    respond: Any
    """The response class of the answers (orjson when installed)."""

    async def retrieve(self, request: Any) -> Any:
        try:
            body = await _bounded_body(request, self.limits.max_body_bytes)
            parsed, k = _parse_request(body, self.limits, self.default_topk)
            hits = await _search_request(self.batcher, request, parsed, k, self.limits.queue_seconds)
        except _Refused as refused:
            return refused.response()
        return self.respond({"result": _result(hits, parsed.return_scores)})

    def info(self) -> dict[str, Any]:
        size = len(self.retriever) if hasattr(self.retriever, "__len__") else None
        return {
            "kind": type(self.retriever).__name__,
            "fingerprint": getattr(self.retriever, "fingerprint", None),
            "passages": size,
            "default_topk": self.default_topk,
            "limits": {name: getattr(self.limits, name) for name in self.limits.__dataclass_fields__},
        }

    def health(self) -> dict[str, Any]:
        return {"status": "ok", "searches": self.batcher.batches}


def _add_routes(app: Any, fastapi: Any, endpoints: _Endpoints) -> None:
    """The three routes; their names and annotations are what FastAPI reads (operation ids, no response model
    for ``/retrieve``), so they stay plain functions here."""

    # (no ``from __future__ import annotations`` in this module: FastAPI reads this annotation at runtime)
    @app.post("/retrieve")
    async def retrieve(request: fastapi.Request) -> Any:
        return await endpoints.retrieve(request)

    @app.get("/info")
    def info() -> dict[str, Any]:
        return endpoints.info()

    @app.get("/health")
    def health() -> dict[str, Any]:
        return endpoints.health()


def create_app(retriever: Retriever, default_topk: int = 3, limits: ServerLimits | None = None, docs: bool = False):
    """A FastAPI app with ``POST /retrieve``, ``GET /info`` (kind, fingerprint, size, limits) and ``GET /health``."""
    fastapi, _ = _require_server_packages()
    limits = limits or ServerLimits()
    respond = _json_response()
    if not 0 <= default_topk <= limits.max_topk:
        raise HiexpError(f"default topk {default_topk} is outside 0..{limits.max_topk} (the server's max_topk)")
    pages = {} if docs else {"docs_url": None, "redoc_url": None, "openapi_url": None}
    app = fastapi.FastAPI(title="hiexp retriever", description="Search-R1 compatible /retrieve endpoint", **pages)
    batcher = QueryBatcher(retriever, limits.max_in_flight, limits.max_batch_queries, limits.max_queued_queries,
                           limits.chunk_queries)
    app.state.batcher = batcher
    _add_routes(app, fastapi, _Endpoints(retriever, default_topk, limits, batcher, respond))
    return app


def serve(retriever: Retriever, host: str = "127.0.0.1", port: int = 8000, default_topk: int = 3,
          log_level: str = "info", limits: ServerLimits | None = None, docs: bool = False) -> None:
    """Run the server in the foreground until interrupted."""
    _, uvicorn = _require_server_packages()
    app = create_app(retriever, default_topk=default_topk, limits=limits, docs=docs)
    uvicorn.run(app, host=host, port=port, log_level=log_level)
