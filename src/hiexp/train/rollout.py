"""The bridge between hiexp's multi-turn search agent and TRL's ``GRPOTrainer`` (its ``rollout_func``).

TRL hands the rollout function one prompt per completion it wants (each question already repeated
``num_generations`` times, in groups). We run the agent on the distinct questions with ``samples = G``,
using a generator that samples from the weights being trained, and give back for every prompt:

* ``prompt_ids``: the system + user prompt as the agent tokenised it (including E2/E3 experience in the
  system prompt when a HEK is on);
* ``completion_ids``: every token after the prompt, concatenated across turns, exactly as generated or
  injected (never re-tokenised);
* ``env_mask``: 1 for tokens the policy sampled, 0 for injected ones (retrieved passages, E1 experience,
  format corrections), so TRL's loss ignores what the policy did not choose;
* extra keys (``hiexp_reward``, ``hiexp_searches``, ...) that TRL forwards to the reward function.

The order of the output matches the order of the prompts, so TRL's grouping of consecutive completions
into one question's group stays true.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Sequence
from typing import Any

from hiexp.contracts.trajectory import Trajectory
from hiexp.errors import HiexpError


def score_trajectory(traj: Trajectory, metric: str, task: str = "qa") -> float:
    """The outcome reward of one episode: the trajectory's own score if it has one, else scored here."""
    if metric in traj.rewards:
        return float(traj.rewards[metric])
    from hiexp.scoring.metrics import score_answer

    scores = score_answer(traj.answer, traj.golden_answers, task=task)
    traj.rewards.update({k: float(v) for k, v in scores.items()})
    return float(scores[metric])


def trajectory_to_sample(traj: Trajectory, fallback_token_id: int) -> dict[str, Any]:
    """Token views of one trajectory for TRL. An episode with no completion tokens (the agent produced
    nothing) gets one masked filler token, because TRL indexes the last completion token."""
    prompt_ids = traj.prompt_ids()
    completion_ids, env_mask = traj.completion_ids_and_mask()
    if not prompt_ids:
        raise HiexpError(
            f"trajectory {traj.id} has no prompt token ids: training needs a generator with a tokenizer "
            "(the transformers backend)"
        )
    if not completion_ids:
        completion_ids, env_mask = [fallback_token_id], [0]
    return {"prompt_ids": prompt_ids, "completion_ids": completion_ids, "env_mask": env_mask}


def sampling_logprobs(traj: Trajectory, length: int) -> list[float] | None:
    """Per completion token, the log-probability the sampler gave it (0 for injected tokens, which the
    loss masks out); None unless every policy turn carries its sampler's log-probs (vLLM rollouts do)."""
    values: list[float] = []
    for turn in traj.turns[traj._prompt_end():]:
        if turn.trainable:
            if turn.logprobs is None or len(turn.logprobs) != len(turn.token_ids):
                return None
            values.extend(float(v) for v in turn.logprobs)
        else:
            values.extend([0.0] * len(turn.token_ids))
    return values if len(values) == length else None


def group_prompts(prompts: Sequence[Any]) -> tuple[list[Any], list[tuple[int, int]]]:
    """Distinct prompts in first-seen order, and for every prompt (its distinct index, its sample number)."""
    keys: dict[str, int] = {}
    distinct: list[Any] = []
    seen: list[int] = []
    slots: list[tuple[int, int]] = []
    for prompt in prompts:
        key = prompt if isinstance(prompt, str) else repr(prompt)
        if key not in keys:
            keys[key] = len(distinct)
            distinct.append(prompt)
            seen.append(0)
        index = keys[key]
        slots.append((index, seen[index]))
        seen[index] += 1
    return distinct, slots


