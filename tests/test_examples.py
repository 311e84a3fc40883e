"""The example scripts the docs point to still run and write what they promise."""

from __future__ import annotations

import json
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

from hiexp.experience.hek import HEK
from hiexp.experience.retrieve import load_experience_hook

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


@pytest.fixture(scope="module")
def seed_hek(tmp_path_factory):
    """The hand-written HEK of ``seed_hek.py``, written once for every test of this module that reads it."""
    out = tmp_path_factory.mktemp("examples") / "seed-hek"
    done = subprocess.run([sys.executable, str(EXAMPLES / "seed_hek.py"), str(out)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    return out


def test_seed_hek_writes_a_loadable_three_level_hek(seed_hek):
    out = seed_hek
    hek = HEK.load(out)
    assert hek.counts() == {"E1": 8, "E2": 2, "E3": 1}
    ids = {e.id for e in hek.entries}
    for entry in hek.entries:
        assert entry.sources["author"].startswith("hand-written")
        assert set(entry.children) <= ids

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the manifest names the embedder the lookups load: no mismatch warning
        hook = load_experience_hook(out)
    [start] = hook.for_questions(["Where was the director of the film Jazz born?"])
    assert "Search precisely" in start.text or "Decompose" in start.text
    assert hook.version == hek.version


def test_compare_on_test_evaluates_every_arm_on_the_same_growing_prefix(tmp_path, seed_hek):
    hek = seed_hek
    out = tmp_path / "cmp"
    command = [sys.executable, str(EXAMPLES / "compare_on_test.py"), "--out", str(out), "--n", "3", "--step", "2",
               "--arms", "closed-book,rag,agent,hek", "--hek", str(hek), "--model", "tiny-random"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]

    from hiexp.eval.evaluate import load_predictions

    ids = {arm: {p["id"] for p in load_predictions(out / arm)} for arm in ("closed-book", "rag", "agent", "hek")}
    assert all(len(v) == 3 for v in ids.values()) and len({frozenset(v) for v in ids.values()}) == 1
    table = (out / "table.md").read_text()
    assert table.startswith("3 questions") and "| hek - agent |" in table and "| agent - rag |" in table
    again = subprocess.run(command, capture_output=True, text=True, timeout=600)  # resumes: nothing left to do
    assert again.returncode == 0 and "3 questions done" in again.stdout


def test_compare_on_a_dev_set_leaves_out_the_questions_the_hek_came_from(tmp_path):
    from hiexp.data import load_dataset
    from hiexp.eval.evaluate import load_predictions
    from hiexp.experience.hek import HEK

    sources = {str(e.sources.get("question_id")) for e in HEK.load("demo-paper").level("E1")}
    first = [str(e.id) for e in load_dataset("hotpotqa", split="train")[:11]]
    assert sources & set(first)  # the plain prefix would include one
    out = tmp_path / "dev"
    command = [sys.executable, str(EXAMPLES / "compare_on_test.py"), "--out", str(out), "--split", "train",
               "--exclude-sources-of", "demo-paper", "--n", "11", "--arms", "closed-book", "--model", "tiny-random"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    ids = {p["id"] for p in load_predictions(out / "closed-book")}
    assert len(ids) == 11 and not ids & sources


def test_compare_on_a_math_set_scores_pass_at_1_and_takes_a_second_hek(tmp_path, seed_hek):
    hek = seed_hek
    out = tmp_path / "math"
    command = [sys.executable, str(EXAMPLES / "compare_on_test.py"), "--out", str(out), "--data", "gsm8k-demo",
               "--n", "2", "--arms", "agent,hek,other-hek", "--hek", str(hek), "--other-hek", "demo",
               "--model", "tiny-random"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    table = (out / "table.md").read_text()
    assert "| arm | Pass@1 |" in table and "| other-hek - agent |" in table
    import json

    manifests = {arm: json.loads((out / arm / "manifest.json").read_text()) for arm in ("agent", "hek", "other-hek")}
    assert {m["format"] for m in manifests.values()} == {"math"}
    assert manifests["hek"]["hek_version"] != manifests["other-hek"]["hek_version"]


def test_compare_measures_the_query_anchor_and_the_echo_rule_as_paired_arms(tmp_path):
    out = tmp_path / "anchor"
    arms = ("agent-no-anchor", "agent-no-echo", "agent")
    command = [sys.executable, str(EXAMPLES / "compare_on_test.py"), "--out", str(out), "--n", "2",
               "--arms", ",".join(arms), "--model", "tiny-random"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    table = (out / "table.md").read_text()
    assert "| agent - agent-no-anchor |" in table and "| agent - agent-no-echo |" in table
    hashes = {arm: json.loads((out / arm / "manifest.json").read_text())["prompt_template_hash"] for arm in arms}
    assert len(set(hashes.values())) == 3  # each option is part of what its arm ran


def test_first_query_recall_compares_the_three_queries_on_the_archived_trajectories():
    done = subprocess.run([sys.executable, str(EXAMPLES / "first_query_recall.py")], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    lines = done.stdout.strip().splitlines()
    assert "first queries" in lines[0] and lines[-1].startswith("anchored_minus_policy_recall_points: ")
    assert [line.split()[0] for line in lines[1:4]] == ["policy's", "question", "anchored"]


def test_the_playbook_builds_an_e2_e3_hek_labelled_hand_written(tmp_path):
    out = tmp_path / "playbook"
    done = subprocess.run([sys.executable, str(EXAMPLES / "playbook" / "build_playbook_hek.py"), "--out", str(out)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    hek = HEK.load(out)
    assert hek.counts()["E1"] == 0 and hek.counts()["E3"] >= 1
    assert "hand-written" in hek.manifest["description"] and hek.manifest["reflector"] == "hand-written"
    [start] = load_experience_hook(out).for_questions(["Who is older, Ann Smith or Bob Jones?"])
    assert "search each of them on its own" in start.text


def test_pooling_keeps_train_agent_episodes_with_unique_ids(tmp_path):
    from hiexp.data import load_dataset

    train = load_dataset("hotpotqa", split="train")[:2]
    test = load_dataset("hotpotqa", split="test")[:1]
    rows = [{"id": f"{e.id}#0", "question_id": e.id, "metadata": {"method": m}}
            for e, m in ((train[0], "agent"), (train[1], "rag"), (test[0], "agent"))]
    files = []
    for name in ("a.jsonl", "b.jsonl"):
        files.append(tmp_path / name)
        files[-1].write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "pool.jsonl"
    done = subprocess.run([sys.executable, str(EXAMPLES / "pool_rollouts.py"), "--out", str(out), *map(str, files)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    pooled = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["id"] for r in pooled] == [f"r0/{train[0].id}#0", f"r1/{train[0].id}#0"]
    again = subprocess.run([sys.executable, str(EXAMPLES / "pool_rollouts.py"), "--out", str(out), str(files[0])],
                           capture_output=True, text=True, timeout=120)
    assert again.returncode != 0 and "exists" in again.stderr


def test_reading_errors_splits_wrong_answers_by_whether_the_gold_was_read(tmp_path):
    from tests.experience.experience_fixtures import make_trajectory, write_trajectories

    read = make_trajectory("q1", 0, False, golden="Passage")  # the tool turns show "Passage 1": gold read
    missed = make_trajectory("q2", 0, False, golden="Quito")
    yes_no = make_trajectory("q3", 0, False, question="Is Quito a city?", golden="yes")
    right = make_trajectory("q4", 0, True)
    write_trajectories(tmp_path / "run.jsonl", [read, missed, yes_no, right])
    done = subprocess.run([sys.executable, str(EXAMPLES / "reading_errors.py"), str(tmp_path / "run.jsonl")],
                          capture_output=True, text=True, timeout=120, check=True)
    row = done.stdout.strip().splitlines()[-1]
    assert row.split("|")[2:5] == [" 2 ", " 1 ", " 1 "], done.stdout  # wrong (not yes/no), read, never read


def test_the_random_control_keeps_as_many_cases_as_asked_drawn_from_the_given_hek(tmp_path):
    def draw(seed, out):
        return subprocess.run([sys.executable, str(EXAMPLES / "random_cases_control.py"), "demo", "--keep", "5",
                               "--seed", str(seed), "--out", str(out)], capture_output=True, text=True, timeout=300)

    shipped = HEK.load("demo")
    assert draw(0, tmp_path / "a").returncode == 0
    control = HEK.load(tmp_path / "a")
    assert len(control.entries) == 5 and {e.id for e in control.entries} <= {e.id for e in shipped.entries}
    assert control.manifest["curated_from"]["control"] == "random" and "random control" in control.manifest["description"]
    assert draw(0, tmp_path / "b").returncode == 0  # the same seed draws the same cases
    assert [e.id for e in HEK.load(tmp_path / "b").entries] == [e.id for e in control.entries]
    refused = draw(0, tmp_path / "a")  # an existing HEK is never overwritten
    assert refused.returncode != 0 and "error:" in refused.stderr
    assert [e.id for e in HEK.load(tmp_path / "a").entries] == [e.id for e in control.entries]
    from hiexp.experience.hek import resolve_hek_dir

    inside = resolve_hek_dir("demo") / "control"  # never into the HEK it reads
    refused = draw(0, inside)
    assert refused.returncode != 0 and "inside the HEK" in refused.stderr and not inside.exists()
