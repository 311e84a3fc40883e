"""Training rollouts sampled by vLLM through TRL's own integration: token ids in, token ids and log-probs out.

TRL's ``GRPOTrainer(use_vllm=True)`` owns the vLLM engine and keeps its weights in step with the policy
(``vllm_mode="server"``: a ``trl vllm-serve`` process reached by ``trainer.vllm_generation.vllm_client``;
``"colocate"``: a ``vllm.LLM`` inside each training process, ``trainer.vllm_generation.llm``). Its own
``generate`` samples one completion per prompt with the trainer's settings, in lockstep across processes;
the multi-turn agent instead needs one call per turn, with that turn's token budget and stop strings, and
episodes that end after different numbers of turns on different ranks. ``VLLMGenerator`` therefore calls the
engine directly, per process and per turn: the prompt is the episode's exact token ids so far (never
re-tokenised), and the sampled ids come back with the log-probability of each, which the rollout hands to
TRL for its importance-sampling correction (vLLM samples with slightly different numerics than the
trained model). The ``Generator`` contract is the one every backend keeps (``hiexp.contracts.generation``).
"""

from __future__ import annotations

from typing import Any

from hiexp.contracts.generation import Generation, SamplingParams, derive_seed
from hiexp.errors import HiexpError


class VLLMGenerator:
    """A vLLM engine of TRL's behind the ``Generator`` interface.

    Args:
        engine: TRL's ``VLLMClient`` (server mode; anything with its ``generate(prompts, n, temperature,
            top_p, max_tokens, logprobs, generation_kwargs)``) or a ``vllm.LLM`` (colocate mode).
        tokenizer: the policy's tokenizer (decodes the sampled ids; its eos id marks a finished turn).
        model_id: what manifests and trajectories record.
        mode: ``server`` or ``colocate``.
        concurrency: requests in flight at once in server mode.
    """

    def __init__(self, engine: Any, tokenizer: Any, model_id: str = "vllm", mode: str = "server",
                 concurrency: int = 64):
        if mode not in ("server", "colocate"):
            raise HiexpError(f"vLLM mode must be server or colocate, got {mode!r}")
        self.engine = engine
        self.tokenizer = tokenizer
        self.model_id = model_id
        self.mode = mode
        self.concurrency = concurrency
        self.engine_name = f"vllm ({mode})"

    @classmethod
    def from_trainer(cls, trainer: Any) -> VLLMGenerator:
        """The engine of a ``GRPOTrainer`` built with ``use_vllm=True``."""
        generation = getattr(trainer, "vllm_generation", None)
        if generation is None:
            raise HiexpError("the trainer has no vLLM engine: build it with use_vllm (TrainConfig.vllm_mode)")
        mode = getattr(generation, "mode", "server")
        engine = generation.vllm_client if mode == "server" else generation.llm
        model_id = str(getattr(getattr(trainer.model, "config", None), "_name_or_path", "") or "policy")
        return cls(engine, trainer.processing_class, model_id=f"{model_id} (vllm {mode})", mode=mode)

    def generate(self, prompts: list[list[int]], params: SamplingParams, seeds: list[int] | None = None
                 ) -> list[Generation]:
        """One completion per token-id prompt, in order, with the log-probability of every sampled token."""
        if any(isinstance(p, str) for p in prompts):
            raise HiexpError("the vLLM rollout backend takes token ids (the agent's exact history), not text")
        if seeds is not None and len(seeds) != len(prompts):
            raise HiexpError(f"got {len(seeds)} seeds for {len(prompts)} prompts")
        if not prompts:
            return []
        seeds = list(seeds) if seeds is not None else [
            derive_seed(params.seed if params.seed is not None else 0, i, bits=31) for i in range(len(prompts))]
        if self.mode == "server":
            ids, logprobs = self._server(prompts, params, seeds)
        else:
            ids, logprobs = self._colocate(prompts, params, seeds)
        return [generation_from_ids(self.tokenizer, i, lp, params) for i, lp in zip(ids, logprobs, strict=True)]

    # ------------------------------------------------------------------------------------------- engines

    def _server(self, prompts: list[list[int]], params: SamplingParams, seeds: list[int]):
        """TRL's ``VLLMClient.generate``, one request per prompt (a request carries one seed), ``concurrency``
        of them in flight (TRL's client sends its own parallel requests the same way): sampled ids and, per
        token, the sampled token's log-probability."""
        from concurrent.futures import ThreadPoolExecutor

        def one(prompt_and_seed: tuple[list[int], int]) -> tuple[list[int], list[float]]:
            prompt, seed = prompt_and_seed
            out = self.engine.generate(
                prompts=[list(prompt)], n=1, temperature=max(params.temperature, 0.0), top_p=params.top_p,
                max_tokens=params.max_new_tokens, logprobs=0,
                generation_kwargs={"stop": list(params.stop), "include_stop_str_in_output": True, "seed": int(seed)},
            )
            token_ids = list(out["completion_ids"][0])
            return token_ids, _first_logprobs(out.get("logprobs"), len(token_ids))

        with ThreadPoolExecutor(max_workers=max(1, min(self.concurrency, len(prompts)))) as pool:
            results = list(pool.map(one, zip(prompts, seeds, strict=True)))
        return [r[0] for r in results], [r[1] for r in results]

    def _colocate(self, prompts: list[list[int]], params: SamplingParams, seeds: list[int]):
        """``vllm.LLM.generate`` on this process's own engine, all prompts in one call."""
        from vllm import SamplingParams as VLLMSamplingParams

        sampling = [VLLMSamplingParams(n=1, temperature=max(params.temperature, 0.0), top_p=params.top_p,
                                       max_tokens=params.max_new_tokens, logprobs=0, stop=list(params.stop) or None,
                                       include_stop_str_in_output=True, seed=int(seed)) for seed in seeds]
        outputs = self.engine.generate([{"prompt_token_ids": list(p)} for p in prompts], sampling, use_tqdm=False)
        ids, logprobs = [], []
        for output in outputs:
            completion = output.outputs[0]
            token_ids = list(completion.token_ids)
            ids.append(token_ids)
            logprobs.append([float(step[token].logprob) if step and token in step else float("nan")
                             for token, step in zip(token_ids, completion.logprobs or [None] * len(token_ids))])
        return ids, logprobs

