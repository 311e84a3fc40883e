"""The loss and the advantages, tested through TRL's code (hiexp's trainer does not override either)."""

from __future__ import annotations

import math

import pytest
import torch

from hiexp.train.rollout import trajectory_to_sample

from .conftest import tiny_config


def _trainer(tmp_path, tiny_parts, **overrides):
    from hiexp.train.runner import build_trainer

    parts = tiny_parts(**{k: overrides.pop(k) for k in ("reward", "shuffle") if k in overrides})
    trainer = build_trainer(tiny_config(tmp_path, **overrides), parts)
    trainer.current_gradient_accumulation_steps = 1
    return trainer, parts


def _batch(trainer, samples, advantages):
    """TRL's training inputs for hand-made (prompt, completion, env_mask) samples."""
    from trl.trainer.utils import pad

    pad_id = trainer.processing_class.pad_token_id
    prompt = [torch.tensor(s["prompt_ids"]) for s in samples]
    completion = [torch.tensor(s["completion_ids"]) for s in samples]
    return {
        "prompt_ids": pad(prompt, padding_value=pad_id, padding_side="left"),
        "prompt_mask": pad([torch.ones_like(p) for p in prompt], padding_value=0, padding_side="left"),
        "completion_ids": pad(completion, padding_value=pad_id, padding_side="right"),
        "completion_mask": pad([torch.ones_like(c) for c in completion], padding_value=0, padding_side="right"),
        "tool_mask": pad([torch.tensor(s["env_mask"]) for s in samples], padding_value=1, padding_side="right"),
        "advantages": torch.tensor(advantages, dtype=torch.float32),
        "num_items_in_batch": torch.tensor(sum(sum(s["env_mask"]) for s in samples)),
    }


def _final_hidden(trainer):
    """The last norm's output: position t feeds only the log-prob of token t+1."""
    base = trainer.accelerator.unwrap_model(trainer.model)
    base = base.get_base_model() if hasattr(base, "get_base_model") else base
    return base.model.norm


def test_masked_tokens_get_zero_gradient_policy_tokens_nonzero(tmp_path, tiny_parts):
    trainer, parts = _trainer(tmp_path, tiny_parts)
    trajectories = parts.agent.run(parts.examples[:2], samples=1, seed=3)
    samples = [trajectory_to_sample(t, 0) for t in trajectories]
    # the episode has policy, passage (tool) and experience tokens
    roles = {turn.role for turn in trajectories[0].turns}
    assert {"policy", "tool", "experience"} <= roles
    inputs = _batch(trainer, samples, [1.0, -1.0])
    # a reference policy that differs from the current one, so the KL term (beta > 0) has gradient too
    input_ids = torch.cat([inputs["prompt_ids"], inputs["completion_ids"]], dim=1)
    attention = torch.cat([inputs["prompt_mask"], inputs["completion_mask"]], dim=1)
    with torch.no_grad():
        current, _, _ = trainer._get_per_token_logps_and_entropies(
            trainer.model, input_ids, attention, inputs["completion_ids"].shape[1]
        )
    inputs["ref_per_token_logps"] = current + 0.2 * torch.randn(current.shape, generator=torch.Generator().manual_seed(1))
    assert trainer.beta > 0

    captured = {}

    def keep(module, args, output):
        output.retain_grad()
        captured["hidden"] = output

    handle = _final_hidden(trainer).register_forward_hook(keep)
    try:
        trainer.model.train()
        loss = trainer.compute_loss(trainer.model, inputs)
        loss.backward()
    finally:
        handle.remove()
    grad = captured["hidden"].grad.abs().sum(-1)  # (B, P + C)
    width = inputs["prompt_ids"].shape[1]
    for row, sample in enumerate(samples):
        for j, trainable in enumerate(sample["env_mask"]):
            g = grad[row, width + j - 1].item()  # the position that predicts completion token j
            if trainable:
                assert g > 0, f"policy token {j} of row {row} got no gradient"
            else:
                assert g == 0.0, f"masked token {j} of row {row} got gradient {g}"
    # and the adapter's weights do receive gradient
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in trainer.model.parameters() if p.requires_grad)


