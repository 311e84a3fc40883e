"""The transformers backend on the tiny random model: the token-in/token-out contract of hiexp.llm.hf."""

from __future__ import annotations

import pytest
import torch

from hiexp.contracts.generation import SamplingParams
from hiexp.errors import HiexpError
from hiexp.llm.hf import TransformersGenerator


@pytest.fixture(scope="module")
def prompts(tiny_generator):
    tok = tiny_generator.tokenizer
    texts = [
        "Question: Who wrote the novel?",
        "The bridge was completed in",
        "<|im_start|>user\nWhich river flows through the capital city of the country?<|im_end|>\n"
        "<|im_start|>assistant\n",
    ]
    return [tok.encode(t, add_special_tokens=False) for t in texts]


def decode(gen, ids):
    return gen.tokenizer.decode(ids, skip_special_tokens=False)


def test_length_finish_and_decode_equals_text(tiny_generator, prompts):
    # No eos ids here, so every sequence runs to max_new_tokens.
    gen = TransformersGenerator(tiny_generator.model, tiny_generator.tokenizer, eos_token_ids=[])
    outs = gen.generate(prompts, SamplingParams(max_new_tokens=7, temperature=1.0, seed=3))
    assert len(outs) == len(prompts)
    for out in outs:
        assert out.finish_reason == "length" and out.stop is None
        assert len(out.token_ids) == 7 and len(out.logprobs) == 7
        assert out.text == decode(gen, out.token_ids)
        assert all(lp <= 0 for lp in out.logprobs)


def test_seed_reproducible_and_seeds_differ(tiny_generator, prompts):
    params = SamplingParams(max_new_tokens=12, temperature=1.0, seed=11)
    first = tiny_generator.generate(prompts, params)
    second = tiny_generator.generate(prompts, params)
    assert [o.token_ids for o in first] == [o.token_ids for o in second]
    assert [o.logprobs for o in first] == [o.logprobs for o in second]
    other = tiny_generator.generate(prompts, SamplingParams(max_new_tokens=12, temperature=1.0, seed=12))
    assert [o.token_ids for o in first] != [o.token_ids for o in other]
    # the same prompt twice in one call draws two different samples
    twins = tiny_generator.generate([prompts[0], prompts[0]], params)
    assert twins[0].token_ids != twins[1].token_ids


def test_left_padded_batch_matches_single_greedy(tiny_generator, prompts):
    gen = TransformersGenerator(tiny_generator.model, tiny_generator.tokenizer, eos_token_ids=[])
    params = SamplingParams(max_new_tokens=10, temperature=0)
    batched = gen.generate(prompts, params)
    for prompt, out in zip(prompts, batched):
        single = gen.generate([prompt], params)[0]
        assert single.token_ids == out.token_ids
        assert single.logprobs == pytest.approx(out.logprobs, abs=1e-4)
    # splitting into chunks (sorted by length) keeps the order of the results
    chunked = TransformersGenerator(gen.model, gen.tokenizer, max_batch_size=1, eos_token_ids=[])
    assert [o.token_ids for o in chunked.generate(prompts, params)] == [o.token_ids for o in batched]


def full_forward_logprobs(gen, prompt, ids, temperature=1.0):
    """Log-probs of ``ids`` after ``prompt`` from one plain forward pass (no cache, no padding)."""
    with torch.no_grad():
        logits = gen.model(torch.tensor([prompt + ids])).logits[0].float()
    logp = torch.log_softmax(logits / temperature, dim=-1)
    return [logp[len(prompt) - 1 + i, token].item() for i, token in enumerate(ids)]


@pytest.mark.parametrize("temperature", [0.0, 0.7])
def test_logprobs_match_a_plain_forward_pass(tiny_generator, prompts, temperature):
    gen = TransformersGenerator(tiny_generator.model, tiny_generator.tokenizer, eos_token_ids=[])
    outs = gen.generate(prompts, SamplingParams(max_new_tokens=8, temperature=temperature, seed=5))
    for prompt, out in zip(prompts, outs):
        expected = full_forward_logprobs(gen, prompt, out.token_ids, temperature or 1.0)
        assert out.logprobs == pytest.approx(expected, abs=1e-4)


def test_greedy_picks_the_argmax(tiny_generator, prompts):
    out = tiny_generator.generate(prompts[:1], SamplingParams(max_new_tokens=1, temperature=0))[0]
    with torch.no_grad():
        logits = tiny_generator.model(torch.tensor([prompts[0]])).logits[0, -1]
    assert out.token_ids == [int(logits.argmax())]


