"""Small corpora built in the test, so search tests need no shared data and run in milliseconds."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hiexp.contracts.passage import Passage

PASSAGES = [
    Passage("p1", "Teutberga", "Teutberga was a queen of Lotharingia by marriage to Lothair II."),
    Passage("p2", "Lothair II", "Lothair II was king of Lotharingia; he tried to divorce his wife."),
    Passage("p3", "Marathon", "A marathon is a long-distance running race; runners run 42 kilometres."),
    Passage("p4", "Photosynthesis", "Plants convert light into chemical energy through photosynthesis."),
    Passage("p5", "Evan Morris", "Evan Morris was a lobbyist for Genentech in Washington."),
    Passage("p6", "Zanzibar", "An archipelago off the coast of Tanzania, known for spices and cloves."),
]


@pytest.fixture
def passages() -> list[Passage]:
    return [Passage(p.id, p.title, p.text) for p in PASSAGES]


def write_jsonl(path: Path, records) -> Path:
    with path.open("w", encoding="utf-8") as handle:
        for record in records:
            handle.write((record if isinstance(record, str) else json.dumps(record)) + "\n")
    return path


@pytest.fixture(name="write_jsonl")
def write_jsonl_fixture():
    """The helper above, for test modules (test directories are not packages here)."""
    return write_jsonl


@pytest.fixture
def corpus_file(tmp_path: Path) -> Path:
    """The same passages in the three accepted corpus line shapes."""
    records = []
    for i, p in enumerate(PASSAGES):
        if i % 3 == 0:
            records.append({"id": p.id, "title": p.title, "contents": p.text})
        elif i % 3 == 1:
            records.append({"id": p.id, "contents": f'"{p.title}"\n{p.text}'})
        else:
            records.append({"id": p.id, "title": p.title, "text": p.text})
    return write_jsonl(tmp_path / "corpus.jsonl", records)


@pytest.fixture
def index_dir(tmp_path: Path, passages) -> Path:
    from hiexp.search.bm25 import BM25Retriever

    return BM25Retriever.build(passages).save(tmp_path / "index")


@pytest.fixture(autouse=True)
def _private_cache(tmp_path: Path, monkeypatch):
    """Keep cached indexes of these tests out of the user's cache."""
    monkeypatch.setenv("HIEXP_CACHE", str(tmp_path / "cache"))