def _hand_loss(new, old, mask, advantages, low, high, level):
    total = 0.0
    for b in range(new.shape[0]):
        m = mask[b].bool()
        log_ratio = (new[b] - old[b])[m]
        if level == "sequence":
            ratios = torch.exp(log_ratio.mean()).repeat(int(m.sum()))
        else:
            ratios = torch.exp(log_ratio)
        a = advantages[b]
        per_token = -torch.minimum(ratios * a, torch.clamp(ratios, 1 - low, 1 + high) * a)
        total += per_token.mean().item()
    return total / new.shape[0]


@pytest.mark.parametrize("algorithm", ["gspo", "grpo"])
def test_importance_ratio_level_matches_hand_computation(tmp_path, tiny_parts, algorithm):
    """GSPO = one length-normalised ratio per sequence; GRPO = one ratio per token (beta 0, same rollouts)."""
    trainer, parts = _trainer(
        tmp_path, tiny_parts, algorithm=algorithm, beta=0.0, epsilon_low=0.05, epsilon_high=0.08
    )
    assert trainer.importance_sampling_level == ("sequence" if algorithm == "gspo" else "token")
    trajectories = parts.agent.run(parts.examples[:2], samples=1, seed=5)
    samples = [trajectory_to_sample(t, 0) for t in trajectories]
    advantages = [1.0, -1.0]
    inputs = _batch(trainer, samples, advantages)
    input_ids = torch.cat([inputs["prompt_ids"], inputs["completion_ids"]], dim=1)
    attention = torch.cat([inputs["prompt_mask"], inputs["completion_mask"]], dim=1)
    trainer.model.train()
    with torch.no_grad():
        new, _, _ = trainer._get_per_token_logps_and_entropies(
            trainer.model, input_ids, attention, inputs["completion_ids"].shape[1]
        )
    # an "old" policy that differs token by token, so the two ratio levels disagree
    generator = torch.Generator().manual_seed(0)
    old = new + 0.3 * torch.randn(new.shape, generator=generator)
    inputs["old_per_token_logps"] = old
    with torch.no_grad():
        loss = trainer.compute_loss(trainer.model, inputs).item()
    mask = inputs["completion_mask"] * inputs["tool_mask"]
    low, high = 0.05, 0.08
    expected = _hand_loss(new, old, mask, advantages, low, high, trainer.importance_sampling_level)
    other = _hand_loss(new, old, mask, advantages, low, high,
                       "token" if trainer.importance_sampling_level == "sequence" else "sequence")
    assert math.isclose(loss, expected, rel_tol=1e-4, abs_tol=1e-6)
    assert not math.isclose(loss, other, rel_tol=1e-3, abs_tol=1e-5)


def test_advantages_are_normalised_within_each_questions_group(tmp_path, tiny_parts):
    # question q0: rewards 1, 0 (a learning signal); question q1: 1, 1 (all equal -> advantages 0).
    def reward(example, sample):
        return 1.0 if example.id == "q1" or sample == 0 else 0.0

    trainer, parts = _trainer(tmp_path, tiny_parts, reward=reward, shuffle=True)
    prompts = [parts.examples[0].question] * 2 + [parts.examples[1].question] * 2
    trainer.model.train()
    output = trainer._generate_and_score_completions([{"prompt": p} for p in prompts])
    adv = output["advantages"].tolist()
    assert adv[0] > 0 and adv[1] < 0 and math.isclose(adv[0], -adv[1], rel_tol=1e-5)
    assert adv[2] == 0.0 and adv[3] == 0.0
    # the rollout put each question's samples where TRL expects its group, despite the agent's order
    rollout = trainer.hiexp_rollout
    assert [t.question_id for t in rollout.last_trajectories] == ["q0", "q0", "q1", "q1"]
    assert [t.sample for t in rollout.last_trajectories] == [0, 1, 0, 1]
    assert trainer._metrics["train"]["frac_reward_zero_std"][-1] == 0.5


def test_group_of_one_has_zero_advantage(tmp_path, tiny_parts):
    """With one rollout per question there is no baseline: TRL (eval path, G=1) gives advantage 0, and
    the training config refuses group_size 1 outright."""
    from hiexp.errors import HiexpError

    with pytest.raises(HiexpError, match="group_size"):
        tiny_config(tmp_path, group_size=1)
    trainer, parts = _trainer(tmp_path, tiny_parts, reward=lambda e, s: 1.0 if e.id == "q0" else 0.0)
    trainer.num_generations_eval = 1
    trainer.model.eval()
    output = trainer._generate_and_score_completions([{"prompt": e.question} for e in parts.examples[:2]])
    assert output["advantages"].tolist() == [0.0, 0.0]
