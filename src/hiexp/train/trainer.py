"""Experience-aligned GRPO / GSPO on TRL's ``GRPOTrainer``.

What comes from TRL: the group-normalised advantages, the clipped surrogate with a token-level (GRPO) or
sequence-level (GSPO, ``importance_sampling_level="sequence"``) importance ratio, the KL penalty to the
reference (the base model with the LoRA adapter disabled), the optimizer, schedule, checkpoints with RNG
and data position, gradient accumulation and multi-process training (accelerate / DeepSpeed).

What hiexp adds (``HiexpGRPOTrainer``): the multi-turn rollout through ``rollout_func`` (see ``rollout.py``),
an ``env_mask`` that keeps retrieved passages and injected experience out of the loss, telemetry written to
``metrics.jsonl`` each step, and the HEK version stored with every checkpoint so a resumed run cannot
silently switch experience bases.
"""

from __future__ import annotations

import json
import signal
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hiexp.errors import HiexpError
from hiexp.io import append_jsonl, atomic_write_json, atomic_write_text
from hiexp.train.config import TrainConfig, dump_config
from hiexp.train.telemetry import (
    GradNormWindow,
    group_variances,
    telemetry_record,
    truncate_after,
    variance,
    write_record,
)

STATE_FILE = "hiexp_state.json"
ROLLOUTS_FILE = "rollouts.jsonl"


def _mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else 0.0


def grpo_args(config: TrainConfig, use_cpu: bool | None = None) -> Any:
    """TRL's ``GRPOConfig`` for a hiexp ``TrainConfig`` (the one place the two vocabularies meet)."""
    import torch
    from trl import GRPOConfig

    if use_cpu is None:
        use_cpu = not torch.cuda.is_available()
    low, high = config.clip_range
    return GRPOConfig(
        output_dir=config.output_dir,
        per_device_train_batch_size=config.micro_batch,
        gradient_accumulation_steps=config.completions_per_step // config.micro_batch,
        num_generations=config.group_size,
        max_steps=config.steps,
        learning_rate=config.learning_rate,
        lr_scheduler_type=config.lr_scheduler,
        warmup_steps=config.warmup_steps,
        weight_decay=config.weight_decay,
        max_grad_norm=config.max_grad_norm,
        beta=config.beta,
        epsilon=low,
        epsilon_high=high,
        # GSPO = one length-normalised ratio per sequence; the loss then averages sequences ("grpo").
        importance_sampling_level="sequence" if config.algorithm == "gspo" else "token",
        loss_type="grpo",
        scale_rewards=config.scale_rewards,
        num_iterations=config.num_iterations,
        temperature=config.temperature,
        top_p=config.top_p,
        max_completion_length=config.max_response_tokens,
        logging_steps=1,
        save_strategy="steps",
        save_steps=config.save_steps,
        save_total_limit=config.save_total_limit,
        report_to=[] if config.report_to == "none" else [config.report_to],
        seed=config.seed,
        data_seed=config.seed,
        use_cpu=use_cpu,
        bf16=False,
        fp16=False,
        gradient_checkpointing=config.gradient_checkpointing,
        remove_unused_columns=False,
        shuffle_dataset=True,
        log_completions=False,
        disable_tqdm=True,  # hiexp draws its own rich progress bar (RichProgress)
        dataloader_num_workers=0,
    )


def lora_config(config: TrainConfig) -> Any:
    from peft import LoraConfig

    return LoraConfig(
        r=config.lora_r,
        lora_alpha=config.lora_alpha,
        lora_dropout=config.lora_dropout,
        target_modules=list(config.lora_targets),
        task_type="CAUSAL_LM",
    )