class AgentRollout:
    """``rollout_func`` for ``GRPOTrainer``: runs the hiexp agent on the policy being trained.

    ``agent`` has ``run(examples, samples, seed) -> list[Trajectory]`` (``hiexp.agent.SearchAgent``);
    its generator's ``.model`` is pointed at the trainer's model before every rollout. ``examples`` maps
    the dataset's prompt strings back to ``Example`` records. ``on_trajectories`` (optional) receives each
    batch, e.g. to append them to ``rollouts.jsonl``.
    """

    def __init__(
        self,
        agent: Any,
        examples: dict[str, Any],
        reward: str = "em",
        seed: int = 0,
        on_trajectories: Callable[[list[Trajectory], int], None] | None = None,
    ):
        self.agent = agent
        self.examples = examples
        self.reward = reward
        self.seed = seed
        self.on_trajectories = on_trajectories
        self.last_trajectories: list[Trajectory] = []
        self._lock = threading.Lock()
        self._running = False
        self._pending_hook: Any = None

    def set_hook(self, hook: Any) -> None:
        """Swap the agent's experience hook (a refreshed HEK). A swap asked for while a rollout call is
        running waits until it ends, so that all episodes of one GRPO group see one HEK snapshot."""
        with self._lock:
            if self._running:
                self._pending_hook = hook
            else:
                self.agent.hook = hook

    @contextlib.contextmanager
    def sampling_from(self, trainer: Any):
        """Point the agent's generator at the trainer's current weights, in eval mode (no dropout, KV cache
        allowed under gradient checkpointing), and give the trainer its training mode back afterwards."""
        if trainer is not None and getattr(trainer, "use_vllm", False):
            self._use_vllm(trainer)  # vLLM samples; TRL synced its weights before calling the rollout
            yield
            return
        generator = getattr(self.agent, "generator", None)
        if trainer is None or generator is None or not hasattr(generator, "model"):
            yield
            return
        model = trainer.accelerator.unwrap_model(trainer.model)
        generator.model = model
        was_training = model.training
        model.eval()
        try:
            yield
        finally:
            if was_training:
                model.train()

    def _use_vllm(self, trainer: Any) -> None:
        from hiexp.llm.vllm import VLLMGenerator

        if not isinstance(getattr(self.agent, "generator", None), VLLMGenerator):
            self.agent.generator = VLLMGenerator.from_trainer(trainer)

    def __call__(self, prompts: list[Any], trainer: Any = None) -> dict[str, Any]:
        from hiexp.scoring.metrics import MATH_STEP_BUDGET_SECONDS, grading_budget

        with grading_budget(MATH_STEP_BUDGET_SECONDS):  # a pathological answer cannot stall the step
            return self._rollout(prompts, trainer)

    def _rollout(self, prompts: list[Any], trainer: Any = None) -> dict[str, Any]:
        step = int(trainer.state.global_step) if trainer is not None else 0
        distinct, slots = group_prompts(prompts)
        try:
            examples = [self.examples[p] for p in distinct]
        except KeyError as exc:
            raise HiexpError(f"rollout got a prompt that is not in the training data: {exc}") from None
        samples = max(sample for _, sample in slots) + 1
        # Distinct per step (new samples every step) and reproducible from the run's seed.
        # Under several processes each one rolls out its own slice; the process index keeps their samples
        # of the same question apart.
        process = int(getattr(getattr(trainer, "accelerator", None), "process_index", 0) or 0)
        seed = self.seed * 1_000_003 + step * 7919 + process * 104_729 + 17
        with self._lock:
            self._running = True
        try:
            with self.sampling_from(trainer):
                trajectories = self.agent.run(examples, samples=samples, seed=seed)
            hook = getattr(self.agent, "hook", None)
        finally:
            with self._lock:
                self._running = False
                if self._pending_hook is not None:
                    self.agent.hook, self._pending_hook = self._pending_hook, None
        by_key = {(t.question_id, int(t.sample)): t for t in trajectories}
        ordered: list[Trajectory] = []
        for index, sample in slots:
            key = (examples[index].id, sample)
            if key not in by_key:
                raise HiexpError(f"the agent returned no trajectory for question {key[0]!r} sample {sample}")
            ordered.append(by_key[key])
        fallback = self._fallback_token(trainer)
        out: dict[str, Any] = {"prompt_ids": [], "completion_ids": [], "env_mask": [], "logprobs": []}
        # the sampler's log-probs matter only for TRL's vLLM importance-sampling correction; without vLLM
        # the trained model sampled, and TRL computes them itself
        use_vllm = bool(getattr(trainer, "use_vllm", False))
        rewards, searches, injected, policy_tokens = [], [], [], []
        for traj, example in zip(ordered, [examples[i] for i, _ in slots], strict=True):
            sample = trajectory_to_sample(traj, fallback)
            for key in ("prompt_ids", "completion_ids", "env_mask"):
                out[key].append(sample[key])
            if use_vllm:
                out["logprobs"].append(sampling_logprobs(traj, len(sample["completion_ids"])))
            task = (getattr(example, "metadata", None) or {}).get("task", "qa")
            rewards.append(score_trajectory(traj, self.reward, task))
            searches.append(int(traj.num_searches))
            injected.append(len(sample["env_mask"]) - sum(sample["env_mask"]))
            policy_tokens.append(sum(sample["env_mask"]))
            traj.metadata.setdefault("train_step", step)
        if not use_vllm or any(lp is None for lp in out["logprobs"]):
            out["logprobs"] = None
        out["hiexp_reward"] = rewards
        out["hiexp_searches"] = searches
        out["hiexp_injected_tokens"] = injected
        self.last_trajectories = ordered
        if trainer is not None and hasattr(trainer, "record_rollout_stats"):
            trainer.record_rollout_stats(ordered, rewards, searches, injected, policy_tokens, hook)
        if self.on_trajectories is not None:
            self.on_trajectories(ordered, step)
        return out

    @staticmethod
    def _fallback_token(trainer: Any) -> int:
        tokenizer = getattr(trainer, "processing_class", None) if trainer is not None else None
        with contextlib.suppress(AttributeError):
            if tokenizer is not None and tokenizer.eos_token_id is not None:
                return int(tokenizer.eos_token_id)
        return 0


def outcome_reward_function(metric: str) -> Callable[..., list[float]]:
    """The TRL reward function: the episode's outcome reward, already computed by the rollout."""

    def reward(prompts: list[Any], completions: list[Any], hiexp_reward: list[float] | None = None, **_: Any):
        if hiexp_reward is None:
            raise HiexpError("reward function called without rollout rewards (was the rollout_func bypassed?)")
        return [float(r) for r in hiexp_reward]

    reward.__name__ = metric
    return reward
