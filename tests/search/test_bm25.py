from __future__ import annotations

import json
import shutil

import pytest

from hiexp.contracts.passage import Passage, render_passages
from hiexp.errors import HiexpError
from hiexp.search.bm25 import BM25Config, BM25Retriever
from hiexp.search.tokenize import TokenizerConfig


@pytest.fixture
def retriever(passages):
    return BM25Retriever.build(passages, show_progress=False)


def ids(row):
    return [p.id for p in row]


def test_ranks_the_matching_passage_first(retriever):
    row = retriever.search(["Who was the queen of Lotharingia?"], k=3)[0]
    assert row[0].id == "p1"
    assert ids(row)[:2] == ["p1", "p2"]  # p2 shares only "Lotharingia"
    assert all(isinstance(p, Passage) for p in row)
    assert [p.score for p in row] == sorted((p.score for p in row), reverse=True)
    assert render_passages(row[:1]) == f"Doc 1(Title: Teutberga) {row[0].text}"


def test_title_is_indexed_and_words_are_stemmed(retriever):
    # "photosynthesis" occurs in p4's text, but "zanzibar" only in p6's title.
    assert ids(retriever.search(["Zanzibar"], k=1)[0]) == ["p6"]
    # "runs" and "running" share the stem "run".
    assert ids(retriever.search(["runs"], k=1)[0]) == ["p3"]


def test_batch_equals_one_by_one(retriever):
    queries = ["queen of Lotharingia", "lobbyist Washington", "chemical energy plants", "spices"]
    batch = retriever.search(queries, k=2)
    assert batch == [retriever.search([q], k=2)[0] for q in queries]
    assert retriever.search("spices", k=1) == retriever.search(["spices"], k=1)


@pytest.mark.parametrize("query", ["", "the of and is", "   ", "qwertyuiop zxcvb", "!!! ???"])
def test_queries_without_indexed_terms_give_no_passages(retriever, query):
    assert retriever.search([query, "spices"], k=3)[0] == []
    assert ids(retriever.search([query, "spices"], k=3)[1]) == ["p6"]


def test_passages_sharing_no_term_are_left_out(retriever):
    row = retriever.search(["spices"], k=5)[0]
    assert ids(row) == ["p6"] and row[0].score > 0


def test_k_larger_than_corpus_is_clamped_and_k_zero_is_empty(retriever):
    row = retriever.search(["Lotharingia king queen marathon plants lobbyist spices"], k=100)[0]
    assert sorted(ids(row)) == ["p1", "p2", "p3", "p4", "p5", "p6"]
    assert retriever.search(["Lotharingia"], k=0) == [[]]
    assert retriever.search([], k=3) == []
    with pytest.raises(HiexpError, match="non-negative"):
        retriever.search(["Lotharingia"], k=-1)


def test_huge_query_is_truncated_not_fatal(retriever):
    huge = "Lotharingia " + "filler " * 15_000  # about 100 KB
    assert len(huge) > 100_000
    assert ids(retriever.search([huge], k=1)[0]) == ["p1"]
    # Only the first max_query_tokens terms count: a relevant word past them is ignored.
    late = "filler " * 300 + "Zanzibar"
    assert retriever.search([late], k=1)[0] == []
    small = BM25Retriever.build(retriever.passages(), BM25Config(tokenizer=TokenizerConfig(max_query_tokens=400)),
                                show_progress=False)
    assert ids(small.search([late], k=1)[0]) == ["p6"]


def test_non_string_query_is_a_clear_error(retriever):
    with pytest.raises(HiexpError, match="a query must be a string"):
        retriever.search([None], k=1)


