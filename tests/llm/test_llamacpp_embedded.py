"""The llama.cpp backend on the embedded Qwen2.5-Coder-0.5B GGUF (what ``eval`` and ``demo`` use by default):
stop strings, lengths, seeded sampling, chat, and greedy decoding that repeats itself exactly. A few tokens
per request, so the file runs in seconds."""

from __future__ import annotations

import pytest

from hiexp.contracts.generation import SamplingParams
from hiexp.errors import HiexpError
from hiexp.llm import load_generator

PROMPTS = [f"<|im_start|>user\nName {n} rivers of Europe.<|im_end|>\n<|im_start|>assistant\n" for n in (2, 3, 4)]


@pytest.fixture
def llama(embedded_llama):
    return embedded_llama


def test_generate_stop_and_length(llama):
    outs = llama.generate(["Count: 1, 2, 3, 4, 5,", "The"], SamplingParams(max_new_tokens=8, temperature=0, stop=[" 7"]))
    assert outs[0].stop == " 7" and outs[0].text.endswith(" 7") and outs[0].finish_reason == "stop"
    assert outs[1].finish_reason in ("length", "stop") and outs[1].token_ids == []
    assert llama.tokenizer is None and "qwen2.5-coder-0.5b" in llama.model_id and "xllamacpp" in llama.engine


def test_seeded_sampling_is_reproducible(llama):
    params = SamplingParams(max_new_tokens=6, temperature=1.0, seed=7)
    first = [o.text for o in llama.generate(["Once upon a time", "Once upon a time"], params)]
    again = [o.text for o in llama.generate(["Once upon a time", "Once upon a time"], params)]
    assert first == again


def test_chat_and_bad_models(llama):
    reply = llama.chat([{"role": "user", "content": "Say hello."}], SamplingParams(max_new_tokens=4, temperature=0))
    assert reply.text
    with pytest.raises(HiexpError, match="no GGUF file"):
        load_generator("tiny-random", backend="llamacpp")
    with pytest.raises(HiexpError, match="needs a GGUF preset"):
        load_generator("some/dir", backend="llamacpp")


def test_greedy_decoding_gives_the_same_text_whatever_else_is_in_flight(llama):
    params = SamplingParams(max_new_tokens=8, temperature=0)
    together = [g.text for g in llama.generate(PROMPTS, params)]
    alone = [llama.generate([p], params)[0].text for p in reversed(PROMPTS)][::-1]
    again = [g.text for g in llama.generate(PROMPTS, params)]
    assert together == again == alone
    assert all(text.strip() for text in together)


def test_greedy_requests_go_one_at_a_time_sampled_ones_in_parallel():
    from hiexp.llm.llamacpp import LlamaCppGenerator

    gen = LlamaCppGenerator.__new__(LlamaCppGenerator)  # no server: only the scheduling rule
    gen.concurrency, gen.serial_greedy = 4, True
    assert gen.concurrency_for(SamplingParams(temperature=0)) == 1
    assert gen.concurrency_for(SamplingParams(temperature=0.7)) == 4
    gen.serial_greedy = False
    assert gen.concurrency_for(SamplingParams(temperature=0)) == 4


def test_batched_greedy_lifts_the_serial_rule_for_a_while_and_restores_it():
    from hiexp.llm import batched_greedy

    class Serial:
        serial_greedy = True

    gen = Serial()
    with batched_greedy(gen) as inside:
        assert inside is gen and gen.serial_greedy is False
    assert gen.serial_greedy is True
    with batched_greedy(object()):  # generators without the rule are left alone
        pass
