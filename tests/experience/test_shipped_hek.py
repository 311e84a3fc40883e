"""The HEK shipped inside the package (``--hek demo``): loads by name, comes from train questions only,
and its entries carry no facts of the questions they were distilled from."""

from __future__ import annotations

from hiexp.data import load_dataset
from hiexp.experience.hek import HEK, SHIPPED_HEKS, resolve_hek_dir
from hiexp.experience.leaks import LeakFilter


def test_the_demo_hek_loads_by_name_with_its_description():
    hek = HEK.load("demo")
    counts = hek.counts()
    assert counts["E1"] > 0 and counts["E2"] > 0 and counts["E3"] > 0
    assert "train" in hek.manifest.get("description", "")
    assert resolve_hek_dir("demo") == SHIPPED_HEKS["demo"]


def test_the_demo_hek_never_saw_a_test_question_and_names_no_fact_of_its_own():
    train = {ex.id: ex for ex in load_dataset("hotpotqa", split="train")}
    test_ids = {ex.id for ex in load_dataset("hotpotqa", split="test")}
    for entry in HEK.load("demo").level("E1"):
        qid = str(entry.sources["question_id"])
        assert qid not in test_ids and qid in train, entry.id
        example = train[qid]
        leaks = LeakFilter(example.golden_answers, question=example.question)
        assert leaks.reason([entry.title, entry.description, entry.thinking, *entry.tags]) is None, entry.id
