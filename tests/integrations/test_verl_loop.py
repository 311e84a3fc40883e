"""hiexp's episode as a verl agent loop, driven on CPU by a stand-in for verl's server manager (the same
``generate(request_id, prompt_ids=..., sampling_params=...)`` interface, token ids in and out)."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import pytest

from hiexp.integrations.verl import HiexpVerlLoop, compute_score, row_example


class StandInServerManager:
    """First turn of an episode: a search; after passages arrived: the gold answer. Records every call."""

    def __init__(self, tokenizer, answer="Paris"):
        self.tokenizer = tokenizer
        self.answer = answer
        self.calls: list[dict] = []

    async def generate(self, request_id, *, prompt_ids, sampling_params, image_data=None, video_data=None):
        self.calls.append({"request_id": request_id, "sampling_params": dict(sampling_params)})
        seen = self.tokenizer.decode(prompt_ids)
        searched = "Paris is the capital of France." in seen  # the passage came back
        text = f" <answer>{self.answer}</answer>" if searched else " <search>capital of France</search>"
        ids = self.tokenizer(text, add_special_tokens=False)["input_ids"]
        return SimpleNamespace(token_ids=ids, log_probs=[-0.25] * len(ids), stop_reason="completed")


@pytest.fixture(scope="module")
def tokenizer():
    from hiexp.llm import load_generator

    return load_generator("tiny-random", device="cpu").tokenizer


ROW = {"data_source": "nq", "prompt": [{"role": "user", "content": "What is the capital of France?"}],
       "reward_model": {"ground_truth": {"target": ["Paris"]}}, "extra_info": {"index": 7, "split": "train"}}


def run_loop(tokenizer, options, answer="Paris", **lengths):
    from hiexp.contracts.passage import Passage
    from hiexp.search.bm25 import BM25Retriever

    loop = HiexpVerlLoop()
    server = StandInServerManager(tokenizer, answer)
    loop.setup(server, tokenizer, options, **lengths)
    retriever = BM25Retriever.build([Passage("p1", "France", "Paris is the capital of France."),
                                     Passage("p2", "Spain", "Madrid is the capital of Spain.")], show_progress=False)
    loop._components = {repr(sorted((k, str(v)) for k, v in options.items()
                                    if k in ("index", "dataset", "hek", "hek_top_k", "hek_threshold", "task"))):
                        (retriever, None)}
    output = asyncio.run(loop.run({"temperature": 1.0, "top_p": 1.0, "repetition_penalty": 1.0}, **ROW))
    return output, server


def test_one_episode_gives_verl_ids_a_mask_over_the_injected_passages_logprobs_and_the_reward(tokenizer):
    output, server = run_loop(tokenizer, {"format": "search_r1", "top_k": 1, "max_turns": 2, "max_new_tokens": 32})
    ids, mask, logprobs = output["response_ids"], output["response_mask"], output["response_logprobs"]
    assert len(ids) == len(mask) == len(logprobs) and 0 < sum(mask) < len(mask)
    injected = tokenizer.decode([t for t, m in zip(ids, mask) if m == 0])
    assert "Paris is the capital of France." in injected  # the passage: in the response, masked out
    assert all(lp == -0.25 for lp, m in zip(logprobs, mask) if m == 1)
    assert all(lp == 0.0 for lp, m in zip(logprobs, mask) if m == 0)
    assert output["reward_score"] == 1.0 and output["extra_fields"]["hiexp_searches"] == 1
    assert "What is the capital of France?" in tokenizer.decode(output["prompt_ids"])
    assert len(server.calls) == 2 and len({c["request_id"] for c in server.calls}) == 1  # sticky session
    assert all(c["sampling_params"]["stop"] and c["sampling_params"]["repetition_penalty"] == 1.0
               for c in server.calls)


def test_a_wrong_answer_scores_zero_and_bad_options_are_named(tokenizer):
    output, _ = run_loop(tokenizer, {"format": "search_r1", "top_k": 1, "max_new_tokens": 32}, answer="Lyon")
    assert output["reward_score"] == 0.0
    from hiexp.errors import HiexpError

    with pytest.raises(HiexpError, match="unknown hiexp agent loop option"):
        HiexpVerlLoop().setup(None, tokenizer, {"formt": "search_r1"})


def test_rows_and_the_reward_function():
    example = row_example(ROW)
    assert (example.id, example.question, example.golden_answers) == ("7", "What is the capital of France?", ["Paris"])
    assert compute_score("nq", "<think>x</think><answer>Paris</answer>", {"target": ["Paris"]}) == 1.0
    assert compute_score("nq", "<answer>Lyon</answer>", ["Paris"]) == 0.0
    assert compute_score("gsm8k", "so \\boxed{12}", ["12"], {"task": "math"}) == 1.0


def test_an_episode_longer_than_verls_lengths_is_cut_with_a_warning(tokenizer, caplog):
    options = {"format": "search_r1", "top_k": 1, "max_turns": 2, "max_new_tokens": 32}
    full, _ = run_loop(tokenizer, options)
    with caplog.at_level("WARNING", logger="hiexp.integrations.verl"):
        cut, _ = run_loop(tokenizer, options, prompt_length=40, response_length=10)
    assert cut["prompt_ids"] == full["prompt_ids"][-40:]  # the end of the prompt: the question
    assert cut["response_ids"] == full["response_ids"][:10]
    assert len(cut["response_mask"]) == len(cut["response_logprobs"]) == 10
    warnings = [r.getMessage() for r in caplog.records if r.name == "hiexp.integrations.verl"]
    assert len(warnings) == 2 and "prompt_length 40" in warnings[0] and "response_length 10" in warnings[1]
    with caplog.at_level("WARNING", logger="hiexp.integrations.verl"):
        caplog.clear()
        run_loop(tokenizer, options, prompt_length=10_000, response_length=10_000)
    assert not [r for r in caplog.records if r.name == "hiexp.integrations.verl"]  # within the limits: no cut


def test_every_sample_of_a_question_gets_its_own_trajectory_id(tokenizer):
    options = {"format": "search_r1", "top_k": 1, "max_new_tokens": 32}
    ids = {run_loop(tokenizer, options)[0]["extra_fields"]["hiexp_trajectory_id"] for _ in range(3)}
    assert len(ids) == 3 and all(i.startswith("7#") for i in ids)


def test_episodes_in_flight_are_an_option_and_run_on_a_pool_of_that_size(tokenizer):
    loop = HiexpVerlLoop()
    loop.setup(None, tokenizer, {"max_concurrent_episodes": 3})
    assert loop._executor()._max_workers == 3
    from hiexp.errors import HiexpError

    for bad in (0, -1, 2.5, "many"):
        with pytest.raises(HiexpError, match="max_concurrent_episodes"):
            HiexpVerlLoop().setup(None, tokenizer, {"max_concurrent_episodes": bad})


def test_many_episodes_are_in_flight_at_once_beyond_asyncios_default_pool(tokenizer):
    """64 episodes whose server answers only once all 64 have asked: more than asyncio's default pool
    (min(32, cores + 4) threads) could hold, so this deadlocks unless the loop's own pool is large enough."""
    from hiexp.contracts.passage import Passage
    from hiexp.search.bm25 import BM25Retriever

    class Barrier(StandInServerManager):
        def __init__(self, tokenizer, n):
            super().__init__(tokenizer)
            self.waiting, self.n, self.event = 0, n, asyncio.Event()

        async def generate(self, request_id, **kwargs):
            self.waiting += 1
            if self.waiting >= self.n:
                self.event.set()
            await asyncio.wait_for(self.event.wait(), timeout=20)
            return await super().generate(request_id, **kwargs)

    options = {"format": "search_r1", "top_k": 1, "max_turns": 1, "max_new_tokens": 16, "max_concurrent_episodes": 64}
    retriever = BM25Retriever.build([Passage("p1", "France", "Paris is the capital of France.")], show_progress=False)

    async def all_episodes():
        server = Barrier(tokenizer, 64)
        loops = []
        for _ in range(64):
            loop = HiexpVerlLoop()
            loop.setup(server, tokenizer, options)
            loop._shared = lambda: (retriever, None)
            loops.append(loop)
        return await asyncio.gather(*(lp.run({"temperature": 1.0, "top_p": 1.0}, **ROW) for lp in loops))

    outputs = asyncio.run(all_episodes())
    assert len(outputs) == 64 and len({o["extra_fields"]["hiexp_trajectory_id"] for o in outputs}) == 64