def test_tiny_top_p_is_greedy(tiny_generator, prompts):
    greedy = tiny_generator.generate(prompts, SamplingParams(max_new_tokens=6, temperature=0))
    nucleus = tiny_generator.generate(prompts, SamplingParams(max_new_tokens=6, temperature=1.0, top_p=1e-6, seed=1))
    assert [o.token_ids for o in nucleus] == [o.token_ids for o in greedy]


def test_stop_string_cuts_at_the_completing_token(tiny_generator, prompts):
    gen = TransformersGenerator(tiny_generator.model, tiny_generator.tokenizer, eos_token_ids=[])
    params = SamplingParams(max_new_tokens=16, temperature=1.0, seed=21)
    free = gen.generate(prompts[:1], params)[0]
    ids = free.token_ids
    # a stop string that spans tokens 4 and 5 of the unconstrained sample
    stop = decode(gen, ids[4:6])
    assert stop.strip(), "pick a seed whose tokens 4-5 have visible text"
    cut = next(j for j in range(1, len(ids) + 1) if stop in decode(gen, ids[:j]))
    stopped = gen.generate(prompts[:1], SamplingParams(**{**params.__dict__, "stop": ["never-there", stop]}))[0]
    assert stopped.finish_reason == "stop" and stopped.stop == stop
    assert stopped.token_ids == ids[:cut]
    assert stopped.logprobs == pytest.approx(free.logprobs[:cut])
    assert stopped.text == decode(gen, stopped.token_ids)
    assert stop in stopped.text and stop not in decode(gen, stopped.token_ids[:-1])


def test_stop_inside_a_token_keeps_the_whole_token(tiny_generator, prompts):
    gen = TransformersGenerator(tiny_generator.model, tiny_generator.tokenizer, eos_token_ids=[])
    params = SamplingParams(max_new_tokens=16, temperature=1.0, seed=21)
    ids = gen.generate(prompts[:1], params)[0].token_ids
    j, piece = next((j, decode(gen, [t])) for j, t in enumerate(ids) if len(decode(gen, [t]).strip()) >= 3)
    stop = piece.strip()[:2]  # the first two visible characters of a longer token
    out = gen.generate(prompts[:1], SamplingParams(**{**params.__dict__, "stop": [stop]}))[0]
    assert out.stop == stop and len(out.token_ids) <= j + 1
    assert out.text == decode(gen, out.token_ids)  # never cut inside a token
    assert stop in out.text


def test_eos_is_kept_in_ids_but_not_in_text(tiny_generator, prompts):
    base = TransformersGenerator(tiny_generator.model, tiny_generator.tokenizer, eos_token_ids=[])
    params = SamplingParams(max_new_tokens=10, temperature=1.0, seed=4)
    ids = base.generate(prompts[:1], params)[0].token_ids
    fake_eos = ids[3]
    first = ids.index(fake_eos)
    gen = TransformersGenerator(tiny_generator.model, tiny_generator.tokenizer, eos_token_ids=[fake_eos])
    out = gen.generate(prompts[:1], params)[0]
    assert out.finish_reason == "stop" and out.stop is None
    assert out.token_ids == ids[: first + 1] and out.token_ids[-1] == fake_eos
    assert out.text == decode(gen, out.token_ids[:-1])


def test_default_eos_ids_include_im_end(tiny_generator):
    vocab = tiny_generator.tokenizer.get_vocab()
    assert vocab["<|im_end|>"] in tiny_generator.eos_token_ids
    assert vocab["<|endoftext|>"] in tiny_generator.eos_token_ids


def test_finished_rows_leave_the_batch_without_changing_the_rest(tiny_generator, prompts):
    gen = TransformersGenerator(tiny_generator.model, tiny_generator.tokenizer, eos_token_ids=[])
    params = SamplingParams(max_new_tokens=12, temperature=0)
    free = gen.generate(prompts, params)
    stop = decode(gen, free[1].token_ids[:2])  # only the second prompt stops early (most likely)
    outs = gen.generate(prompts, SamplingParams(max_new_tokens=12, temperature=0, stop=[stop]))
    for out, ref in zip(outs, free):
        if out.stop is None:
            assert out.token_ids == ref.token_ids
        else:
            assert ref.token_ids[: len(out.token_ids)] == out.token_ids
    assert outs[1].stop == stop


def test_text_prompts_are_tokenised_as_is(tiny_generator):
    params = SamplingParams(max_new_tokens=5, temperature=0)
    text = "<|im_start|>user\nhello<|im_end|>\n"
    ids = tiny_generator.tokenizer.encode(text, add_special_tokens=False)
    assert tiny_generator.generate([text], params)[0].token_ids == tiny_generator.generate([ids], params)[0].token_ids