def _trainer_class() -> type:
    """Built on first use so that importing this module does not import TRL."""
    global _HiexpGRPOTrainer
    if _HiexpGRPOTrainer is not None:
        return _HiexpGRPOTrainer
    from trl import GRPOTrainer

    class HiexpGRPOTrainer(GRPOTrainer):
        """``GRPOTrainer`` plus hiexp telemetry and HEK-stamped checkpoints (the loss is TRL's)."""

        def __init__(self, *args: Any, hiexp_config: TrainConfig, hek_version: str | None = None, **kwargs: Any):
            super().__init__(*args, **kwargs)
            self.hiexp_config = hiexp_config
            self.hek_version = hek_version
            self._grad_norms = GradNormWindow(hiexp_config.grad_norm_window)

        # --- telemetry ---------------------------------------------------------------------------
        def record_rollout_stats(self, trajectories, rewards, searches, injected, policy_tokens) -> None:
            """Called by the rollout with each batch: what TRL does not log itself."""
            mode = "train" if self.model.training else "eval"
            metrics = self._metrics[mode]
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

        # --- checkpoints -------------------------------------------------------------------------
        def _save_checkpoint(self, model, trial):
            super()._save_checkpoint(model, trial)
            if not self.args.should_save:
                return
            from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

            folder = Path(self._get_output_dir(trial=trial)) / f"{PREFIX_CHECKPOINT_DIR}-{self.state.global_step}"
            if folder.exists():
                write_checkpoint_state(folder, self.hiexp_config, self.hek_version, self.state.global_step)

    _HiexpGRPOTrainer = HiexpGRPOTrainer
    return HiexpGRPOTrainer


_HiexpGRPOTrainer: type | None = None


def write_checkpoint_state(folder: Path, config: TrainConfig, hek_version: str | None, step: int) -> None:
    """hiexp's part of a checkpoint: the HEK it was trained with and the full config."""
    from hiexp import __version__

    atomic_write_json(
        Path(folder) / STATE_FILE,
        {"hek": config.hek, "hek_version": hek_version, "step": int(step), "algorithm": config.algorithm,
         "model": config.model, "hiexp_version": __version__, "config": config.to_dict()},
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


class InterruptHandler:
    """First Ctrl-C: finish the current step, save a checkpoint, stop. Second Ctrl-C: stop at once."""

    def __init__(self) -> None:
        self.requested = False
        self._previous: Any = None

    def __enter__(self) -> InterruptHandler:
        try:
            self._previous = signal.signal(signal.SIGINT, self._handle)
        except ValueError:  # not the main thread: leave signals alone
            self._previous = None
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)

    def _handle(self, signum: int, frame: Any) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        from hiexp.progress import console

        console.print("[yellow]interrupt: saving a checkpoint after this step (Ctrl-C again to stop now)[/]")

    def callback(self) -> Any:
        from transformers import TrainerCallback

        handler = self

        class SaveOnInterrupt(TrainerCallback):
            def on_step_end(self, args, state, control, **kwargs):
                if handler.requested:
                    control.should_save = True
                    control.should_training_stop = True
                return control

        return SaveOnInterrupt()


@dataclass
class TrainComponents:
    """What a training run is made of; every part can be given (tests, benchmarks) or built from config."""

    model: Any = None
    tokenizer: Any = None
    examples: list[Any] | None = None
    retriever: Any = None
    hook: Any = None
    agent: Any = None
    generator: Any = None  # what the agent samples through; its ``.model`` follows the trainer's model
    callbacks: list[Any] = field(default_factory=list)


def _load_examples(config: TrainConfig) -> list[Any]:
    from hiexp.data import load_dataset

    return load_dataset(config.dataset, split=config.split, n=config.n, seed=config.seed)


def _load_retriever(config: TrainConfig) -> Any:
    from hiexp.components import make_retriever

    return make_retriever(config.index, dataset=config.dataset)


def _load_hook(config: TrainConfig) -> Any:
    if not config.use_hek:
        return None
    from hiexp.components import make_experience_hook

    return make_experience_hook(config.hek, top_k=config.hek_top_k, threshold=config.hek_threshold,
                                embedder=config.embedder or None, exclude_own_question=config.hek_exclude_own_question)


