"""Serve any ``Retriever`` over HTTP with Search-R1's ``/retrieve`` protocol (see ``remote.py``).

Needs the ``serve`` extra (fastapi, uvicorn); both are imported only when a server is made.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from hiexp.contracts.passage import Passage, Retriever
from hiexp.errors import HiexpError

MAX_TOPK = 1000


class RetrieveRequest(BaseModel):
    """The body of ``POST /retrieve``; ``topk`` falls back to the server's default."""

    queries: list[str]
    topk: int | None = Field(default=None, ge=0, le=MAX_TOPK)
    return_scores: bool = False


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


def create_app(retriever: Retriever, default_topk: int = 3):
    """A FastAPI app with ``POST /retrieve``, ``GET /info`` (kind, fingerprint, size) and ``GET /health``."""
    fastapi, _ = _require_server_packages()
    app = fastapi.FastAPI(title="hiexp retriever", description="Search-R1 compatible /retrieve endpoint")

    @app.post("/retrieve")
    def retrieve(request: RetrieveRequest) -> dict[str, Any]:
        k = default_topk if request.topk is None else request.topk
        try:
            hits = retriever.search(request.queries, k=k)
        except HiexpError as exc:
            raise fastapi.HTTPException(status_code=400, detail=str(exc)) from None
        if request.return_scores:
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
        }

    @app.get("/health")
    def health() -> dict[str, str]:
        return {"status": "ok"}

    return app


def serve(retriever: Retriever, host: str = "127.0.0.1", port: int = 8000, default_topk: int = 3,
          log_level: str = "info") -> None:
    """Run the server in the foreground until interrupted."""
    _, uvicorn = _require_server_packages()
    app = create_app(retriever, default_topk=default_topk)
    uvicorn.run(app, host=host, port=port, log_level=log_level)
