"""The closed loop: a HEK refreshed from the training rollouts while the policy learns.

Every ``hek_refresh_every`` optimizer steps (``TrainConfig``), ``HEKRefresh`` takes the rollouts written
since the last refresh, hands them to the incremental update (``hiexp.experience.update``: distil their
contrastive groups with the policy itself or a teacher, merge duplicates, place new entries, re-summarise
changed clusters, evict entries their usefulness marks harmful) and swaps the new version in before the
next step. Versions live in ``<output_dir>/hek/step-<N>/``, each naming its parent; checkpoints record
the version in use and the history (``checkpoints.py``), so a resumed run continues with the exact HEK it
stopped with.

Fairness within a group: ``AgentRollout.set_hook`` never changes the hook while a rollout call is running,
so every episode of one GRPO group (one call) sees one snapshot, and every trajectory records its
``hek_version``. The leak guard holds for new entries too: the new retriever is built with the same
``exclude_own_question``, and new entries carry their source question.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from transformers import TrainerCallback

from hiexp.io import atomic_write_jsonl, iter_jsonl

HEK_VERSIONS_DIR = "hek"


@dataclass
class HEKState:
    """The HEK a run is using now and every version it used, oldest first."""

    path: str | None
    version: str | None
    history: list[dict[str, Any]] = field(default_factory=list)
    last_refresh_step: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {"hek_path": self.path, "hek_version": self.version, "hek_history": list(self.history),
                "hek_last_refresh_step": self.last_refresh_step}

    @classmethod
    def from_checkpoint(cls, state: dict[str, Any], default_path: str | None) -> HEKState:
        return cls(path=state.get("hek_path") or default_path, version=state.get("hek_version"),
                   history=list(state.get("hek_history") or []),
                   last_refresh_step=int(state.get("hek_last_refresh_step") or 0))


def rollouts_since(output_dir: Path, first_step: int, last_step: int) -> list[dict[str, Any]]:
    """Trajectories of steps ``first_step < step <= last_step`` (a trajectory of step k carries
    ``train_step`` k - 1) from every process's rollouts file, with ids made unique per step."""
    records = []
    for path in sorted(Path(output_dir).glob("rollouts*.jsonl")):
        for record in iter_jsonl(path, skip_bad=True):
            step = int((record.get("metadata") or {}).get("train_step", 0))
            if first_step <= step < last_step:
                record = dict(record)
                record["id"] = f"{record['id']}@step{step}"  # the same question recurs across steps
                records.append(record)
    return records


def hek_counts_metrics(hook: Any) -> dict[str, float]:
    """HEK size per level, for telemetry."""
    hek = getattr(hook, "hek", None)
    counts = hek.counts() if hek is not None and hasattr(hek, "counts") else {}
    return {f"hek_{level.lower()}": float(counts.get(level, 0)) for level in ("E1", "E2", "E3")}


class HEKRefresh(TrainerCallback):
    """Refresh the HEK every ``config.hek_refresh_every`` steps (see the module doc)."""

    def __init__(self, config: Any, rollout: Any, state: HEKState, reflector: Any = None):
        self.config = config
        self.rollout = rollout
        self.state = state
        self.reflector = reflector  # None = the policy being trained
        self.trainer: Any = None
        self.last_report: Any = None

    def _policy_generator(self) -> Any:
        return self.rollout.agent.generator

    def refresh(self, step: int) -> Any:
        """Update the HEK from the rollouts of the steps since the last refresh; swap it in. Returns the
        update report (None when there was nothing to learn from)."""
        from hiexp.experience.distill import DistillConfig
        from hiexp.experience.update import UpdateConfig, update_from_trajectories

        output_dir = Path(self.config.output_dir)
        started = time.perf_counter()
        records = rollouts_since(output_dir, self.state.last_refresh_step, step)
        versions = output_dir / HEK_VERSIONS_DIR
        versions.mkdir(parents=True, exist_ok=True)
        batch = versions / f"step-{step}.trajectories.jsonl"
        atomic_write_jsonl(batch, records)
        old_hook = self.rollout.agent.hook
        out = versions / f"step-{step}"
        reflector = self.reflector if self.reflector is not None else self._policy_generator()
        config = UpdateConfig(dedup_threshold=self.config.hek_dedup_threshold,
                              evict_harmful=self.config.hek_evict_harmful, seed=self.config.seed)
        distill_config = DistillConfig(reward_key=self.config.hek_success_key,
                                       threshold=self.config.hek_success_threshold, seed=self.config.seed,
                                       batch_size=max(1, self.config.group_size))
        with self.rollout.sampling_from(self.trainer):
            path, report = update_from_trajectories(self.state.path, [batch], reflector, old_hook.embedder,
                                                    out_dir=out, config=config, distill_config=distill_config,
                                                    show_progress=False, require_change=False)
        new_hek = self._swap_to(path)
        seconds = time.perf_counter() - started
        self.state.history.append({
            "step": step, "hek_version": new_hek.version, "parent": self.state.version, "path": str(path),
            "counts": new_hek.counts(), "added": len(report.added), "merged": len(report.merged),
            "evicted": len(report.evicted) + len(report.dissolved), "groups": report.groups,
            "trajectories": len(records), "seconds": round(seconds, 1),
        })
        self.state.path, self.state.version, self.state.last_refresh_step = str(path), new_hek.version, step
        if self.trainer is not None:
            self.trainer.hek_version = new_hek.version
            metrics = self.trainer._metrics["train"]
            metrics["hiexp/hek_added"].append(float(len(report.added)))
            metrics["hiexp/hek_evicted"].append(float(len(report.evicted) + len(report.dissolved)))
            metrics["hiexp/hek_refresh_s"].append(seconds)
        self.last_report = report
        return report

    def on_step_end(self, args, state, control, **kwargs):
        every = self.config.hek_refresh_every
        if every and state.global_step % every == 0 and state.global_step > self.state.last_refresh_step:
            from accelerate import PartialState

            process = PartialState()
            if process.is_main_process:
                self.refresh(state.global_step)
            process.wait_for_everyone()
            if not process.is_main_process:  # the other ranks load what the main process wrote
                self._follow(state.global_step)
        return control

    def _swap_to(self, path: Path) -> Any:
        """Load the HEK version at ``path`` and hand the rollout its lookup (reusing the E1 index of the one
        in use); returns the HEK. Every process builds it the same way, usefulness included."""
        from hiexp.experience.hek import HEK
        from hiexp.experience.retrieve import ExperienceRetriever
        from hiexp.experience.usefulness import load_usefulness

        old_hook = self.rollout.agent.hook
        new_hek = HEK.load(path)
        usefulness = load_usefulness(path) if self.config.hek_usefulness != "off" else None
        self.rollout.set_hook(ExperienceRetriever(
            new_hek, old_hook.embedder, top_k=self.config.hek_top_k, threshold=self.config.hek_threshold,
            exclude_own_question=self.config.hek_exclude_own_question, usefulness=usefulness,
            usefulness_mode=self.config.hek_usefulness if usefulness is not None else "off", previous=old_hook,
        ))
        return new_hek

    def _follow(self, step: int) -> None:
        """A process other than the main one: take the version the main process wrote for ``step``."""
        path = Path(self.config.output_dir) / HEK_VERSIONS_DIR / f"step-{step}"
        new_hek = self._swap_to(path)
        self.state.path, self.state.version, self.state.last_refresh_step = str(path), new_hek.version, step
        if self.trainer is not None:
            self.trainer.hek_version = new_hek.version


__all__ = ["HEKRefresh", "HEKState", "HEK_VERSIONS_DIR", "hek_counts_metrics", "rollouts_since"]
