"""One GRPO step with the embedded 0.5B model and LoRA, through the real agent and BM25 (@slow).

The outcome reward of the real model on a HotpotQA question is almost always 0 for every sample, which
would give zero advantages and no gradient. The agent wrapper therefore overrides the reward (sample 0 of
each group scores 1) so the test checks that the real model trains; everything else is what
``hiexp train`` runs.

The model keeps its first two of 24 decoder layers: the same module names (so the LoRA targets), tokenizer,
chat template and weights, at a twelfth of the arithmetic (90 s became a few seconds on 2 cores).
"""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch
from transformers import TrainerCallback

from hiexp.io import read_jsonl

pytestmark = pytest.mark.slow


class FirstSampleWins:
    """The real ``SearchAgent`` with a reward that differs within each group."""

    def __init__(self, agent):
        self.agent = agent
        self.generator = agent.generator  # the rollout points this at the trainer's weights

    def run(self, examples, samples=1, seed=0):
        trajectories = self.agent.run(examples, samples=samples, seed=seed)
        for traj in trajectories:
            traj.rewards = {"f1": float(traj.sample == 0)}
        return trajectories


def keep_first_layers(model, layers: int) -> None:
    """Drop every decoder layer after the first ``layers`` (in place), keeping the config consistent."""
    model.model.layers = model.model.layers[:layers]
    model.config.num_hidden_layers = layers
    if getattr(model.config, "layer_types", None):
        model.config.layer_types = model.config.layer_types[:layers]


class Snapshot(TrainerCallback):
    def __init__(self):
        self.before, self.after = {}, {}

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        self.before = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}

    def on_train_end(self, args, state, control, model=None, **kwargs):
        self.after = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}


def test_a_step_with_the_embedded_model_changes_the_adapter(tmp_path):
    from hiexp.agent import SearchAgent
    from hiexp.data import corpus_path_for, load_dataset
    from hiexp.llm import load_generator
    from hiexp.search import load_retriever
    from hiexp.train.config import TrainConfig
    from hiexp.train.runner import TrainComponents, agent_config, run_training

    config = TrainConfig(
        model="qwen2.5-coder-0.5b", dataset="hotpotqa", split="train", n=1, group_size=2, batch_size=1, steps=1,
        agent={"max_turns": 1, "max_new_tokens": 4, "max_tokens": 160, "top_k": 1, "reward_metric": "f1"},
        learning_rate=1e-3, lora=True, lora_r=4, lora_alpha=8, save_steps=1, output_dir=str(tmp_path / "run"),
    )
    generator = load_generator("qwen2.5-coder-0.5b", backend="transformers")  # a fresh copy: LoRA wraps it in place
    keep_first_layers(generator.model, 2)
    examples = load_dataset("hotpotqa", split="train", n=1, seed=0)
    retriever = load_retriever(str(corpus_path_for("hotpotqa")))
    # no worked example in the system prompt: a shorter sequence to backpropagate through, same mechanics
    agent = FirstSampleWins(SearchAgent(generator, retriever, replace(agent_config(config), few_shot=False)))
    snapshot = Snapshot()

    summary = run_training(config, parts=TrainComponents(
        model=generator.model, tokenizer=generator.tokenizer, examples=examples, agent=agent,
        callbacks=[snapshot],
    ))

    assert summary["steps"] == 1
    assert snapshot.before and all("lora" in name for name in snapshot.before)
    assert any(not torch.equal(snapshot.before[n], snapshot.after[n]) for n in snapshot.before)
    records = read_jsonl(tmp_path / "run" / "metrics.jsonl")
    assert [r["step"] for r in records] == [1]
    assert all(r["reward_var"] == pytest.approx(0.25) and r["grad_norm"] > 0 for r in records)
    rollouts = read_jsonl(tmp_path / "run" / "rollouts.jsonl")
    assert len(rollouts) == 2 and all(r["model"] for r in rollouts)