def test_chat_helper_uses_the_chatml_template(tiny_generator):
    ids = tiny_generator.apply_chat_template([{"role": "user", "content": "hi"}])
    text = tiny_generator.tokenizer.decode(ids)
    assert text == "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"
    reply = tiny_generator.chat([{"role": "user", "content": "hi"}], SamplingParams(max_new_tokens=3, seed=0))
    assert 1 <= len(reply.token_ids) <= 3


def test_bad_input_is_a_clear_error(tiny_generator):
    with pytest.raises(HiexpError, match="prompt 1 is empty"):
        tiny_generator.generate([[1, 2], []], SamplingParams(max_new_tokens=2))
    with pytest.raises(HiexpError, match="not a mixture"):
        tiny_generator.generate([[1, 2], "text"], SamplingParams(max_new_tokens=2))
    with pytest.raises(HiexpError, match="outside the vocabulary"):
        tiny_generator.generate([[10**7]], SamplingParams(max_new_tokens=2))
    with pytest.raises(HiexpError, match="max_new_tokens"):
        tiny_generator.generate([[1]], SamplingParams(max_new_tokens=0))
    with pytest.raises(HiexpError, match="top_p"):
        tiny_generator.generate([[1]], SamplingParams(top_p=0))
    with pytest.raises(HiexpError, match="exceeds the model's context"):
        tiny_generator.generate([[1]], SamplingParams(max_new_tokens=10**6))
    assert tiny_generator.generate([], SamplingParams()) == []


def test_generator_properties(tiny_generator):
    assert tiny_generator.model_id == "tiny-random"
    assert str(tiny_generator.device) == "cpu"
    assert "tiny-random" in repr(tiny_generator)


@pytest.mark.slow
def test_real_model_generates_and_stops(real_generator):
    gen = real_generator
    prompt = gen.apply_chat_template(
        [{"role": "user", "content": "What is the capital of France? Answer with one word."}]
    )
    out = gen.generate([prompt, prompt[-5:]], SamplingParams(max_new_tokens=6, temperature=0, stop=["Paris"]))
    assert "Paris" in out[0].text and out[0].stop == "Paris" and out[0].finish_reason == "stop"
    for o in out:
        assert o.text == gen.tokenizer.decode(o.token_ids, skip_special_tokens=False)
        assert len(o.logprobs) == len(o.token_ids) <= 6
    assert gen.tokenizer.convert_tokens_to_ids("<|im_end|>") in gen.eos_token_ids


def test_per_prompt_seeds_do_not_depend_on_batch_mates(tiny_generator, prompts):
    params = SamplingParams(max_new_tokens=8, temperature=1.0)
    alone = tiny_generator.generate([prompts[0]], params, seeds=[77])[0]
    together = tiny_generator.generate([prompts[0], prompts[0]], params, seeds=[5, 77])
    assert together[1].token_ids == alone.token_ids
    assert together[0].token_ids != alone.token_ids
    with pytest.raises(HiexpError, match="2 seeds for 1 prompts"):
        tiny_generator.generate([prompts[0]], params, seeds=[1, 2])


def test_training_mode_is_restored(tiny_generator, prompts):
    params = SamplingParams(max_new_tokens=5, temperature=0)
    expected = tiny_generator.generate(prompts, params)
    tiny_generator.model.train()
    try:
        got = tiny_generator.generate(prompts, params)
        assert tiny_generator.model.training
    finally:
        tiny_generator.model.eval()
    assert [o.token_ids for o in got] == [o.token_ids for o in expected]


def test_generates_through_a_lora_wrapped_model(tiny_generator, prompts):
    import peft
    from transformers import AutoModelForCausalLM

    from hiexp.llm.models import resolve_model

    base = AutoModelForCausalLM.from_pretrained(resolve_model("tiny-random")[0])
    wrapped = peft.get_peft_model(base, peft.LoraConfig(r=4, target_modules=["q_proj", "v_proj"]))
    gen = TransformersGenerator(wrapped, tiny_generator.tokenizer, "lora", eos_token_ids=[])
    params = SamplingParams(max_new_tokens=6, temperature=0)
    plain = TransformersGenerator(tiny_generator.model, tiny_generator.tokenizer, eos_token_ids=[])
    # LoRA's B matrices start at zero, so the wrapped model samples what the base model samples
    expected = [o.token_ids for o in plain.generate(prompts, params)]
    assert [o.token_ids for o in gen.generate(prompts, params)] == expected
