"""The rollout glue without a model: prompt grouping, token views, order and errors."""

from __future__ import annotations

import pytest

from hiexp.contracts.trajectory import Trajectory, Turn
from hiexp.errors import HiexpError
from hiexp.train.rollout import AgentRollout, group_prompts, outcome_reward_function, trajectory_to_sample

from .conftest import make_examples


def _traj(qid, sample, reward, turns=None):
    turns = turns if turns is not None else [
        Turn("prompt", "p", [1, 2]), Turn("experience", "e", [3]), Turn("prompt", "u", [4]),
        Turn("policy", "a", [5, 6]), Turn("tool", "t", [7, 8, 9]), Turn("experience", "x", [10]),
        Turn("policy", "b", [11]),
    ]
    return Trajectory(id=f"{qid}#{sample}", question_id=qid, sample=sample, format="search_r1", model="m",
                      turns=turns, rewards={"em": reward}, num_searches=1, finish="answer")


def test_group_prompts_keeps_first_seen_order_and_numbers_samples():
    distinct, slots = group_prompts(["b", "b", "a", "a", "b"])
    assert distinct == ["b", "a"]
    assert slots == [(0, 0), (0, 1), (1, 0), (1, 1), (0, 2)]


def test_token_views_mask_injected_spans_and_keep_order():
    sample = trajectory_to_sample(_traj("q", 0, 1.0), fallback_token_id=0)
    assert sample["prompt_ids"] == [1, 2, 3, 4]  # E2/E3 experience inside the prompt stays in place
    assert sample["completion_ids"] == [5, 6, 7, 8, 9, 10, 11]
    assert sample["env_mask"] == [1, 1, 0, 0, 0, 0, 1]
    empty = trajectory_to_sample(_traj("q", 0, 0.0, [Turn("prompt", "p", [1])]), fallback_token_id=99)
    assert empty["completion_ids"] == [99] and empty["env_mask"] == [0]
    with pytest.raises(HiexpError, match="no prompt token ids"):
        trajectory_to_sample(_traj("q", 0, 0.0, [Turn("prompt", "p", []), Turn("policy", "a", [])]), 0)


class ReversedAgent:
    def __init__(self, missing=False):
        self.missing = missing
        self.calls = []

    def run(self, examples, samples=1, seed=0):
        self.calls.append((len(examples), samples, seed))
        out = [_traj(e.id, s, float(s == 0)) for e in examples for s in range(samples)]
        return list(reversed(out[:-1] if self.missing else out))


def test_rollout_returns_prompt_order_rewards_and_masks():
    examples = make_examples(2)
    by_prompt = {e.question: e for e in examples}
    agent = ReversedAgent()
    rollout = AgentRollout(agent, by_prompt, reward="em", seed=3)
    prompts = [examples[1].question] * 2 + [examples[0].question] * 2
    out = rollout(prompts, trainer=None)
    assert agent.calls == [(2, 2, 3 * 1_000_003 + 17)]
    assert [t.question_id for t in rollout.last_trajectories] == ["q1", "q1", "q0", "q0"]
    assert out["hiexp_reward"] == [1.0, 0.0, 1.0, 0.0]
    assert out["logprobs"] is None and len(out["env_mask"]) == 4
    assert outcome_reward_function("em")(prompts, ["c"] * 4, hiexp_reward=out["hiexp_reward"]) == out["hiexp_reward"]
    with pytest.raises(HiexpError, match="not in the training data"):
        rollout(["unknown question"], trainer=None)
    with pytest.raises(HiexpError, match="no trajectory"):
        AgentRollout(ReversedAgent(missing=True), by_prompt)(prompts, trainer=None)
