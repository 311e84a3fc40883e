"""Resumable rollouts: K trajectories per question, each appended to a JSONL file as soon as it finishes.

A re-run reads the ids already in the file (``{question_id}#{sample}``) and runs only what is missing, so a
crash or Ctrl-C loses at most the episodes in flight and never duplicates one. A last line torn by a crash
mid-write is cut off before anything new is appended.

An episode the generator could not serve (``finish == "error"``: every try of a request failed, with a backend
that records failures) goes to the sidecar ``<name>.failed.jsonl`` instead, with its reason: it is not in the
trajectory file, so a re-run tries it again, and its id is in exactly one of the two files.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from hiexp.agent.loop import SearchAgent
from hiexp.contracts.example import Example
from hiexp.contracts.trajectory import Trajectory
from hiexp.errors import HiexpError
from hiexp.io import append_jsonl, check_own_jsonl, exclusive_output, iter_jsonl, repair_torn_tail


@dataclass
class RolloutSummary:
    """What a call did: trajectories found from earlier runs, new ones written, the file."""

    path: Path
    existing: int
    written: int
    total: int
    failed: int = 0
    """Episodes recorded in ``failed_path`` this call (the generator gave no answer); a re-run retries them."""

    @property
    def failed_path(self) -> Path:
        return failed_path(self.path)


def failed_path(path: str | Path) -> Path:
    """The sidecar of a trajectory file where episodes the generator could not serve are recorded."""
    path = Path(path)
    stem = path.name[: -len(".jsonl")] if path.name.endswith(".jsonl") else path.name
    return path.with_name(f"{stem}.failed.jsonl")


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

    ``method`` ``agent`` runs the search loop; ``rag`` and ``closed-book`` run the one-shot baselines. While
    it runs, ``out_path`` is locked: a second writer stops at once instead of sampling every episode twice.
    """
    with exclusive_output(out_path, f"hiexp {'rollout' if method == 'agent' else method}"):
        return _run_rollouts(examples, agent, k, out_path, seed, progress, method, on_trajectory)


def _run_rollouts(examples: list[Example], agent: SearchAgent, k: int, out_path: str | Path, seed: int | None,
                  progress: bool, method: str, on_trajectory: Callable[[Trajectory], None] | None) -> RolloutSummary:
    if k < 1:
        raise HiexpError(f"k must be >= 1, got {k}")
    ids = [ex.id for ex in examples]
    if len(set(ids)) != len(ids):
        dup = next(i for i in ids if ids.count(i) > 1)
        raise HiexpError(f"question id {dup!r} appears twice in the input; ids must be unique")
    out_path = Path(out_path)
    done = load_done_ids(out_path)
    failed_path(out_path).unlink(missing_ok=True)  # its episodes are not in ``done``: this call retries them
    work = [(ex, s) for ex in examples for s in range(k) if f"{ex.id}#{s}" not in done]
    total = len(examples) * k
    existing = total - len(work)
    written = 0
    failed = 0

    from hiexp.progress import progress_bar

    bar = progress_bar() if progress else None
    task = bar.add_task("rollouts" if method == "agent" else method, total=total, completed=existing) if bar else None

    def save(traj: Trajectory) -> None:
        nonlocal written, failed
        if traj.finish == "error":
            append_jsonl(failed_path(out_path), {"id": traj.id, "question_id": traj.question_id,
                                                 "sample": traj.sample, "error": traj.metadata.get("error")})
            failed += 1
            if bar is not None:
                bar.advance(task)
            return
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
    return RolloutSummary(path=out_path, existing=existing, written=written, total=total, failed=failed)


def read_trajectories(path: str | Path) -> list[Trajectory]:
    """All trajectories of a rollout file (a torn last line is skipped with a warning)."""
    path = Path(path)
    return [Trajectory.from_dict(r) for r in iter_jsonl(path, skip_bad=True)]
