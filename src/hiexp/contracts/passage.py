"""The retrieval contract: a batch of queries in, the top-k passages with scores out."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from typing import Any, Protocol, runtime_checkable

# A rendered passage's header; a title may hold one level of parentheses ("Jaws (film)").
_HEADER = re.compile(r"Doc\s*\d+\s*\(Title:\s*((?:[^()\n]|\([^()\n]*\))*?)\)[ \t]*")


@dataclass
class Passage:
    """One corpus passage. ``score`` is filled in by a retriever (higher is better)."""

    id: str
    title: str
    text: str
    score: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> Passage:
        """Read a corpus line: ``{id, title, contents}`` or FlashRAG's ``contents = '"Title"\\ntext'``."""
        pid = str(record.get("id", record.get("_id", "")))
        title = record.get("title")
        text = record.get("text")
        if text is None:
            contents = str(record.get("contents", ""))
            first, sep, rest = contents.partition("\n")
            if sep and (title is None or first.strip().strip('"') == title):
                title, text = first.strip().strip('"'), rest
            else:
                text = contents
        return cls(id=pid, title=str(title or ""), text=str(text or ""), score=float(record.get("score", 0.0)))


@runtime_checkable
class Retriever(Protocol):
    """Anything that answers a batch of queries with the top-k passages per query, best first."""

    def search(self, queries: list[str], k: int = 3) -> list[list[Passage]]: ...


def check_queries(queries: list[str] | str, k: int) -> list[str]:
    """The shared argument check of every ``Retriever.search``: one query or a list of strings, k >= 0."""
    from hiexp.errors import HiexpError

    if isinstance(queries, str):
        queries = [queries]
    if isinstance(k, bool) or not isinstance(k, int) or k < 0:
        raise HiexpError(f"k must be a non-negative integer, got {k!r}")
    queries = list(queries)
    for query in queries:
        if not isinstance(query, str):
            raise HiexpError(f"a query must be a string, got {type(query).__name__}: {query!r:.80}")
    return queries


def render_passages(passages: list[Passage]) -> str:
    """The text the model reads: ``Doc 1(Title: ...) text`` per passage, one per line."""
    return "\n".join(f"Doc {i}(Title: {p.title}) {p.text}" for i, p in enumerate(passages, start=1))


def parse_passages(text: str) -> list[tuple[str, str]]:
    """(title, text) of each passage ``render_passages`` wrote into ``text`` (an observation, perhaps inside
    the format's tags): a passage's text runs to the next header or the end, whatever it holds."""
    heads = list(_HEADER.finditer(text))
    ends = [h.start() for h in heads[1:]] + [len(text)]
    return [(head.group(1).strip(), text[head.end():end].strip()) for head, end in zip(heads, ends)]
