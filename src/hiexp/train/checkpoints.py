"""hiexp's part of a training checkpoint: the HEK it was trained with and the full config, so that a
resumed run cannot silently switch experience bases; finding the newest checkpoint; trimming the rollout
log back to it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from hiexp.errors import HiexpError
from hiexp.io import atomic_write_json
from hiexp.train.config import TrainConfig

STATE_FILE = "hiexp_state.json"
ROLLOUTS_FILE = "rollouts.jsonl"


def rollouts_file(output_dir: Path, process_index: int = 0) -> Path:
    """Where one training process appends its trajectories: each process its own file, so appends never
    interleave (process 0 writes ``rollouts.jsonl``, process N ``rollouts.rankN.jsonl``)."""
    return Path(output_dir) / (ROLLOUTS_FILE if process_index == 0 else f"rollouts.rank{process_index}.jsonl")


def write_checkpoint_state(folder: Path, config: TrainConfig, hek_version: str | None, step: int,
                           hek_state: dict[str, Any] | None = None) -> None:
    """hiexp's part of a checkpoint: the HEK it was trained with and the full config; in a closed loop
    (``refresh.py``) also the path of the HEK version in use and every version used so far."""
    from hiexp import __version__

    atomic_write_json(
        Path(folder) / STATE_FILE,
        {"hek": config.hek, **(hek_state or {}), "hek_version": hek_version, "step": int(step),
         "algorithm": config.algorithm, "model": config.model, "hiexp_version": __version__,
         "config": config.to_dict()},
    )


def read_checkpoint_state(folder: str | Path) -> dict[str, Any]:
    path = Path(folder) / STATE_FILE
    if not path.exists():
        raise HiexpError(f"{folder}: not a hiexp checkpoint (no {STATE_FILE})")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise HiexpError(f"{path}: unreadable ({exc})") from None


def latest_checkpoint(output_dir: str | Path) -> Path | None:
    """The newest complete checkpoint of a run directory (one with hiexp's state file), or None."""
    root = Path(output_dir)
    if not root.is_dir():
        return None
    found = []
    for child in root.iterdir():
        if child.is_dir() and child.name.startswith("checkpoint-") and (child / STATE_FILE).exists():
            try:
                found.append((int(child.name.split("-", 1)[1]), child))
            except ValueError:
                continue
    return max(found)[1] if found else None


def check_resume(checkpoint: Path, hek_version: str | None, force: bool = False) -> dict[str, Any]:
    """Refuse to resume under a different HEK than the checkpoint was trained with, unless forced."""
    state = read_checkpoint_state(checkpoint)
    if state.get("hek_version") != hek_version and not force:
        was = state.get("hek_version") or "none (vanilla)"
        now = hek_version or "none (vanilla)"
        raise HiexpError(
            f"{checkpoint} was trained with HEK {was} but this run uses HEK {now}; resuming would mix "
            "experience bases. Use the same --hek, start a new --output-dir, or pass --force"
        )
    return state


def drop_rollouts_after(output_dir: Path, step: int) -> None:
    """Keep the trajectories of the steps a checkpoint covers (those of step k carry train_step k - 1), in
    every process's rollouts file."""
    from hiexp.io import atomic_write_jsonl, iter_jsonl

    for path in sorted(Path(output_dir).glob("rollouts*.jsonl")):
        records = list(iter_jsonl(path, skip_bad=True))
        kept = [r for r in records if int((r.get("metadata") or {}).get("train_step", 0)) < step]
        if len(kept) != len(records):
            atomic_write_jsonl(path, kept)
