"""Run a training job: the parts from a config (examples, retriever, HEK, model, agent), TRL's arguments,
the trainer, resume rules and Ctrl-C handling.

What comes from TRL: the group-normalised advantages, the clipped surrogate with a token-level (GRPO) or
sequence-level (GSPO, ``importance_sampling_level="sequence"``) importance ratio, the KL penalty to the
reference (the base model with the LoRA adapter disabled), the optimizer, schedule, checkpoints with RNG
and data position, gradient accumulation and multi-process training (accelerate / DeepSpeed). What hiexp
adds: the multi-turn rollout through ``rollout_func`` (``rollout.py``), an ``env_mask`` that keeps
retrieved passages and injected experience out of the loss, telemetry (``grpo_trainer.py``) and the HEK
stamped on every checkpoint (``callbacks.py``, ``checkpoints.py``).
"""

from __future__ import annotations

import logging
import os
import signal
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hiexp.errors import HiexpError
from hiexp.io import append_jsonl, atomic_write_text
from hiexp.train.checkpoints import check_resume, drop_rollouts_after, latest_checkpoint, rollouts_file
from hiexp.train.config import TrainConfig, dump_config
from hiexp.train.telemetry import truncate_after

logger = logging.getLogger(__name__)


def grpo_args(config: TrainConfig, use_cpu: bool | None = None) -> Any:
    """TRL's ``GRPOConfig`` for a hiexp ``TrainConfig`` (the one place the two vocabularies meet)."""
    import torch
    from trl import GRPOConfig

    if use_cpu is None:
        use_cpu = not torch.cuda.is_available()
    low, high = config.clip_range
    # batch_size questions per optimizer step in all: each of the processes takes its share of them
    # (the launcher's WORLD_SIZE: on CPU, accelerate's state knows the world only once TrainingArguments made it)
    processes = max(1, int(os.environ.get("WORLD_SIZE", "1") or 1))
    per_process = config.micro_batch * processes
    if config.completions_per_step % per_process:
        raise HiexpError(
            f"batch_size * group_size = {config.completions_per_step} completions per step cannot be split into "
            f"micro-batches of {config.micro_batch} over {processes} processes: make it a multiple of "
            f"{per_process} (raise batch_size, or lower micro_batch_size)")
    return GRPOConfig(
        output_dir=config.output_dir,
        per_device_train_batch_size=config.micro_batch,
        gradient_accumulation_steps=config.completions_per_step // per_process,
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
        temperature=config.agent.temperature,
        top_p=config.agent.top_p,
        max_completion_length=config.agent.max_tokens,
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
        remove_unused_columns=False,
        shuffle_dataset=True,
        log_completions=False,
        disable_tqdm=True,  # hiexp draws its own rich progress bar (RichProgress)
        dataloader_num_workers=0,
        **vllm_args(config),
        **_checkpointing_arg(GRPOConfig, config.gradient_checkpointing),
    )


def _checkpointing_arg(args_class: Any, enabled: bool) -> dict[str, bool]:
    """Activation checkpointing under the name this transformers takes (``gradient_checkpointing`` became a
    deprecated alias of ``activation_checkpointing`` in transformers 5)."""
    import dataclasses

    names = {f.name for f in dataclasses.fields(args_class)}
    return {"activation_checkpointing" if "activation_checkpointing" in names else "gradient_checkpointing": enabled}


def vllm_args(config: TrainConfig) -> dict[str, Any]:
    """TRL's vLLM options: rollouts sampled by vLLM, with TRL's importance-sampling correction for the
    difference between vLLM's log-probs (returned by the rollout) and the trained model's."""
    if config.vllm_mode == "off":
        return {}
    options: dict[str, Any] = {"use_vllm": True, "vllm_mode": config.vllm_mode,
                               "vllm_importance_sampling_correction": True}
    if config.vllm_mode == "server" and config.vllm_server_base_url:
        options["vllm_server_base_url"] = config.vllm_server_base_url
    if config.vllm_mode == "colocate":
        options["vllm_gpu_memory_utilization"] = config.vllm_gpu_memory_utilization
    return options


def check_lora_targets(config: TrainConfig, model: Any = None) -> None:
    """Refuse LoRA target names that match no module of the policy, before its weights load: the
    architecture alone, built on the meta device, names its modules (peft matches a target by a name's last
    parts, ``q_proj`` or ``self_attn.q_proj``)."""
    targets = [t for t in config.lora_targets if t != "all-linear"] if config.lora else []
    if not targets:
        return
    if model is None:
        import torch
        from transformers import AutoConfig, AutoModelForCausalLM

        from hiexp.llm.models import resolve_model

        try:
            source, _ = resolve_model(config.model)
            with torch.device("meta"):
                model = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(source))
        except Exception:  # noqa: BLE001 - the model's own load names what is wrong with it
            return
    names = [name for name, _ in model.named_modules()]
    missing = [t for t in targets if not any(n == t or n.endswith(f".{t}") for n in names)]
    if missing:
        leaves = sorted({n.rsplit(".", 1)[-1] for n in names if n.endswith("proj")})
        raise HiexpError(f"lora_targets: {missing[0]!r} is not a module of {config.model} (its projections: "
                         f"{', '.join(leaves) or 'none'}; or all-linear)")


