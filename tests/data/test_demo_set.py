"""The demo set shipped in the package: counts, disjoint splits, its corpus, reproducible from shared data."""

from __future__ import annotations

from pathlib import Path

import pytest

from hiexp.data import DEMO_DATASET, corpus_path_for, load_corpus, load_dataset
from hiexp.data.build_demo import build_demo
from hiexp.data.demo_set import DEMO_CORPUS_FILE, DEMO_EXAMPLES_FILE, assign_splits


@pytest.fixture()
def cache(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("HIEXP_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_demo_counts_and_disjoint_splits():
    everything = load_dataset(DEMO_DATASET)
    train = load_dataset(DEMO_DATASET, split="train")
    test = load_dataset(DEMO_DATASET, split="test")
    assert (len(everything), len(train), len(test)) == (395, 195, 200)
    train_ids, test_ids = {e.id for e in train}, {e.id for e in test}
    assert not train_ids & test_ids
    assert train_ids | test_ids == {e.id for e in everything}
    assert len({e.question for e in everything}) == 395
    for ex in everything:
        assert ex.metadata["dataset"] == "hotpotqa" and ex.metadata["task"] == "qa"
        assert ex.metadata["source_split"] == "dev"


def test_demo_split_follows_the_documented_rule():
    everything = load_dataset(DEMO_DATASET)
    rule = assign_splits([e.id for e in everything])
    assert all(rule[e.id] == e.metadata["split"] for e in everything)


def test_demo_corpus_holds_every_context_paragraph(cache):
    path = corpus_path_for(DEMO_DATASET)
    assert path.suffix == ".jsonl" and path.parent == cache / "corpora"  # plain JSONL, readable by anyone
    passages = load_corpus(path)
    assert len(passages) == 3908
    ids = {p.id for p in passages}
    titles = {p.title for p in passages}
    for ex in load_dataset(DEMO_DATASET, split="test", with_context=True):
        assert set(ex.metadata["context_ids"]) <= ids
        assert set(ex.metadata["supporting_titles"]) <= titles
        assert len(ex.metadata["context"]) == len(ex.metadata["context_ids"])


def test_demo_files_are_compact():
    assert DEMO_EXAMPLES_FILE.stat().st_size < 200_000
    assert DEMO_CORPUS_FILE.stat().st_size < 1_500_000
    assert (DEMO_EXAMPLES_FILE.parent / "ATTRIBUTION.md").read_text().count("CC BY-SA 4.0") >= 1


def test_shipped_demo_rebuilds_byte_for_byte(shared_data, tmp_path):
    examples, corpus = build_demo(tmp_path)
    assert examples.read_bytes() == DEMO_EXAMPLES_FILE.read_bytes()
    assert corpus.read_bytes() == DEMO_CORPUS_FILE.read_bytes()


def test_math_demo_splits_are_disjoint_and_from_their_own_gsm8k_file():
    from hiexp.data import load_dataset

    train = load_dataset("gsm8k-demo", split="train")
    test = load_dataset("gsm8k-demo", split="test")
    assert len(train) == len(test) == 200
    assert all(ex.id.startswith("gsm8k-train-") for ex in train)
    assert all(ex.id.startswith("gsm8k-") and not ex.id.startswith("gsm8k-train-") for ex in test)
    assert not {ex.question for ex in train} & {ex.question for ex in test}
    assert all(ex.metadata["task"] == "math" and ex.golden_answers for ex in train + test)


def test_shipped_math_demo_rebuilds_byte_for_byte(shared_data, tmp_path):
    from hiexp.data.build_demo import build_math_demo
    from hiexp.data.demo_set import MATH_DEMO_FILE

    assert build_math_demo(tmp_path).read_bytes() == MATH_DEMO_FILE.read_bytes()
    assert MATH_DEMO_FILE.stat().st_size < 100_000
