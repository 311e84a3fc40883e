"""Fixtures of the experience tests: trajectory files and private caches."""

from __future__ import annotations

from pathlib import Path

import pytest
from experience_fixtures import make_trajectory, write_trajectories


@pytest.fixture
def trajectory_file(tmp_path: Path) -> Path:
    """Three contrastive questions (q1-q3), one all-success (q4) and one all-failure (q5) question."""
    trajectories = []
    for q in ("q1", "q2", "q3"):
        trajectories += [make_trajectory(q, 0, True, queries=[f"{q} exact name", f"{q} birthplace"]),
                         make_trajectory(q, 1, False, queries=[f"{q} vague"]),
                         make_trajectory(q, 2, False, queries=[])]
    trajectories += [make_trajectory("q4", 0, True), make_trajectory("q4", 1, True)]
    trajectories += [make_trajectory("q5", 0, False), make_trajectory("q5", 1, False)]
    return write_trajectories(tmp_path / "traj.jsonl", trajectories)


@pytest.fixture(autouse=True)
def _private_cache(tmp_path_factory, monkeypatch):
    """Embedding and summary caches in a temporary directory, so tests do not share state."""
    monkeypatch.setenv("HIEXP_CACHE", str(tmp_path_factory.mktemp("hiexp-cache")))


@pytest.fixture
def base(tmp_path):
    """The 10-entry HEK of test_build_hek (3 themes of 3 and a loner), clustered by its thresholds, and its
    embedder."""
    from hiexp.experience.build import BuildConfig, build_hek
    from hiexp.search.embed import load_embedder
    from tests.experience.test_build_hek import e1_entries, summarizer

    embedder = load_embedder("hashing-256")
    hek = build_hek(e1_entries(), tmp_path / "hek", embedder, summarizer(), BuildConfig(thresholds=(1.2, 1.5)),
                    show_progress=False)
    return hek, embedder