def lora_config(config: TrainConfig) -> Any:
    from peft import LoraConfig

    return LoraConfig(
        r=config.lora_r,
        lora_alpha=config.lora_alpha,
        lora_dropout=config.lora_dropout,
        target_modules=list(config.lora_targets),
        task_type="CAUSAL_LM",
    )


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
        logger.warning("interrupt: saving a checkpoint after this step (Ctrl-C again to stop now)")

    def callback(self) -> Any:
        from hiexp.train.callbacks import SaveOnInterrupt

        return SaveOnInterrupt(self)


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


def load_examples(config: TrainConfig) -> list[Any]:
    from hiexp.data import load_dataset

    return load_dataset(config.dataset, split=config.split, n=config.n, seed=config.seed)


def _load_retriever(config: TrainConfig) -> Any:
    if agent_config(config).format == "math":
        return None  # the math task has no search tool
    from hiexp.components import make_retriever

    return make_retriever(config.index, dataset=config.dataset)


def _load_hook(config: TrainConfig) -> Any:
    if not config.use_hek:
        return None
    from hiexp.components import make_experience_hook

    return make_experience_hook(config.hek, top_k=config.hek_top_k, threshold=config.hek_threshold,
                                embedder=config.embedder or None, exclude_own_question=config.hek_exclude_own_question,
                                usefulness_mode=config.hek_usefulness)


def agent_config(config: TrainConfig) -> Any:
    """The agent's config for training rollouts: the ``agent`` section, seeded from the run's ``seed``."""
    from dataclasses import replace

    return replace(config.agent, seed=config.seed)


def build_trainer(config: TrainConfig, parts: TrainComponents | None = None,
                  resume_state: dict[str, Any] | None = None) -> Any:
    """Assemble the ``HiexpGRPOTrainer`` for a config; ``parts`` supplies anything already built.
    ``resume_state`` (a checkpoint's ``hiexp_state.json``) makes a closed-loop run continue with the HEK
    version the checkpoint was using, not the one it started from."""
    from datasets import Dataset

    from hiexp.train.rollout import AgentRollout

    parts = parts or TrainComponents()
    by_prompt = _questions_by_prompt(config, parts)
    hook = _experience_hook(config, parts, resume_state)
    model, tokenizer, generator = _policy(config, parts)
    agent = parts.agent if parts.agent is not None else _search_agent(config, parts, generator, model, tokenizer, hook)
    if parts.agent is not None:
        hook = getattr(parts.agent, "hook", hook)

    output_dir = Path(config.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)

    def save_rollouts(trajectories: list[Any], step: int) -> None:
        from accelerate import PartialState

        path = rollouts_file(output_dir, PartialState().process_index)
        append_jsonl(path, [t.to_dict() for t in trajectories])

    rollout = AgentRollout(agent, by_prompt, reward=config.reward, seed=config.seed,
                           on_trajectories=save_rollouts if config.save_rollouts else None)
    dataset = Dataset.from_list([{"prompt": prompt} for prompt in by_prompt])
    hek_version = getattr(hook, "version", None) if hook is not None else None
    trainer = _grpo_trainer(config, parts, model, tokenizer, dataset, rollout, hek_version)
    _attach_callbacks(trainer, config, rollout, _hek_state(config, hek_version, resume_state))
    return trainer


def _questions_by_prompt(config: TrainConfig, parts: TrainComponents) -> dict[str, Any]:
    """The training examples by question text (the prompt TRL hands back), enough to fill a batch."""
    examples = parts.examples if parts.examples is not None else load_examples(config)
    by_prompt: dict[str, Any] = {}
    for example in examples:
        by_prompt.setdefault(example.question, example)
    if len(by_prompt) < config.batch_size:
        raise HiexpError(
            f"{len(by_prompt)} distinct training question(s) cannot fill a batch of {config.batch_size}"
        )
    return by_prompt


def _experience_hook(config: TrainConfig, parts: TrainComponents, resume_state: dict[str, Any] | None) -> Any:
    """The experience hook: the refreshed HEK version a resumed closed-loop run was using, else the given or
    configured one."""
    refreshed = (resume_state or {}).get("hek_path") if config.hek_refresh_every else None
    if refreshed and not Path(refreshed).is_dir():  # the run directory moved: its versions moved with it
        from hiexp.train.refresh import HEK_VERSIONS_DIR

        refreshed = str(Path(config.output_dir) / HEK_VERSIONS_DIR / Path(refreshed).name)
    if refreshed and parts.hook is None and parts.agent is None:
        from hiexp.components import make_experience_hook

        usefulness = config.hek_usefulness if (Path(refreshed) / "usefulness.json").exists() else "off"
        return make_experience_hook(refreshed, top_k=config.hek_top_k, threshold=config.hek_threshold,
                                    embedder=config.embedder or None,
                                    exclude_own_question=config.hek_exclude_own_question, usefulness_mode=usefulness)
    return parts.hook if parts.hook is not None or parts.agent is not None else _load_hook(config)


