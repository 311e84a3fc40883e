"""``HiexpGRPOTrainer``: TRL's ``GRPOTrainer`` with hiexp's telemetry and a resumable data order.

The loss, the advantages, the KL to the reference, the optimizer and the checkpoints are TRL's. What is
added: rollout statistics TRL does not log (reward variance within groups, searches, injected and
experience tokens, the share of episodes that answered), advantage statistics, the variance of recent
gradient norms, one ``metrics.jsonl`` line per optimizer step, and a sampler reseeded per epoch so that a
resumed run sees the same questions. Checkpoints are stamped with the HEK by ``callbacks.CheckpointStamp``.
"""

from __future__ import annotations

from typing import Any

from trl import GRPOTrainer

from hiexp.train.config import TrainConfig
from hiexp.train.telemetry import GradNormWindow, group_variances, telemetry_record, variance, write_record


def _mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else 0.0


class HiexpGRPOTrainer(GRPOTrainer):
    """``GRPOTrainer`` plus hiexp telemetry and HEK-stamped checkpoints (the loss is TRL's)."""

    def __init__(self, *args: Any, hiexp_config: TrainConfig, hek_version: str | None = None, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.hiexp_config = hiexp_config
        self.hek_version = hek_version
        self._grad_norms = GradNormWindow(hiexp_config.grad_norm_window)

    # --- telemetry ---------------------------------------------------------------------------
    def record_rollout_stats(self, trajectories, rewards, searches, injected, policy_tokens, hook=None) -> None:
        """Called by the rollout with each batch: what TRL does not log itself (and the size of the HEK
        the batch saw, per level)."""
        from hiexp.train.refresh import hek_counts_metrics

        mode = "train" if self.model.training else "eval"
        metrics = self._metrics[mode]
        if hook is not None:
            for name, value in hek_counts_metrics(hook).items():
                metrics[f"hiexp/{name}"].append(value)
        metrics["hiexp/reward_var"].append(variance(rewards))
        metrics["hiexp/reward_var_in_group"].append(
            _mean(group_variances(rewards, self.hiexp_config.group_size))
        )
        metrics["hiexp/searches_per_episode"].append(_mean([float(s) for s in searches]))
        metrics["hiexp/injected_tokens"].append(_mean([float(n) for n in injected]))
        metrics["hiexp/policy_tokens"].append(_mean([float(n) for n in policy_tokens]))
        metrics["hiexp/answered"].append(_mean([1.0 if t.finish == "answer" else 0.0 for t in trajectories]))
        experience = [
            float(sum(len(turn.token_ids) for turn in t.turns if turn.role == "experience"))
            for t in trajectories
        ]
        metrics["hiexp/experience_tokens"].append(_mean(experience))

    def _generate_and_score_completions(self, inputs):
        output = super()._generate_and_score_completions(inputs)
        mode = "train" if self.model.training else "eval"
        advantages = self.accelerator.gather(output["advantages"].detach()).float()
        self._metrics[mode]["hiexp/adv_var"].append(advantages.var(unbiased=False).item())
        self._metrics[mode]["hiexp/adv_abs_mean"].append(advantages.abs().mean().item())
        return output

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        mode = "train" if self.model.training else "eval"
        is_step = mode == "train" and "train_runtime" not in logs and "loss" in logs
        if is_step and logs.get("grad_norm") is not None:
            logs["hiexp/grad_norm_var"] = self._grad_norms.add(float(logs["grad_norm"]))
        super().log(logs, start_time)
        if is_step and self.accelerator.is_main_process:
            extra = {k.split("/", 1)[1]: v for k, v in logs.items() if k.startswith("hiexp/")}
            record = telemetry_record(self.state.global_step, logs, extra)
            record["hek_version"] = self.hek_version
            record["algorithm"] = self.hiexp_config.algorithm
            write_record(self.args.output_dir, record)

    # --- data order ------------------------------------------------------------------------
    def _get_train_sampler(self, dataset=None):
        """TRL's RepeatSampler, reseeded per epoch: its permutation then depends on the epoch alone, not
        on how many epochs this process has iterated, so a resumed run sees the same questions."""
        sampler = super()._get_train_sampler(dataset)
        seed = self.args.seed

        def set_epoch(epoch: int, _sampler=sampler) -> None:
            if getattr(_sampler, "shuffle", False):
                _sampler.generator.manual_seed(seed + 7919 * int(epoch))

        sampler.set_epoch = set_epoch
        return sampler