def generation_from_ids(tokenizer: Any, token_ids: list[int], logprobs: list[float] | None,
                        params: SamplingParams) -> Generation:
    """The contract's view of ids sampled by a token-id server (vLLM, verl's rollout servers): text decoded
    from the ids, the stop string that fired (the server keeps it in the output when asked to), eos left out
    of the text but kept in the ids, ``length`` when the turn's budget ran out."""
    token_ids = list(token_ids)
    eos = getattr(tokenizer, "eos_token_id", None)
    ended_by_eos = bool(token_ids) and token_ids[-1] == eos
    text = tokenizer.decode(token_ids[:-1] if ended_by_eos else token_ids, skip_special_tokens=False)
    stop = next((s for s in params.stop if text.endswith(s)), None)
    finished = stop is not None or ended_by_eos or len(token_ids) < params.max_new_tokens
    return Generation(text=text, token_ids=token_ids, logprobs=list(logprobs) if logprobs is not None else None,
                      finish_reason="stop" if finished else "length", stop=stop)


def _first_logprobs(per_sequence: Any, length: int) -> list[float]:
    """The sampled token's log-probability at each position of TRL's ``(sequences, positions, ranks)``
    logprobs (rank 0 is the sampled token when asked with ``logprobs=0``); NaN where the server gave none."""
    if not per_sequence:
        return [float("nan")] * length
    positions = per_sequence[0]
    values = [float(p[0]) if p and p[0] is not None else float("nan") for p in positions]
    return (values + [float("nan")] * length)[:length]
