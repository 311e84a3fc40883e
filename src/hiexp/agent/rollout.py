"""Resumable rollouts: K trajectories per question, each appended to a JSONL file as soon as it finishes.

A re-run reads the ids already in the file (``{question_id}#{sample}``) and runs only what is missing, so a
crash or Ctrl-C loses at most the episodes in flight and never duplicates one. A last line torn by a crash
mid-write is cut off before anything new is appended.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from hiexp.agent.loop import SearchAgent
from hiexp.contracts.example import Example
from hiexp.contracts.trajectory import Trajectory
from hiexp.errors import HiexpError
from hiexp.io import append_jsonl, check_own_jsonl, iter_jsonl, repair_torn_tail


@dataclass
class RolloutSummary:
    """What a call did: trajectories found from earlier runs, new ones written, the file."""

    path: Path
    existing: int
    written: int
    total: int


_TRAJECTORY_KEYS = ("id", "question_id", "sample", "turns")


def load_done_ids(path: str | Path) -> set[str]:
    """Trajectory ids already in ``path`` (after repairing a torn tail of a file this command wrote)."""
    path = Path(path)
    if not path.exists():
        return set()
    check_own_jsonl(path, _TRAJECTORY_KEYS, "a hiexp trajectory file")
    repair_torn_tail(path)
    done = set()
    for record in iter_jsonl(path):
        if "id" not in record:
            raise HiexpError(f"{path}: a record without an 'id': not a hiexp trajectory file?")
        done.add(str(record["id"]))
    return done


def run_rollouts(examples: list[Example], agent: SearchAgent, k: int, out_path: str | Path, seed: int | None = None,
                 progress: bool = True, method: str = "agent",
                 on_trajectory: Callable[[Trajectory], None] | None = None) -> RolloutSummary:
    """Sample ``k`` trajectories per example into ``out_path``, skipping ids already there.

    ``method`` ``agent`` runs the search loop; ``rag`` and ``closed-book`` run the one-shot baselines.
    """
    if k < 1:
        raise HiexpError(f"k must be >= 1, got {k}")
    ids = [ex.id for ex in examples]
    if len(set(ids)) != len(ids):
        dup = next(i for i in ids if ids.count(i) > 1)
        raise HiexpError(f"question id {dup!r} appears twice in the input; ids must be unique")
    out_path = Path(out_path)
    done = load_done_ids(out_path)
    work = [(ex, s) for ex in examples for s in range(k) if f"{ex.id}#{s}" not in done]
    total = len(examples) * k
    existing = total - len(work)
    written = 0

    from hiexp.progress import progress_bar

    bar = progress_bar() if progress else None
    task = bar.add_task("rollouts" if method == "agent" else method, total=total, completed=existing) if bar else None

    def save(traj: Trajectory) -> None:
        nonlocal written
        append_jsonl(out_path, traj.to_dict())
        written += 1
        if bar is not None:
            bar.advance(task)
        if on_trajectory is not None:
            on_trajectory(traj)

    try:
        if bar is not None:
            bar.start()
        if method == "agent":
            agent.run_episodes(work, seed=seed, on_finish=save)
        else:
            for sample in range(k):
                todo = [ex for ex, s in work if s == sample]
                if todo:
                    agent.run_baseline(todo, method, seed=seed, on_finish=save, sample=sample)
    finally:
        if bar is not None:
            bar.stop()
    return RolloutSummary(path=out_path, existing=existing, written=written, total=total)


def read_trajectories(path: str | Path) -> list[Trajectory]:
    """All trajectories of a rollout file (a torn last line is skipped with a warning)."""
    path = Path(path)
    return [Trajectory.from_dict(r) for r in iter_jsonl(path, skip_bad=True)]
