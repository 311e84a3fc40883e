"""The vLLM rollout backend in training: the rollout on TRL's real ``VLLMClient`` talking to the HTTP double
of ``trl vllm-serve`` (``tests/llm/test_vllm_server_double.py``; vLLM itself needs a GPU), the logprob reader,
and the trainer arguments."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest

from hiexp.llm.vllm import VLLMGenerator


@pytest.fixture(scope="module")
def tiny():
    from hiexp.llm import load_generator

    return load_generator("tiny-random", device="cpu")


def test_the_sampled_tokens_logprob_is_found_by_its_id_not_its_rank():
    from hiexp.llm.vllm import sampled_logprobs

    # TRL sorts each position by probability: the sampled token (5) is second at position 0
    assert sampled_logprobs([5, 6], [[-0.1, -2.0], [-0.3]], [[4, 5], [6]]) == [-2.0, -0.3]
    assert all(math.isnan(v) for v in sampled_logprobs([5], None))


def test_the_agent_runs_on_it_and_the_rollout_hands_trl_the_sampler_logprobs(tiny, monkeypatch):
    import trl.generation.vllm_client as vllm_client

    from hiexp.agent import AgentConfig, SearchAgent
    from hiexp.contracts.example import Example
    from hiexp.train.rollout import AgentRollout
    from tests.llm.test_vllm_server_double import VLLMServeDouble

    monkeypatch.setattr(vllm_client, "is_vllm_available", lambda *a, **k: True)  # the client needs only HTTP
    agent = SearchAgent(tiny, None, AgentConfig(format="math", max_new_tokens=8, max_tokens=32, temperature=1.0))
    examples = [Example("m1", "Add 3 and 4.", ["7"], {"task": "math"})]
    rollout = AgentRollout(agent, {"Add 3 and 4.": examples[0]}, reward="em")
    with VLLMServeDouble(tiny) as server:
        client = vllm_client.VLLMClient(base_url=server.url, connection_timeout=5)
        trainer = SimpleNamespace(use_vllm=True, vllm_generation=SimpleNamespace(mode="server", vllm_client=client),
                                  model=SimpleNamespace(config=SimpleNamespace(_name_or_path="tiny")),
                                  processing_class=tiny.tokenizer, state=SimpleNamespace(global_step=0),
                                  accelerator=SimpleNamespace(process_index=0))
        out = rollout(["Add 3 and 4.", "Add 3 and 4."], trainer)
    assert isinstance(agent.generator, VLLMGenerator) and server.requests  # vLLM sampled the episodes
    assert len(out["logprobs"]) == 2
    for ids, mask, logprobs in zip(out["completion_ids"], out["env_mask"], out["logprobs"], strict=True):
        assert len(logprobs) == len(ids) == len(mask)
        assert all(lp == 0.0 for lp, m in zip(logprobs, mask) if m == 0)  # injected tokens: masked, no logprob
        assert any(lp < 0 for lp, m in zip(logprobs, mask) if m == 1)


def test_grpo_arguments_turn_on_trls_vllm_with_importance_sampling_correction(tmp_path):
    from hiexp.train.config import make_config
    from hiexp.train.runner import grpo_args

    config = make_config({"model": "tiny", "dataset": "inline", "n": None, "group_size": 2, "batch_size": 1,
                          "output_dir": str(tmp_path), "vllm_mode": "server",
                          "vllm_server_base_url": "http://10.0.0.5:8000"})
    args = grpo_args(config)
    assert args.use_vllm and args.vllm_mode == "server" and args.vllm_importance_sampling_correction
    assert args.vllm_server_base_url == "http://10.0.0.5:8000"
    assert not grpo_args(make_config({"model": "tiny", "dataset": "inline", "n": None, "group_size": 2,
                                      "batch_size": 1, "output_dir": str(tmp_path)})).use_vllm
