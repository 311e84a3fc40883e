"""Damaged artefacts (issue 12, class 6): a BM25 index with a damaged file is refused on load, in one line,
rather than failing at search time or returning wrong results quietly."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from hiexp.errors import HiexpError
from hiexp.search.bm25 import BM25Retriever


def _npy(path: Path, array) -> None:
    np.save(path, np.asarray(array))
    if path.suffix != ".npy":  # np.save added .npy
        Path(str(path) + ".npy").replace(path)


def damage(directory: Path, how: str) -> None:
    meta_path = directory / "meta.json"
    meta = json.loads(meta_path.read_text())
    data = np.load(directory / "data.csc.index.npy")
    indices = np.load(directory / "indices.csc.index.npy")
    indptr = np.load(directory / "indptr.csc.index.npy")
    if how == "meta-not-json":
        meta_path.write_text("{not json")
    elif how == "meta-is-a-list":
        meta_path.write_text("[1, 2]")
    elif how == "meta-count-a-string":
        meta_path.write_text(json.dumps({**meta, "count": "six"}))
    elif how == "meta-params-a-string":
        meta_path.write_text(json.dumps({**meta, "params": "lucene"}))
    elif how == "meta-future-schema":
        meta_path.write_text(json.dumps({**meta, "schema_version": 99}))
    elif how == "scores-nan":
        _npy(directory / "data.csc.index.npy", np.full_like(data, np.nan))
    elif how == "scores-inf":
        data = data.copy()
        data[0] = np.inf
        _npy(directory / "data.csc.index.npy", data)
    elif how == "scores-truncated":
        _npy(directory / "data.csc.index.npy", data[: len(data) // 2])
    elif how == "indices-out-of-range":
        _npy(directory / "indices.csc.index.npy", indices + 10_000)
    elif how == "indptr-decreasing":
        _npy(directory / "indptr.csc.index.npy", indptr[::-1].copy())
    elif how == "npy-garbage":
        (directory / "indptr.csc.index.npy").write_bytes(b"not an npy file")
    elif how == "vocab-empty":
        (directory / "vocab.index.json").write_text("{}")
    elif how == "vocab-not-json":
        (directory / "vocab.index.json").write_text("{oops")
    elif how == "params-not-json":
        (directory / "params.index.json").write_text("[")
    elif how == "offsets-garbage":
        (directory / "passages.offsets.npy").write_bytes(b"\x93NUMPY garbage")
    elif how == "offsets-past-the-end":
        offsets = np.load(directory / "passages.offsets.npy")
        _npy(directory / "passages.offsets.npy", offsets + 10**9)
    elif how == "passages-truncated":
        text = (directory / "passages.jsonl").read_bytes()
        (directory / "passages.jsonl").write_bytes(text[: len(text) // 3])
    else:
        raise AssertionError(how)


HOW = ["meta-not-json", "meta-is-a-list", "meta-count-a-string", "meta-params-a-string", "meta-future-schema",
       "scores-nan", "scores-inf", "scores-truncated", "indices-out-of-range", "indptr-decreasing", "npy-garbage",
       "vocab-empty", "vocab-not-json", "params-not-json", "offsets-garbage", "offsets-past-the-end",
       "passages-truncated"]


@pytest.mark.parametrize("how", HOW)
def test_a_damaged_index_is_refused_on_load(index_dir, how):
    damage(index_dir, how)
    with pytest.raises(HiexpError) as info:
        BM25Retriever.load(index_dir)
    assert str(index_dir) in str(info.value) and "\n" not in str(info.value)


def test_an_intact_index_loads_and_searches(index_dir):
    retriever = BM25Retriever.load(index_dir)
    assert retriever.search(["queen"], k=1)[0]


def shuffle_passage_lines(index_dir: Path) -> None:
    """The passage lines in another order, the file's size unchanged (offsets now point mid-line)."""
    path = index_dir / "passages.jsonl"
    lines = path.read_bytes().splitlines(keepends=True)
    path.write_bytes(b"".join(lines[1:] + lines[:1]))


def test_shuffled_passage_lines_are_named_when_searched_and_by_the_server(index_dir):
    from fastapi.testclient import TestClient

    from hiexp.search.corpus import IndexDamaged
    from hiexp.search.server import create_app

    retriever = BM25Retriever.load(index_dir)
    shuffle_passage_lines(index_dir)  # while the index is in use: the load's check has passed
    with pytest.raises(IndexDamaged, match="the index is damaged"):
        [retriever.search([q], k=3) for q in ("queen", "river", "film", "band", "capital")]
    with TestClient(create_app(retriever)) as client:
        answers = [client.post("/retrieve", json={"queries": [q], "topk": 3}) for q in ("queen", "river", "film")]
    damaged = [a for a in answers if a.status_code != 200]
    assert damaged and all(a.status_code == 500 and "the index is damaged" in a.json()["detail"] for a in damaged)


@pytest.mark.parametrize("how", ["rotated", "same-length lines swapped"])
def test_a_passage_file_changed_before_loading_is_refused_at_load(tmp_path, how):
    """Lines of equal length swapped keep every offset valid: only the content hash can tell."""
    from hiexp.search.corpus import IndexDamaged

    corpus = tmp_path / "corpus.jsonl"
    words = ["apple", "river", "castle", "violin", "desert", "comet"]  # lines 0 and 1 have one length
    corpus.write_text("".join(json.dumps({"id": f"p{i}", "title": f"Place {i}", "contents": f"About {w}s."}) + "\n"
                              for i, w in enumerate(words)))
    from typer.testing import CliRunner

    from hiexp.cli import app

    assert CliRunner().invoke(app, ["index", str(corpus), "--out", str(tmp_path / "idx")]).exit_code == 0
    assert BM25Retriever.load(tmp_path / "idx").search(["violins"], k=1)[0][0].id == "p3"
    path = tmp_path / "idx" / "passages.jsonl"
    lines = path.read_bytes().splitlines(keepends=True)
    lines = lines[1:] + lines[:1] if how == "rotated" else [lines[1], lines[0], *lines[2:]]
    path.write_bytes(b"".join(lines))
    with pytest.raises(IndexDamaged, match="not the file that was indexed"):
        BM25Retriever.load(tmp_path / "idx")
