"""Corpus files as search reads them (through hiexp.data.load_corpus), and the index's passage store."""

from __future__ import annotations

import json

import pytest

from hiexp.data import load_corpus
from hiexp.errors import HiexpError
from hiexp.search.corpus import PassageStore, write_passage_store


def test_reads_all_three_line_shapes(corpus_file, passages):
    got = load_corpus(corpus_file)
    assert [(p.id, p.title, p.text) for p in got] == [(p.id, p.title, p.text) for p in passages]


def test_json_array_without_ids_gets_positions(tmp_path):
    path = tmp_path / "corpus.json"
    path.write_text(json.dumps([{"title": "A", "text": "alpha"}, {"title": "B", "text": "beta"}]))
    assert [(p.id, p.title) for p in load_corpus(path)] == [("0", "A"), ("1", "B")]


def test_malformed_line_names_file_and_line(tmp_path, write_jsonl):
    records = [{"id": "1", "contents": "ok"}, "{not json", {"id": "3", "contents": "x"}]
    path = write_jsonl(tmp_path / "c.jsonl", records)
    with pytest.raises(HiexpError, match=r"c\.jsonl:2"):
        load_corpus(path)
    with pytest.warns(UserWarning, match=r"c\.jsonl:2"):
        got = load_corpus(path, skip_bad=True)
    assert [p.id for p in got] == ["1", "3"]


@pytest.mark.parametrize("bad", [{"id": "2"}, {"id": "1", "contents": "again"}, [1, 2]])
def test_bad_records_name_the_line(tmp_path, write_jsonl, bad):
    path = write_jsonl(tmp_path / "c.jsonl", [{"id": "1", "contents": "ok"}, json.dumps(bad)])
    with pytest.raises(HiexpError, match=r"c\.jsonl:2"):
        load_corpus(path)


def test_missing_file(tmp_path):
    with pytest.raises(HiexpError, match="no such"):
        load_corpus(tmp_path / "absent.jsonl")


def test_passage_store_roundtrip(tmp_path, passages):
    count, sha = write_passage_store(tmp_path, passages)
    assert count == len(passages) and len(sha) == 64
    store = PassageStore(tmp_path)
    assert len(store) == len(passages)
    assert store.get(4, score=2.5) == passages[4].__class__(passages[4].id, passages[4].title, passages[4].text, 2.5)
    assert [p.id for p in store] == [p.id for p in passages]


def test_truncated_passage_store_is_reported(tmp_path, passages):
    write_passage_store(tmp_path, passages)
    data = (tmp_path / "passages.jsonl").read_bytes()
    (tmp_path / "passages.jsonl").write_bytes(data[:-10])
    with pytest.raises(HiexpError, match="damaged"):
        PassageStore(tmp_path)