def test_save_load_roundtrip(tmp_path, retriever):
    path = retriever.save(tmp_path / "idx")
    meta = json.loads((path / "meta.json").read_text())
    assert meta["count"] == 6 and meta["params"]["k1"] == 0.9 and meta["bm25s_version"]
    assert len(meta["corpus_sha256"]) == 64
    loaded = BM25Retriever.load(path)
    assert loaded.fingerprint == retriever.fingerprint
    queries = ["queen of Lotharingia", "runners", "the", "Genentech Washington"]
    assert loaded.search(queries, k=3) == retriever.search(queries, k=3)
    # A loaded index can be saved again (from its memory-mapped store) and still reads the same.
    again = BM25Retriever.load(loaded.save(tmp_path / "copy"))
    assert again.search(queries, k=3) == retriever.search(queries, k=3)


def test_fingerprint_follows_corpus_and_parameters(passages, retriever):
    same = BM25Retriever.build(passages, show_progress=False)
    assert same.fingerprint == retriever.fingerprint
    assert BM25Retriever.build(passages, BM25Config(k1=1.2), show_progress=False).fingerprint != retriever.fingerprint
    assert BM25Retriever.build(passages[:-1], show_progress=False).fingerprint != retriever.fingerprint


def test_empty_corpus_is_refused(tmp_path):
    with pytest.raises(HiexpError, match="corpus is empty"):
        BM25Retriever.build([])
    with pytest.raises(HiexpError, match="no indexable words"):
        BM25Retriever.build([Passage("a", "", "the and of")])
    assert not (tmp_path / "idx").exists()


def test_missing_or_incomplete_index_says_what_to_do(tmp_path, index_dir):
    with pytest.raises(HiexpError, match="no such index directory.*hiexp index CORPUS --out"):
        BM25Retriever.load(tmp_path / "nowhere")
    broken = tmp_path / "broken"
    shutil.copytree(index_dir, broken)
    (broken / "vocab.index.json").unlink()
    with pytest.raises(HiexpError, match="incomplete index, missing vocab.index.json.*hiexp index"):
        BM25Retriever.load(broken)
    (broken / "meta.json").unlink()
    with pytest.raises(HiexpError, match="no meta.json"):
        BM25Retriever.load(broken)
    (tmp_path / "empty").mkdir()
    with pytest.raises(HiexpError, match="not a complete hiexp index"):
        BM25Retriever.load(tmp_path / "empty")


def test_failed_save_leaves_old_index_untouched(tmp_path, retriever, monkeypatch, passages):
    path = retriever.save(tmp_path / "idx")
    before = sorted(p.name for p in path.iterdir())
    other = BM25Retriever.build(passages[:3], show_progress=False)

    def crash(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr("hiexp.search.bm25.write_passage_store", crash)
    with pytest.raises(OSError, match="disk full"):
        other.save(path)
    assert sorted(p.name for p in path.iterdir()) == before
    assert BM25Retriever.load(path).fingerprint == retriever.fingerprint
    assert [p.name for p in tmp_path.iterdir() if p.name != "cache"] == ["idx"]  # no half-written sibling left


def test_ties_are_ordered_by_corpus_position():
    copies = [Passage(f"c{i}", "Twin", "identical twin passage") for i in range(8)]
    retriever = BM25Retriever.build([Passage("x", "Other", "unrelated words"), *copies], show_progress=False)
    assert ids(retriever.search(["twin"], k=3)[0]) == ["c0", "c1", "c2"]
    assert ids(retriever.search(["twin"], k=20)[0]) == [f"c{i}" for i in range(8)]


def test_never_replaces_a_directory_that_is_not_an_index(tmp_path, retriever):
    precious = tmp_path / "project"
    precious.mkdir()
    (precious / "notes.txt").write_text("keep me")
    with pytest.raises(HiexpError, match="not a hiexp index"):
        retriever.save(precious)
    assert (precious / "notes.txt").read_text() == "keep me"
    (tmp_path / "empty").mkdir()
    assert BM25Retriever.load(retriever.save(tmp_path / "empty")).fingerprint == retriever.fingerprint
    assert retriever.save(tmp_path / "empty")  # an earlier index is replaced
