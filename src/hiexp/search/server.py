"""Serve any ``Retriever`` over HTTP with Search-R1's ``/retrieve`` protocol (see ``remote.py``).

Needs the ``serve`` extra (fastapi, uvicorn); both are imported only when a server is made.

Every request is bounded before it costs anything (``ServerLimits``): the body is read up to a size limit
(413 beyond it), then parsed and checked for the number of queries, their length and ``topk`` (422), and
at most ``max_in_flight`` searches run at once; a request that waits longer than ``queue_seconds`` for a
slot gets 503 with ``Retry-After``. The interactive ``/docs`` pages are off unless asked for.
"""

import threading
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, Field, ValidationError

from hiexp.contracts.passage import Passage, Retriever
from hiexp.errors import HiexpError


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

    def __post_init__(self) -> None:
        for name in ("max_body_bytes", "max_queries", "max_query_chars", "max_topk", "max_in_flight"):
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


def create_app(retriever: Retriever, default_topk: int = 3, limits: ServerLimits | None = None, docs: bool = False):
    """A FastAPI app with ``POST /retrieve``, ``GET /info`` (kind, fingerprint, size, limits) and ``GET /health``."""
    fastapi, _ = _require_server_packages()
    from fastapi.responses import JSONResponse
    from starlette.concurrency import run_in_threadpool

    limits = limits or ServerLimits()
    if not 0 <= default_topk <= limits.max_topk:
        raise HiexpError(f"default topk {default_topk} is outside 0..{limits.max_topk} (the server's max_topk)")
    pages = {} if docs else {"docs_url": None, "redoc_url": None, "openapi_url": None}
    app = fastapi.FastAPI(title="hiexp retriever", description="Search-R1 compatible /retrieve endpoint", **pages)
    slots = threading.BoundedSemaphore(limits.max_in_flight)

    def search_in_a_slot(queries: list[str], k: int) -> list[list[Passage]] | None:
        """Search once a slot is free; None when none freed up within ``queue_seconds``."""
        if not slots.acquire(timeout=limits.queue_seconds):
            return None
        try:
            return retriever.search(queries, k=k)
        finally:
            slots.release()

    def refuse(status: int, detail: Any, **headers: str) -> Any:
        return JSONResponse({"detail": detail}, status_code=status, headers=headers or None)

    async def bounded_body(request: Any) -> bytes | None:
        """The body, or None when it is larger than the limit (read no further than that)."""
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > limits.max_body_bytes:
            return None
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > limits.max_body_bytes:
                return None
            chunks.append(chunk)
        return b"".join(chunks)

    # (no ``from __future__ import annotations`` in this module: FastAPI reads this annotation at runtime)
    @app.post("/retrieve")
    async def retrieve(request: fastapi.Request) -> Any:
        body = await bounded_body(request)
        if body is None:
            return refuse(413, f"request body over {limits.max_body_bytes} bytes")
        try:
            parsed = RetrieveRequest.model_validate_json(body)
        except ValidationError as exc:
            return refuse(422, [{"loc": list(e["loc"]), "msg": e["msg"]} for e in exc.errors()[:5]])
        problem = limits.problem(parsed)
        if problem is not None:
            return refuse(422, problem)
        k = default_topk if parsed.topk is None else parsed.topk
        try:
            hits = await run_in_threadpool(search_in_a_slot, parsed.queries, k)
        except HiexpError as exc:
            return refuse(400, str(exc))
        if hits is None:
            return refuse(503, "busy: every search slot is taken", **{"Retry-After": "1"})
        if parsed.return_scores:
            result = [[{"document": passage_document(p), "score": p.score} for p in row] for row in hits]
        else:
            result = [[passage_document(p) for p in row] for row in hits]
        return {"result": result}

    @app.get("/info")
    def info() -> dict[str, Any]:
        size = len(retriever) if hasattr(retriever, "__len__") else None
        return {
            "kind": type(retriever).__name__,
            "fingerprint": getattr(retriever, "fingerprint", None),
            "passages": size,
            "default_topk": default_topk,
            "limits": {name: getattr(limits, name) for name in limits.__dataclass_fields__},
        }

    @app.get("/health")
    def health() -> dict[str, str]:
        return {"status": "ok"}

    return app


def serve(retriever: Retriever, host: str = "127.0.0.1", port: int = 8000, default_topk: int = 3,
          log_level: str = "info", limits: ServerLimits | None = None, docs: bool = False) -> None:
    """Run the server in the foreground until interrupted."""
    _, uvicorn = _require_server_packages()
    app = create_app(retriever, default_topk=default_topk, limits=limits, docs=docs)
    uvicorn.run(app, host=host, port=port, log_level=log_level)
