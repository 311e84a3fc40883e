"""Usage and usefulness of entries from hand-made episodes, the stored table, and its use by retrieval."""

from __future__ import annotations

import numpy as np
import pytest

from hiexp.contracts.trajectory import Trajectory, Turn
from hiexp.errors import HiexpError
from hiexp.experience.retrieve import ExperienceRetriever
from hiexp.experience.usefulness import (
    Usefulness,
    compute_usefulness,
    injected_entry_ids,
    load_usefulness,
    usefulness_from_files,
)
from tests.experience.experience_fixtures import write_trajectories


def episode(question: str, sample: int, reward: float, seen: list[list[str]]) -> Trajectory:
    """An episode with one experience turn per list of entry ids (the system prompt, then searches)."""
    turns = [Turn("prompt", "Question")]
    for ids in seen:
        turns.append(Turn("experience", "<experience>...</experience>", meta={"entry_ids": ids}))
        turns.append(Turn("policy", "<search>q</search>"))
    return Trajectory(id=f"{question}#{sample}", question_id=question, sample=sample, format="search_r1",
                      model="m", turns=turns, rewards={"cem": reward, "em": reward})


EPISODES = [
    # q1: A seen by samples 0 and 1 (rewards 1, 1), not by 2 and 3 (0, 1): effect +0.5 each
    episode("q1", 0, 1.0, [["A"]]), episode("q1", 1, 1.0, [["A"], ["A"]]), episode("q1", 2, 0.0, []),
    episode("q1", 3, 1.0, [["B"]]),
    # q2: every sample saw B: the baseline is the question's mean (0.5)
    episode("q2", 0, 0.0, [["B"]]), episode("q2", 1, 1.0, [["B"]]),
    # q3: C seen by the one that failed; the two without succeeded
    episode("q3", 0, 0.0, [["C"]]), episode("q3", 1, 1.0, []), episode("q3", 2, 1.0, []),
]


def test_counts_on_hand_made_episodes():
    table = compute_usefulness(EPISODES, "cem")
    assert table.episodes == 9 and table.questions == 3
    a = table.get("A")
    assert (a.episodes, a.injections, a.paired, a.helpful, a.harmful) == (2, 3, 2, 2, 0)
    assert a.reward_with == 1.0 and a.reward_without == 0.5 and a.effect == 0.5
    b = table.get("B")
    # q1#3: 1 against the q1 episodes without B (1, 1, 0: 2/3); q2: 0 and 1 against their mean 0.5
    assert (b.episodes, b.paired, b.helpful, b.harmful) == (3, 1, 2, 1)
    assert b.effect == pytest.approx(((1 - 2 / 3) + (0 - 0.5) + (1 - 0.5)) / 3, abs=1e-4)
    c = table.get("C")
    assert (c.episodes, c.helpful, c.harmful, c.effect, c.reward_without) == (1, 0, 1, -1.0, 1.0)


def test_harmful_needs_enough_episodes():
    table = compute_usefulness(EPISODES, "cem")
    assert table.harmful_ids(min_episodes=1) == {"C"}
    assert table.harmful_ids(min_episodes=2) == set()


def test_injected_ids_from_dicts_and_objects():
    traj = EPISODES[1]
    assert injected_entry_ids(traj) == ["A", "A"] == injected_entry_ids(traj.to_dict())


def test_episodes_without_the_reward_are_skipped():
    no_reward = episode("q9", 0, 1.0, [["Z"]])
    no_reward.rewards = {}
    assert compute_usefulness([no_reward], "cem").entries == {}


def test_table_round_trip_beside_a_hek(tmp_path):
    path = write_trajectories(tmp_path / "t.jsonl", EPISODES)
    table = usefulness_from_files([path], "cem")
    assert table.sources[0]["path"] == str(path)
    table.save(tmp_path / "usefulness.json")
    again = load_usefulness(tmp_path)
    assert again.get("A") == table.get("A") and again.reward_key == "cem"
    (tmp_path / "empty-hek").mkdir()
    assert load_usefulness(tmp_path / "empty-hek") is None  # a HEK directory with no table
    (tmp_path / "bad.json").write_text('{"schema": 99}')
    with pytest.raises(HiexpError, match="not a usefulness table"):
        load_usefulness(tmp_path / "bad.json")


class _Hek:
    """Two E1 entries with the same title vector: only usefulness can tell them apart."""

    def __init__(self):
        self.entries = [{"id": "good", "level": "E1", "title": "t", "description": "good advice"},
                        {"id": "bad", "level": "E1", "title": "t", "description": "bad advice"}]
        self.embeddings = np.array([[1.0, 0.0], [1.0, 0.0]], dtype=np.float32)
        self.version = "v"


class _Embedder:
    dim = 2
    model_id = "table"

    def encode_queries(self, texts):
        return np.array([[1.0, 0.0]] * len(texts), dtype=np.float32)


def _table() -> Usefulness:
    episodes = [episode("q", i, 0.0, [["bad"]]) for i in range(3)] + [episode("q", 9, 1.0, [])]
    episodes += [episode("r", i, 1.0, [["good"]]) for i in range(3)] + [episode("r", 9, 0.0, [])]
    return compute_usefulness(episodes, "cem")


def test_retrieval_filters_or_ranks_by_usefulness():
    table = _table()
    assert table.harmful_ids() == {"bad"}
    plain = ExperienceRetriever(_Hek(), _Embedder(), threshold=0.5)
    assert plain.for_queries(["x"])[0].meta["best_id"] == "good"  # a tie: the first row
    hek = _Hek()
    hek.entries.reverse()  # now "bad" comes first and wins the tie without usefulness
    assert ExperienceRetriever(hek, _Embedder(), threshold=0.5).for_queries(["x"])[0].meta["best_id"] == "bad"
    for mode in ("filter", "rank"):
        retriever = ExperienceRetriever(hek, _Embedder(), threshold=0.5, usefulness=table, usefulness_mode=mode)
        assert retriever.for_queries(["x"])[0].meta["entry_ids"] == ["good"], mode
    with pytest.raises(HiexpError, match="needs a usefulness table"):
        ExperienceRetriever(hek, _Embedder(), usefulness_mode="filter")


def test_a_hek_loaded_with_usefulness_reads_its_own_table(tmp_path):
    from hiexp.experience.hek import HEK
    from hiexp.experience.retrieve import load_experience_hook
    from hiexp.experience.schema import Entry
    from hiexp.search.embed import load_embedder

    embedder = load_embedder("hashing-64", cache=False)
    entries = [Entry(id="bad", level="E1", title="capital city search", description="bad advice"),
               Entry(id="good", level="E1", title="capital city search", description="good advice")]
    HEK(entries, embedder.encode_passages([e.title for e in entries])).save(tmp_path / "hek", embedder="hashing-64")
    with pytest.raises(HiexpError, match="no usefulness.json"):
        load_experience_hook(tmp_path / "hek", embedder=embedder, usefulness_mode="filter")
    _table().save(tmp_path / "hek" / "usefulness.json")
    hook = load_experience_hook(tmp_path / "hek", embedder=embedder, threshold=0.5, usefulness_mode="filter")
    assert hook.for_queries(["capital city search"])[0].meta["entry_ids"] == ["good"]
    plain = load_experience_hook(tmp_path / "hek", embedder=embedder, threshold=0.5)
    assert plain.for_queries(["capital city search"])[0].meta["entry_ids"] == ["bad"]  # first row wins the tie