def agent_config(config: TrainConfig) -> Any:
    """The agent's config for training rollouts (only the fields the agent defines are passed)."""
    from dataclasses import fields as dc_fields

    from hiexp.agent import AgentConfig

    wanted = {
        "format": config.format, "top_k": config.top_k, "max_turns": config.max_turns,
        "max_tokens": config.max_response_tokens, "max_new_tokens": config.max_turn_tokens,
        "temperature": config.temperature, "top_p": config.top_p, "seed": config.seed,
        "reward_metric": config.reward,
        # every episode of a step in flight together (continuous batching inside the agent)
        "batch_size": max(1, config.completions_per_step),
    }
    names = {f.name for f in dc_fields(AgentConfig)}
    return AgentConfig(**{k: v for k, v in wanted.items() if k in names})


def build_trainer(config: TrainConfig, parts: TrainComponents | None = None) -> Any:
    """Assemble the ``HiexpGRPOTrainer`` for a config; ``parts`` supplies anything already built."""
    from datasets import Dataset

    from hiexp.train.rollout import AgentRollout, outcome_reward_function

    parts = parts or TrainComponents()
    examples = parts.examples if parts.examples is not None else _load_examples(config)
    by_prompt: dict[str, Any] = {}
    for example in examples:
        by_prompt.setdefault(example.question, example)
    if len(by_prompt) < config.batch_size:
        raise HiexpError(
            f"{len(by_prompt)} distinct training question(s) cannot fill a batch of {config.batch_size}"
        )
    hook = parts.hook if parts.hook is not None or parts.agent is not None else _load_hook(config)
    model, tokenizer = parts.model, parts.tokenizer
    generator = parts.generator
    if model is None or tokenizer is None:
        from hiexp.llm import load_generator

        # The agent samples through this generator; the rollout points its ``.model`` at the trainer's
        # (LoRA-wrapped) model before every batch, so there is one copy of the weights.
        generator = load_generator(config.model, backend="transformers")
        model, tokenizer = generator.model, generator.tokenizer
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    if not config.lora and config.beta > 0:
        source = getattr(model.config, "_name_or_path", "")
        if not source or not Path(source).exists():
            raise HiexpError(
                "full fine-tuning with beta > 0 reloads the model as the KL reference, but this model has no "
                "local path to reload from: use lora: true, or beta: 0"
            )
    agent = parts.agent
    if agent is None:
        from hiexp.agent import SearchAgent

        retriever = parts.retriever if parts.retriever is not None else _load_retriever(config)
        if generator is None:
            from hiexp.llm.hf import TransformersGenerator

            generator = TransformersGenerator(model, tokenizer, model_id=config.model)
        agent = SearchAgent(generator, retriever, agent_config(config), hook)

    output_dir = Path(config.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    def save_rollouts(trajectories: list[Any], step: int) -> None:
        append_jsonl(output_dir / ROLLOUTS_FILE, [t.to_dict() for t in trajectories])

    on_trajectories = save_rollouts if config.save_rollouts else None

    rollout = AgentRollout(
        agent, by_prompt, reward=config.reward, seed=config.seed, on_trajectories=on_trajectories
    )
    dataset = Dataset.from_list([{"prompt": prompt} for prompt in by_prompt])
    trainer_cls = _trainer_class()
    import os
    import warnings

    os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        trainer = trainer_cls(
            model=model,
            reward_funcs=[outcome_reward_function(config.reward)],
            args=grpo_args(config),
            train_dataset=dataset,
            processing_class=tokenizer,
            peft_config=lora_config(config) if config.lora else None,
            rollout_func=rollout,
            callbacks=list(parts.callbacks),
            hiexp_config=config,
            hek_version=getattr(hook, "version", None) if hook is not None else None,
        )
    from transformers.trainer_callback import PrinterCallback

    trainer.remove_callback(PrinterCallback)
    trainer.add_callback(RichProgress())
    trainer.hiexp_rollout = rollout
    return trainer


def RichProgress() -> Any:  # noqa: N802 - a factory that looks like the class it builds
    """A rich progress bar over optimizer steps showing the last reward (instead of printed log dicts)."""
    from transformers import TrainerCallback

    from hiexp.progress import progress_bar

    class _RichProgress(TrainerCallback):
        def __init__(self) -> None:
            self.bar = None
            self.task = None

        def on_train_begin(self, args, state, control, **kwargs):
            if state.is_world_process_zero:
                self.bar = progress_bar()
                self.bar.start()
                self.task = self.bar.add_task("train", total=state.max_steps, completed=state.global_step)

        def on_log(self, args, state, control, logs=None, **kwargs):
            if self.bar is not None and logs and "reward" in logs:
                self.bar.update(self.task, description=f"train (reward {float(logs['reward']):.3f})")

        def on_step_end(self, args, state, control, **kwargs):
            if self.bar is not None:
                self.bar.update(self.task, completed=state.global_step)

        def on_train_end(self, args, state, control, **kwargs):
            if self.bar is not None:
                self.bar.stop()
                self.bar = None

    return _RichProgress()


def _drop_rollouts_after(path: Path, step: int) -> None:
    """Keep the trajectories of the steps a checkpoint covers (those of step k carry train_step k - 1)."""
    if not path.exists():
        return
    from hiexp.io import atomic_write_jsonl, iter_jsonl

    records = list(iter_jsonl(path, skip_bad=True))
    kept = [r for r in records if int((r.get("metadata") or {}).get("train_step", 0)) < step]
    if len(kept) != len(records):
        atomic_write_jsonl(path, kept)


def run_training(
    config: TrainConfig,
    resume: str | bool = True,
    force: bool = False,
    parts: TrainComponents | None = None,
) -> dict[str, Any]:
    """Train (resuming from the newest checkpoint of ``output_dir`` when ``resume`` is True, or from the
    checkpoint path it names). Returns a summary; raises ``KeyboardInterrupt`` after saving on Ctrl-C."""
    parts = parts or TrainComponents()
    output_dir = Path(config.output_dir)
    interrupt = InterruptHandler()
    parts.callbacks = [*parts.callbacks, interrupt.callback()]
    trainer = build_trainer(config, parts)
    hek_version = trainer.hek_version
    checkpoint: Path | None = None
    if isinstance(resume, str) and resume:
        checkpoint = Path(resume)
        if not checkpoint.is_dir():
            raise HiexpError(f"--resume {resume}: no such checkpoint directory")
    elif resume:
        checkpoint = latest_checkpoint(output_dir)
    if checkpoint is not None:
        state = check_resume(checkpoint, hek_version, force=force)
        truncate_after(output_dir, int(state.get("step", 0)))
        _drop_rollouts_after(output_dir / ROLLOUTS_FILE, int(state.get("step", 0)))
    else:
        stale = latest_checkpoint(output_dir)
        if stale is not None:
            raise HiexpError(
                f"{output_dir} already holds checkpoints ({stale.name}); resume (drop --no-resume) or choose a "
                "new --output-dir"
            )
        if (output_dir / "metrics.jsonl").exists():
            (output_dir / "metrics.jsonl").unlink()
    atomic_write_text(output_dir / "config.yaml", dump_config(config))
    with interrupt:
        result = trainer.train(resume_from_checkpoint=str(checkpoint) if checkpoint else None)
    summary = {
        "output_dir": str(output_dir),
        "steps": int(trainer.state.global_step),
        "resumed_from": str(checkpoint) if checkpoint else None,
        "hek_version": hek_version,
        "train_runtime": float(result.metrics.get("train_runtime", 0.0)) if result is not None else None,
        "interrupted": interrupt.requested,
    }
    if interrupt.requested:
        raise KeyboardInterrupt
    # A final checkpoint when the last step was not a multiple of save_steps.
    last = latest_checkpoint(output_dir)
    if last is None or last.name != f"checkpoint-{trainer.state.global_step}":
        trainer._save_checkpoint(trainer.model, trial=None)
    trainer.hiexp_summary = summary
    return summary
