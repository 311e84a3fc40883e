"""The E1 threshold: calibrated on the training searches for the HEK's own embedder, read from its manifest."""

from __future__ import annotations

import json

import numpy as np

from hiexp.experience.build import BuildConfig, build_hek
from hiexp.experience.calibrate import calibrate_e1_threshold, training_searches
from hiexp.experience.hek import HEK
from hiexp.experience.retrieve import PAPER_THRESHOLD, load_experience_hook, manifest_threshold
from hiexp.experience.schema import Entry
from hiexp.search.embed import load_embedder


def e1(i: int, title: str, question: str) -> Entry:
    return Entry(id=f"E1-{i}", level="E1", title=title, description=f"advice {i}",
                 sources={"question_id": f"q{i}", "question": question})


TITLES = ["find the director of the film first", "compare two birth dates", "search the band of a singer",
          "look up the capital city", "count the members of a group"]


def test_the_threshold_is_the_quantile_that_gives_the_fire_rate():
    embedder = load_embedder("hashing-64")
    entries = [e1(i, t, f"question {i}") for i, t in enumerate(TITLES)]
    hek = HEK(entries, embedder.encode_passages(TITLES))
    queries = ["film director", "birth dates of two people", "singer band", "capital city", "group members",
               "unrelated words entirely", "another query", "film first director"]
    record = calibrate_e1_threshold(hek, embedder, queries, ["other question"] * len(queries), fire_rate=0.25)
    best = [i.meta["best_score"] for i in load_retriever(hek, embedder).for_queries(queries, ["other question"] * 8)]
    assert record["queries"] == 8 and record["value"] == round(float(np.quantile(best, 0.75)), 4)
    assert sum(b >= record["value"] for b in best) == 2  # a quarter of the searches fire


def load_retriever(hek, embedder):
    from hiexp.experience.retrieve import ExperienceRetriever

    return ExperienceRetriever(hek, embedder, threshold=-1.0)


def test_retrieval_reads_the_threshold_from_the_manifest(tmp_path):
    embedder = load_embedder("hashing-64")
    entries = [e1(i, t, f"question {i}") for i, t in enumerate(TITLES)]
    hek = HEK(entries, embedder.encode_passages(TITLES), {"embedder": {"model_id": embedder.model_id},
                                                           "e1_threshold": {"value": 0.37}})
    hek.save(tmp_path / "hek")
    assert load_experience_hook(tmp_path / "hek", embedder=embedder).config.threshold == 0.37
    assert load_experience_hook(tmp_path / "hek", embedder=embedder, threshold=0.9).config.threshold == 0.9
    assert manifest_threshold({}) == PAPER_THRESHOLD
    assert manifest_threshold({"e1_threshold": {"value": "0.3"}}) == PAPER_THRESHOLD  # not a number: ignored
    assert manifest_threshold({"e1_threshold": {"value": 7}}) == PAPER_THRESHOLD  # not a cosine: ignored


def test_build_calibrates_on_the_rollouts_the_entries_came_from(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    rollouts = tmp_path / "rollouts.jsonl"
    records = [{"id": f"q{i}#0", "question_id": f"q{i}", "sample": 0, "format": "search_r1", "model": "m",
                "question": f"question {i}", "queries": [t, "more " + t]} for i, t in enumerate(TITLES)]
    rollouts.write_text("".join(json.dumps(r) + "\n" for r in records))
    assert training_searches(records)[0][:2] == [TITLES[0], "more " + TITLES[0]]
    e1_file = tmp_path / "e1.jsonl"
    e1_file.write_text("".join(json.dumps(e1(i, t, f"question {i}").to_dict()) + "\n" for i, t in enumerate(TITLES)))
    (tmp_path / "e1.meta.json").write_text(json.dumps({"trajectory_files": [{"path": str(rollouts)}]}))
    embedder = load_embedder("hashing-64")
    hek = build_hek([e1_file], None, embedder, None, BuildConfig(n_clusters=(5, 5)), show_progress=False)
    assert hek.manifest["e1_threshold"]["queries"] == 10 and hek.manifest["e1_threshold"]["fire_rate"] == 0.25
    off = build_hek([e1_file], None, embedder, None, BuildConfig(n_clusters=(5, 5), e1_fire_rate=None),
                    show_progress=False)
    assert "e1_threshold" not in off.manifest
