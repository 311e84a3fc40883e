"""EntryIndex: exact and inverted-file search agree, entries come and go in place, exclusions hold."""

from __future__ import annotations

import numpy as np
import pytest

from hiexp.experience.index import EntryIndex

faiss = pytest.importorskip("faiss")


def unit(a):
    return (a / np.linalg.norm(a, axis=1, keepdims=True)).astype(np.float32)


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    centres = unit(rng.standard_normal((50, 32)))
    x = unit(centres[rng.integers(0, 50, 3000)] + 0.6 * unit(rng.standard_normal((3000, 32))))
    queries = unit(x[:200] + 0.2 * unit(rng.standard_normal((200, 32))))
    return [f"e{i}" for i in range(len(x))], x, queries


def test_exact_and_inverted_file_agree_on_the_best_entry(data):
    ids, x, queries = data
    exact = EntryIndex(ids, x)
    ann = EntryIndex(ids, x, exact_max=1000, nprobe=16)
    assert exact.kind == "exact" and ann.kind == "ivf"
    s_exact, best_exact = exact.search(queries, 1)
    s_ann, best_ann = ann.search(queries, 1)
    assert np.mean(best_exact[:, 0] == best_ann[:, 0]) >= 0.95
    same = best_exact[:, 0] == best_ann[:, 0]
    assert np.allclose(s_exact[same, 0], s_ann[same, 0], atol=1e-5)


@pytest.mark.parametrize("exact_max", [10_000, 1000])
def test_sync_adds_and_drops_without_rebuilding(data, exact_max):
    ids, x, queries = data
    index = EntryIndex(ids[:2000], x[:2000], exact_max=exact_max)
    kind = index.kind
    added, removed = index.sync(ids[500:3000], x[500:3000])
    assert (added, removed) == (1000, 500) and len(index) == 2500 and index.kind == kind
    _, slots = index.search(x[:500], 3)  # the dropped entries are never returned
    found = {index.ids[s] for s in slots.ravel() if s >= 0}
    assert not found & set(ids[:500])
    _, slots = index.search(x[2990:3000], 1)  # an added entry is its own nearest neighbour
    assert [index.ids[s] for s in slots[:, 0]] == ids[2990:3000]


@pytest.mark.parametrize("exact_max", [10_000, 1000])
def test_excluded_slots_are_never_returned(data, exact_max):
    ids, x, _ = data
    index = EntryIndex(ids, x, exact_max=exact_max)
    banned = index.slots_of(ids[:2999])  # all but one entry: candidates run out, the matrix answers
    scores, slots = index.search(x[:3], 2, exclude=[banned, None, index.slots_of([ids[1]])])
    assert slots[0].tolist() == [index.slot_of[ids[2999]], -1] and np.isneginf(scores[0, 1])
    assert slots[1, 0] == index.slot_of[ids[1]]
    assert index.ids[slots[2, 0]] != ids[1]


def test_adding_an_id_twice_is_refused(data):
    ids, x, _ = data
    index = EntryIndex(ids[:10], x[:10])
    with pytest.raises(ValueError, match="already in the index"):
        index.add(ids[:1], x[:1])
