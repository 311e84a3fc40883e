"""One real contrastive group reflected on by the embedded 0.5B model on llama.cpp (as ``hiexp distill`` runs
it by default), few tokens."""

from __future__ import annotations

from experience_fixtures import make_trajectory, write_trajectories

from hiexp.experience.distill import DistillConfig, distill
from hiexp.io import read_jsonl


def test_real_reflector_on_one_contrastive_group(embedded_llama, tmp_path):
    question = "Which city is the birthplace of the director of the film Amelie?"
    good = make_trajectory("amelie", 0, True, question=question, golden="Roanne", answer="Roanne",
                           queries=["Amelie film director", "Jean-Pierre Jeunet birthplace"])
    bad = make_trajectory("amelie", 1, False, question=question, golden="Roanne", answer="Paris",
                          queries=["Amelie birthplace"])
    path = write_trajectories(tmp_path / "t.jsonl", [good, bad])
    out = tmp_path / "e1.jsonl"
    config = DistillConfig(max_new_tokens=120, max_retries=0, max_entries=1, passage_chars=80)
    summary = distill([path], out, embedded_llama, config, show_progress=False)
    status = read_jsonl(tmp_path / "e1.groups.jsonl")
    assert len(status) == 1 and status[0]["question_id"] == "amelie"  # the group is never dropped
    if status[0]["status"] == "ok":
        entries = read_jsonl(out)
        assert summary.entries_written == len(entries) >= 1
        assert entries[0]["title"] and entries[0]["model"] == embedded_llama.model_id
        assert entries[0]["sources"]["failure_ids"] == ["amelie#1"]
    else:  # a small model may not manage JSON in 120 tokens; the reason and reply are kept
        assert status[0]["reason"] and "last_reply" in status[0]
