"""The HEKs shipped inside the package (``--hek demo``, ``demo-paper``, ``demo-math``): load by name, come from
train questions only, and their lessons carry no facts of the questions they were distilled from."""

from __future__ import annotations

from hiexp.data import load_dataset
from hiexp.experience.hek import HEK, SHIPPED_HEKS, resolve_hek_dir
from hiexp.experience.leaks import LeakFilter
from hiexp.experience.usefulness import load_usefulness
from hiexp.scoring.metrics import exact_match


def test_the_demo_hek_is_curated_cases_of_verified_train_successes_with_their_measured_effect():
    hek = HEK.load("demo")
    assert resolve_hek_dir("demo") == SHIPPED_HEKS["demo"]
    assert hek.entries and all(entry.is_case_only for entry in hek.entries)
    assert hek.manifest["cases"]["placement"] == "beside" and "curated" in hek.manifest["description"]
    assert "HotpotQA test" in hek.manifest["measured"]["summary"]
    train = {ex.id: ex for ex in load_dataset("hotpotqa", split="train")}
    test_ids = {ex.id for ex in load_dataset("hotpotqa", split="test")}
    kept = load_usefulness(resolve_hek_dir("demo"))
    for entry in hek.entries:
        case = entry.case
        assert case.question_id in train and case.question_id not in test_ids, entry.id
        assert case.reward == 1.0 and exact_match(case.answer, train[case.question_id].golden_answers) == 1.0, entry.id
        assert kept.get(entry.id).effect > 0, entry.id  # the screen kept what helped


def test_the_paper_form_hek_loads_by_name_with_every_level():
    hek = HEK.load("demo-paper")
    counts = hek.counts()
    assert counts["E1"] > 0 and counts["E2"] > 0 and counts["E3"] > 0
    assert "train" in hek.manifest.get("description", "")


def test_the_paper_form_hek_never_saw_a_test_question_and_names_no_fact_of_its_own():
    train = {ex.id: ex for ex in load_dataset("hotpotqa", split="train")}
    test_ids = {ex.id for ex in load_dataset("hotpotqa", split="test")}
    for entry in HEK.load("demo-paper").level("E1"):
        qid = str(entry.sources["question_id"])
        assert qid not in test_ids and qid in train, entry.id
        example = train[qid]
        leaks = LeakFilter(example.golden_answers, question=example.question)
        assert leaks.reason([entry.title, entry.description, entry.thinking, *entry.tags]) is None, entry.id


def test_the_math_demo_hek_comes_from_gsm8k_train_problems_and_names_no_fact_of_its_own():
    hek = HEK.load("demo-math")
    assert hek.counts()["E1"] > 0 and "GSM8K demo train" in hek.manifest.get("description", "")
    train = {ex.id: ex for ex in load_dataset("gsm8k-demo", split="train")}
    test_ids = {ex.id for ex in load_dataset("gsm8k-demo", split="test")}
    for entry in hek.level("E1"):
        qid = str(entry.sources["question_id"])
        assert qid in train and qid not in test_ids and entry.sources["task"] == "math", entry.id
        example = train[qid]
        leaks = LeakFilter(example.golden_answers, question=example.question)
        assert leaks.reason([entry.title, entry.description, entry.thinking, *entry.tags]) is None, entry.id


def test_the_paper_form_hek_carries_an_e1_threshold_calibrated_for_its_embedder_and_retrieval_uses_it():
    from hiexp.experience.retrieve import PAPER_THRESHOLD, manifest_threshold

    hek = HEK.load("demo-paper")
    record = hek.manifest["e1_threshold"]
    assert record["embedder"] == hek.embedder_name and 0.0 < record["value"] < PAPER_THRESHOLD
    assert manifest_threshold(hek.manifest) == record["value"]
