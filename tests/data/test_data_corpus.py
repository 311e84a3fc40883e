"""Closed-world corpora: built from context paragraphs, deduplicated, cached, readable by every reader."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from hiexp.contracts.passage import Passage
from hiexp.data import corpus_path_for, load_corpus, load_dataset, passage_id
from hiexp.data.corpus import write_corpus
from hiexp.errors import HiexpError
from hiexp.io import iter_jsonl


@pytest.fixture()
def cache(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("HIEXP_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_musique_corpus_is_the_deduplicated_union(shared_data, cache):
    path = corpus_path_for("musique")
    assert path is not None and path.parent == cache / "corpora" and path.suffix == ".jsonl"
    records = list(iter_jsonl(path))
    assert set(records[0]) == {"id", "title", "contents"}
    pairs = [(r["title"], r["contents"]) for r in records]
    assert len(pairs) == len(set(pairs))  # deduplicated by (title, text)
    examples = load_dataset("musique", with_context=True)
    union = {(p["title"], p["text"]) for ex in examples for p in ex.metadata["context"]}
    assert set(pairs) == union
    ids = {r["id"] for r in records}
    for ex in examples:
        assert set(ex.metadata["context_ids"]) <= ids
        titles = {r["title"] for r in records}
        assert set(ex.metadata["supporting_titles"]) <= titles
    # cached: a second call returns the same file without rewriting it
    mtime = path.stat().st_mtime_ns
    assert corpus_path_for("musique") == path and path.stat().st_mtime_ns == mtime


def test_written_corpus_reads_back_with_passage_from_record(shared_data, cache):
    path = corpus_path_for("2wiki")
    examples = load_dataset("2wiki", with_context=True)
    first = examples[0].metadata["context"][0]
    for record in iter_jsonl(path):
        if record["id"] == first["id"]:
            passage = Passage.from_record(record)
            assert (passage.title, passage.text) == (first["title"], first["text"])
            break
    else:
        pytest.fail("first paragraph missing from the corpus")
    passages = load_corpus(path)
    assert all(p.text and p.title for p in passages)
    assert [p.id for p in passages] == [r["id"] for r in iter_jsonl(path)]


def test_datasets_without_paragraphs_have_no_corpus(shared_data, cache):
    assert corpus_path_for("nq") is None
    assert corpus_path_for("gsm8k") is None
    with pytest.raises(HiexpError, match="unknown dataset or corpus"):
        corpus_path_for("nosuch")


def test_corpus_for_a_data_file_path(shared_data, cache):
    path = corpus_path_for(shared_data / "hotpotqa" / "hotpotqa_dev_distractor_aflow_validate200.jsonl")
    assert path is not None and len(load_corpus(path)) > 1000


def test_named_passage_collections(shared_data, cache):
    wiki = load_corpus(corpus_path_for("wiki18-sample"))
    assert len(wiki) == 1000 and wiki[0].title == "Evan Morris"
    assert wiki[0].text.startswith("Evan Morris Evan L. Morris")
    hippo = load_corpus(shared_data / "corpus" / "hipporag_2wikimultihopqa_corpus.json")
    assert len(hippo) == 6119 and hippo[0].id == "0" and hippo[0].title == "Teutberga"
    by_title = load_corpus(shared_data / "train" / "hotpotqa_train_hipporag100_corpus.json")
    assert len(by_title) == 994 and by_title[0].title == "Demon Dice"


def test_load_corpus_formats(tmp_path):
    lines = [
        {"id": "a", "title": "T1", "contents": "text one"},
        {"id": "b", "contents": '"T2"\ntext two'},
        {"id": "c", "title": "T3", "text": "text three"},
        {"title": "T4", "text": ["Sentence one.", "Sentence two."]},
    ]
    path = tmp_path / "c.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in lines), encoding="utf-8")
    got = [(p.id, p.title, p.text) for p in load_corpus(path)]
    assert got == [("a", "T1", "text one"), ("b", "T2", "text two"), ("c", "T3", "text three"),
                   ("3", "T4", "Sentence one. Sentence two.")]
    gz = tmp_path / "c.jsonl.gz"
    with gzip.open(gz, "wt", encoding="utf-8") as handle:
        handle.write(path.read_text(encoding="utf-8"))
    assert [p.id for p in load_corpus(gz)] == ["a", "b", "c", "3"]


def test_load_corpus_bad_input(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"id": "a", "contents": "x"}\n{broken\n{"id": "a", "contents": "y"}\n{"id": "b"}\n')
    with pytest.raises(HiexpError, match=r"bad\.jsonl:2: malformed JSON"):
        load_corpus(path)
    with pytest.warns(UserWarning):
        passages = load_corpus(path, skip_bad=True)
    assert [p.id for p in passages] == ["a"]
    dup = tmp_path / "dup.jsonl"
    dup.write_text('{"id": "a", "contents": "x"}\n{"id": "a", "contents": "y"}\n')
    with pytest.raises(HiexpError, match=r"dup\.jsonl:2: duplicate passage id 'a'"):
        load_corpus(dup)
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n")
    with pytest.raises(HiexpError, match="empty"):
        load_corpus(empty)
    notext = tmp_path / "notext.jsonl"
    notext.write_text('{"id": "a"}\n')
    with pytest.raises(HiexpError, match=r"notext\.jsonl:1: passage has no text"):
        load_corpus(notext)
    with pytest.raises(HiexpError, match="no such corpus file"):
        load_corpus(tmp_path / "missing.jsonl")
    with pytest.raises(HiexpError, match="is a directory"):
        load_corpus(tmp_path)


def test_write_corpus_refuses_empty(tmp_path):
    with pytest.raises(HiexpError, match="empty corpus"):
        write_corpus([], tmp_path / "x.jsonl")
    assert not (tmp_path / "x.jsonl").exists()


def test_passage_ids_are_content_hashes():
    assert passage_id("T", "text") == passage_id("T", "text")
    assert passage_id("T", "text") != passage_id("T", "text.")
    assert len(passage_id("T", "text")) == 12