def _policy(config: TrainConfig, parts: TrainComponents) -> tuple[Any, Any, Any]:
    """The policy model, its tokenizer and (when loaded here) the generator that samples from it."""
    model, tokenizer, generator = parts.model, parts.tokenizer, parts.generator
    check_lora_targets(config, model)
    if model is None or tokenizer is None:
        from hiexp.components import make_generator

        # The agent samples through this generator; the rollout points its ``.model`` at the trainer's
        # (LoRA-wrapped) model before every batch, so there is one copy of the weights.
        generator = make_generator(config.model, backend="transformers")
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
    return model, tokenizer, generator


def _search_agent(config: TrainConfig, parts: TrainComponents, generator: Any, model: Any, tokenizer: Any,
                  hook: Any) -> Any:
    from hiexp.agent import SearchAgent

    retriever = parts.retriever if parts.retriever is not None else _load_retriever(config)
    if generator is None:
        from hiexp.llm.hf import TransformersGenerator

        generator = TransformersGenerator(model, tokenizer, model_id=config.model)
    return SearchAgent(generator, retriever, agent_config(config), hook)


def _hek_state(config: TrainConfig, hek_version: str | None, resume_state: dict[str, Any] | None) -> Any:
    from hiexp.train.refresh import HEKState

    if resume_state is not None and config.hek_refresh_every:
        hek_state = HEKState.from_checkpoint(resume_state, config.hek)
        hek_state.version = hek_version
        return hek_state
    return HEKState(path=config.hek if config.use_hek else None, version=hek_version)


def _grpo_trainer(config: TrainConfig, parts: TrainComponents, model: Any, tokenizer: Any, dataset: Any,
                  rollout: Any, hek_version: str | None) -> Any:
    import os

    from hiexp.train.grpo_trainer import HiexpGRPOTrainer
    from hiexp.train.rollout import outcome_reward_function

    os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")
    return HiexpGRPOTrainer(
        model=model,
        reward_funcs=[outcome_reward_function(config.reward)],
        args=grpo_args(config),
        train_dataset=dataset,
        processing_class=tokenizer,
        peft_config=lora_config(config) if config.lora else None,
        rollout_func=rollout,
        callbacks=list(parts.callbacks),
        hiexp_config=config,
        hek_version=hek_version,
    )


def _attach_callbacks(trainer: Any, config: TrainConfig, rollout: Any, hek_state: Any) -> None:
    """hiexp's progress bar instead of the printed logs, the HEK stamp of every checkpoint, and the
    closed-loop refresh when the config asks for one."""
    from transformers.trainer_callback import PrinterCallback

    from hiexp.train.callbacks import CheckpointStamp, RichProgress

    trainer.remove_callback(PrinterCallback)
    trainer.add_callback(RichProgress())
    trainer.add_callback(CheckpointStamp(config, hek_state.version, hek_state))
    trainer.hiexp_rollout = rollout
    trainer.hek_state = hek_state
    if config.hek_refresh_every:
        from hiexp.train.refresh import HEKRefresh

        reflector = None
        if config.hek_reflector != "policy":
            from hiexp.components import make_generator

            reflector = make_generator(config.hek_reflector)
        refresher = HEKRefresh(config, rollout, hek_state, reflector)
        refresher.trainer = trainer
        trainer.add_callback(refresher)
        trainer.hek_refresh = refresher


def end_distributed() -> None:
    """Leave the process group once every rank is done: a gloo group still alive at interpreter exit can abort
    a rank ("terminate called without an active exception") after the work succeeded."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


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
    checkpoint: Path | None = None
    if isinstance(resume, str) and resume:
        checkpoint = Path(resume)
        if not checkpoint.is_dir():
            raise HiexpError(f"--from-checkpoint {resume}: no such checkpoint directory")
    elif resume:
        checkpoint = latest_checkpoint(output_dir)
    from hiexp.train.checkpoints import read_checkpoint_state

    trainer = build_trainer(config, parts, read_checkpoint_state(checkpoint) if checkpoint is not None else None)
    hek_version = trainer.hek_version
    if checkpoint is not None:
        state = check_resume(checkpoint, hek_version, force=force)
        truncate_after(output_dir, int(state.get("step", 0)))
        drop_rollouts_after(output_dir, int(state.get("step", 0)))
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
        "hek_version": trainer.hek_version,
        "hek_versions": len(trainer.hek_state.history),
        "train_runtime": float(result.metrics.get("train_runtime", 0.0)) if result is not None else None,
        "interrupted": interrupt.requested,
    }
    if interrupt.requested:
        raise KeyboardInterrupt
    # A final checkpoint when the last step was not a multiple of save_steps.
    last = latest_checkpoint(output_dir)
    if last is None or last.name != f"checkpoint-{trainer.state.global_step}":
        trainer._save_checkpoint(trainer.model, trial=None)  # TRL's full checkpoint (optimizer, RNG, data position)
        trainer.callback_handler.on_save(trainer.args, trainer.state, trainer.control)  # and its HEK stamp
    trainer.hiexp_summary = summary
    end_distributed()
    return summary
