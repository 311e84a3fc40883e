"""The vLLM rollout backend's contract, against a stand-in for TRL's ``VLLMClient`` (vLLM itself needs a
GPU): the tiny model samples, and the stand-in answers in the client's shapes (``completion_ids``, and
``logprobs`` as sequences x positions x ranks)."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest

from hiexp.contracts.generation import SamplingParams
from hiexp.errors import HiexpError
from hiexp.llm.vllm import VLLMGenerator


class StandInClient:
    """Answers ``VLLMClient.generate`` with the tiny model (one completion per prompt)."""

    def __init__(self, generator):
        self.generator = generator
        self.requests: list[dict] = []

    def generate(self, prompts, n=1, temperature=1.0, top_p=1.0, max_tokens=16, logprobs=0, generation_kwargs=None,
                 **_):
        kwargs = generation_kwargs or {}
        self.requests.append({"prompts": prompts, "n": n, "max_tokens": max_tokens, **kwargs})
        params = SamplingParams(max_new_tokens=max_tokens, temperature=temperature, top_p=top_p,
                                stop=list(kwargs.get("stop") or []), seed=kwargs.get("seed"))
        out = self.generator.generate([list(p) for p in prompts], params)
        return {"prompt_ids": [list(p) for p in prompts], "completion_ids": [g.token_ids for g in out],
                "logprobs": [[[lp] for lp in g.logprobs] for g in out]}


@pytest.fixture(scope="module")
def tiny():
    from hiexp.llm import load_generator

    return load_generator("tiny-random", device="cpu")


def test_one_request_per_turn_carries_every_prompt_ids_in_ids_and_logprobs_out(tiny):
    client = StandInClient(tiny)
    vllm = VLLMGenerator(client, tiny.tokenizer, model_id="tiny (vllm server)")
    prompt = tiny.tokenizer.encode("Question: who wrote it?", add_special_tokens=False)
    params = SamplingParams(max_new_tokens=12, temperature=1.0, stop=["</search>"], seed=3)
    out = vllm.generate([prompt, prompt, prompt[:-1]], params, seeds=[11, 12, 13])
    assert len(out) == 3 and len(client.requests) == 1 and len(client.requests[0]["prompts"]) == 3
    request = client.requests[0]
    assert request["include_stop_str_in_output"] and request["stop"] == ["</search>"]
    assert "seed" not in request  # one seed would be every prompt's: two episodes would sample alike
    for generation in out:
        assert generation.token_ids and len(generation.logprobs) == len(generation.token_ids)
        assert all(lp <= 0 and not math.isnan(lp) for lp in generation.logprobs)
        assert generation.finish_reason in ("stop", "length")
        eos = tiny.tokenizer.eos_token_id
        ids = generation.token_ids[:-1] if generation.token_ids[-1] == eos else generation.token_ids
        assert generation.text == tiny.tokenizer.decode(ids, skip_special_tokens=False)
    with pytest.raises(HiexpError, match="token ids"):
        vllm.generate(["text"], params)


def test_the_sampled_tokens_logprob_is_found_by_its_id_not_its_rank():
    from hiexp.llm.vllm import sampled_logprobs

    # TRL sorts each position by probability: the sampled token (5) is second at position 0
    assert sampled_logprobs([5, 6], [[-0.1, -2.0], [-0.3]], [[4, 5], [6]]) == [-2.0, -0.3]
    assert all(math.isnan(v) for v in sampled_logprobs([5], None))


def test_the_agent_runs_on_it_and_the_rollout_hands_trl_the_sampler_logprobs(tiny):
    from hiexp.agent import AgentConfig, SearchAgent
    from hiexp.contracts.example import Example
    from hiexp.train.rollout import AgentRollout

    client = StandInClient(tiny)
    agent = SearchAgent(tiny, None, AgentConfig(format="math", max_new_tokens=8, max_tokens=32, temperature=1.0))
    examples = [Example("m1", "Add 3 and 4.", ["7"], {"task": "math"})]
    rollout = AgentRollout(agent, {"Add 3 and 4.": examples[0]}, reward="em")
    trainer = SimpleNamespace(use_vllm=True, vllm_generation=SimpleNamespace(mode="server", vllm_client=client),
                              model=SimpleNamespace(config=SimpleNamespace(_name_or_path="tiny")),
                              processing_class=tiny.tokenizer, state=SimpleNamespace(global_step=0),
                              accelerator=SimpleNamespace(process_index=0))
    out = rollout(["Add 3 and 4.", "Add 3 and 4."], trainer)
    assert isinstance(agent.generator, VLLMGenerator) and client.requests  # vLLM sampled the episodes
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
