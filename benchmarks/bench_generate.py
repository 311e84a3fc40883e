"""Generation throughput of the default model: hiexp's transformers loop, HF ``generate``, llama.cpp.

Each backend decodes the same chat prompts to exactly ``--max-new-tokens`` tokens (end-of-sequence is
ignored where the backend allows, and the prompts ask for long answers), at batch size 1 and ``--batch``.
Baseline: Hugging Face ``model.generate`` on the same weights, batch and lengths, in the same run.

    HF_HUB_OFFLINE=1 python benchmarks/bench_generate.py --max-new-tokens 32 --batch 8

Prints one ``name: value`` line per measurement; the headline (llama.cpp over the transformers loop at the
larger batch, or the loop over HF generate when llama.cpp is absent) comes last.
"""

from __future__ import annotations

import argparse
import importlib.util
import time

QUESTIONS = [
    "Write a long, detailed story about a lighthouse keeper.",
    "Explain in detail how a bicycle gear system works.",
    "Describe the history of the printing press at length.",
    "Write a long essay about the water cycle.",
    "Describe, step by step, how to bake bread.",
    "Explain in detail how vaccines train the immune system.",
    "Write a long travel diary about a trip through the mountains.",
    "Describe in detail how a compiler turns code into machine instructions.",
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="default", help="model preset, directory or .gguf file")
    parser.add_argument("--max-new-tokens", type=int, default=32, help="tokens generated per sequence")
    parser.add_argument("--batch", type=int, default=8, help="the larger batch size (the smaller one is 1)")
    parser.add_argument("--no-llamacpp", action="store_true", help="skip llama.cpp even if xllamacpp is installed")
    args = parser.parse_args()

    import torch

    from hiexp.contracts.generation import SamplingParams
    from hiexp.llm import load_generator
    from hiexp.llm.hf import TransformersGenerator

    loaded = load_generator(args.model)
    # Ignore end-of-sequence so every backend decodes the same number of tokens.
    gen = TransformersGenerator(loaded.model, loaded.tokenizer, loaded.model_id, max_batch_size=64, eos_token_ids=[])
    prompts = [gen.apply_chat_template([{"role": "user", "content": q}]) for q in QUESTIONS]
    prompts = (prompts * ((args.batch + len(prompts) - 1) // len(prompts)))[: args.batch]
    params = SamplingParams(max_new_tokens=args.max_new_tokens, temperature=0)
    results: dict[str, float] = {}

    def timed(name: str, fn) -> None:
        start = time.perf_counter()
        tokens = fn()
        seconds = time.perf_counter() - start
        results[name] = tokens / seconds
        print(f"{name}: {tokens / seconds:.2f} tok/s ({tokens} tokens in {seconds:.1f} s)", flush=True)

    gen.generate(prompts[:1], SamplingParams(max_new_tokens=2, temperature=0))  # warm-up
    for batch in (1, args.batch):
        timed(
            f"hiexp_transformers_b{batch}",
            lambda b=batch: sum(len(o.token_ids) for o in gen.generate(prompts[:b], params)),
        )

        def hf_generate(b=batch) -> int:
            width = max(len(p) for p in prompts[:b])
            ids = torch.tensor([[gen.pad_token_id] * (width - len(p)) + p for p in prompts[:b]])
            mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts[:b]])
            out = gen.model.generate(
                input_ids=ids, attention_mask=mask, max_new_tokens=args.max_new_tokens,
                min_new_tokens=args.max_new_tokens, do_sample=False, pad_token_id=gen.pad_token_id,
            )
            return (out.shape[1] - width) * b

        timed(f"hf_generate_b{batch}", hf_generate)

    headline = (
        f"hiexp_over_hf_generate_b{args.batch}",
        results[f"hiexp_transformers_b{args.batch}"] / results[f"hf_generate_b{args.batch}"],
    )
    if not args.no_llamacpp and importlib.util.find_spec("xllamacpp") is not None:
        from hiexp.llm.llamacpp import LlamaCppGenerator

        tokenizer = gen.tokenizer
        texts = [tokenizer.decode(p, skip_special_tokens=False) for p in prompts]
        del loaded, gen  # one model in memory at a time
        llama = LlamaCppGenerator.from_model(args.model, parallel=args.batch)
        llama.generate(texts[:1], SamplingParams(max_new_tokens=2, temperature=0))  # warm-up
        for batch in (1, args.batch):

            def run_llama(b=batch) -> int:
                outs = llama.generate(texts[:b], params)
                return sum(len(tokenizer.encode(o.text, add_special_tokens=False)) for o in outs)

            timed(f"llamacpp_b{batch}", run_llama)
        headline = (
            f"llamacpp_over_hiexp_transformers_b{args.batch}",
            results[f"llamacpp_b{args.batch}"] / results[f"hiexp_transformers_b{args.batch}"],
        )
    print(f"{headline[0]}: {headline[1]:.2f}")


if __name__ == "__main__":
    main()
