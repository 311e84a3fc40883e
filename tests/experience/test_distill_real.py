"""One real contrastive group reflected on by the embedded 0.5B model on llama.cpp (as ``hiexp distill`` runs
it by default), few tokens."""

from __future__ import annotations

from experience_fixtures import make_trajectory, write_trajectories

from hiexp.experience.distill import DistillConfig, distill
from hiexp.io import read_jsonl

# how ``EntryParser`` words a reply whose every entry it refused (leak, narration or echo)
REFUSAL = "each lesson named this question's answer"


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
    status = status[0]
    assert status["attempts"] == 1  # max_retries=0: one reply, no repair round
    entries = read_jsonl(out)
    if status["status"] == "ok":
        assert summary.groups_ok == 1 and summary.groups_failed == 0
        assert summary.entries_written == len(entries) == status["entries"] >= 1
        for entry in entries:
            assert entry["level"] == "E1" and entry["title"].strip() and entry["description"].strip()
            assert entry["model"] == embedded_llama.model_id
            assert entry["sources"]["failure_ids"] == ["amelie#1"]
        return
    # a small model may not manage JSON in 120 tokens, or may only retell the attempts: then the group is
    # recorded as failed with the parser's reason and the reply, and nothing is written for it
    assert status["status"] == "failed" and status["entries"] == 0 and entries == []
    assert summary.groups_ok == 0 and summary.groups_failed == 1 and summary.entries_written == 0
    reason = status["reason"]
    assert reason and summary.failures == [("amelie", reason)]
    assert not reason.startswith("generator failed"), reason  # the model answered; the reply was refused
    assert isinstance(status["last_reply"], str)
    if status["rejected"]:  # entries were read but every one refused, each with its named reason
        assert reason.startswith(REFUSAL)
        assert all(isinstance(r["title"], str) and r["reason"] for r in status["rejected"])
        assert sum(summary.entries_rejected.values()) == len(status["rejected"])
    else:  # no entry could be read at all: the reason is the parse error shown to the model
        assert not reason.startswith(REFUSAL) and not summary.entries_rejected
