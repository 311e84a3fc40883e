"""hiexp's agent loop through verl's own machinery, on CPU: verl's ``AgentLoopWorker`` (built from verl's
composed ``ppo_trainer`` config, a tiny model's directory) instantiates ``HiexpAgentLoop`` from an agent loop
file, runs one episode per row of a ``DataProto`` batch, and pads and stacks the outputs with its own
post-processing. Only the LLM server is a stand-in (verl's ``generate(request_id, prompt_ids=...,
sampling_params=...)`` returning its ``TokenOutput``). Skipped where verl is not installed
(``pip install 'hiexp[verl]'``)."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("verl.experimental.agent_loop.agent_loop")


class StandInServer:
    """A search first, the answer once the passage came back; verl's ``TokenOutput``."""

    def __init__(self, tokenizer):
        self.tokenizer = tokenizer
        self.request_ids: list[str] = []

    async def generate(self, request_id, *, prompt_ids, sampling_params, **_):
        from verl.workers.rollout.replica import TokenOutput

        self.request_ids.append(request_id)
        seen = self.tokenizer.decode(prompt_ids)
        text = " <answer>Paris</answer>" if "Paris is the capital" in seen else " <search>capital of France</search>"
        ids = self.tokenizer(text, add_special_tokens=False)["input_ids"]
        return TokenOutput(token_ids=ids, log_probs=[-0.25] * len(ids), stop_reason="completed")


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory) -> Path:
    from hiexp.llm.models import build_tiny_random

    return build_tiny_random(tmp_path_factory.mktemp("verl") / "tiny")


def worker_for(tiny_dir: Path, tmp_path: Path, prompt_length: int, response_length: int):
    """verl's AgentLoopWorker with hiexp's loop registered from an agent loop file, as a verl run has it."""
    import verl
    from hydra import compose, initialize_config_dir
    from transformers import AutoTokenizer
    from verl.experimental.agent_loop.agent_loop import AgentLoopWorker

    from hiexp.contracts.passage import Passage
    from hiexp.integrations import verl as hiexp_verl
    from hiexp.search.bm25 import BM25Retriever

    loops = tmp_path / "agent_loops.yaml"
    loops.write_text("- name: hiexp_agent\n  _target_: hiexp.integrations.verl.HiexpAgentLoop\n"
                     "  hiexp: {format: search_r1, top_k: 1, max_turns: 2, max_new_tokens: 16, dataset: x}\n")
    with initialize_config_dir(config_dir=str(Path(verl.__file__).parent / "trainer" / "config"), version_base=None):
        config = compose(config_name="ppo_trainer", overrides=[
            f"actor_rollout_ref.model.path={tiny_dir}",
            f"actor_rollout_ref.rollout.prompt_length={prompt_length}",
            f"actor_rollout_ref.rollout.response_length={response_length}",
            f"actor_rollout_ref.rollout.agent.agent_loop_config_path={loops}",
            "actor_rollout_ref.rollout.name=vllm",  # a required name; no engine is started here
        ])
    retriever = BM25Retriever.build([Passage("p1", "France", "Paris is the capital of France.")], show_progress=False)
    key = repr(sorted([("dataset", "x")]))
    hiexp_verl.HiexpVerlLoop._components[key] = (retriever, None)
    server = StandInServer(AutoTokenizer.from_pretrained(tiny_dir))
    return AgentLoopWorker(config, llm_client=server), server


def batch_of(n: int):
    from verl import DataProto

    def column(value):
        array = np.empty(n, dtype=object)
        for i in range(n):
            array[i] = value
        return array

    return DataProto.from_dict(non_tensors={
        "raw_prompt": column([{"role": "user", "content": "What is the capital of France?"}]),
        "agent_name": column("hiexp_agent"), "data_source": column("nq"),
        "reward_model": column({"ground_truth": {"target": ["Paris"]}}), "extra_info": column({"index": 7}),
        "index": column(7),
    }, meta_info={"global_steps": 1, "validate": False})


def test_verls_worker_runs_hiexp_episodes_and_stacks_them(tiny_dir, tmp_path, caplog):
    worker, server = worker_for(tiny_dir, tmp_path, prompt_length=1024, response_length=256)
    with caplog.at_level(logging.WARNING, logger="hiexp.integrations.verl"):
        out = asyncio.run(worker.generate_sequences(batch_of(4)))
    assert not [r for r in caplog.records if r.name == "hiexp.integrations.verl"]  # within verl's lengths
    assert tuple(out.batch["prompts"].shape) == (4, 1024) and tuple(out.batch["responses"].shape) == (4, 256)
    mask = out.batch["response_mask"]
    assert all(0 < int(row.sum()) < int(att.sum()) for row, att in zip(mask, out.batch["attention_mask"][:, 1024:]))
    assert [float(s) for s in out.batch["rm_scores"].sum(dim=1)] == [1.0] * 4  # the outcome reward
    ids = list(out.non_tensor_batch["hiexp_trajectory_id"])
    assert len(set(ids)) == 4 and all(i.startswith("7#") for i in ids)  # one id per sample
    assert len(set(server.request_ids)) == 4 and len(server.request_ids) == 8  # two turns, one session each


def test_an_episode_longer_than_verls_lengths_is_cut_and_still_stacks(tiny_dir, tmp_path, caplog):
    worker, _ = worker_for(tiny_dir, tmp_path, prompt_length=64, response_length=16)
    with caplog.at_level(logging.WARNING, logger="hiexp.integrations.verl"):
        out = asyncio.run(worker.generate_sequences(batch_of(2)))
    cuts = [r.getMessage() for r in caplog.records if r.name == "hiexp.integrations.verl"]
    assert len(cuts) == 4 and sum("prompt_length 64" in c for c in cuts) == 2  # one warning per cut
    assert tuple(out.batch["prompts"].shape) == (2, 64) and tuple(out.batch["responses"].shape) == (2, 16)
