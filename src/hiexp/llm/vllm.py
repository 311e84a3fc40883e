"""Training rollouts sampled by vLLM through TRL's own integration: token ids in, token ids and log-probs out.

TRL's ``GRPOTrainer(use_vllm=True)`` owns the vLLM engine and keeps its weights in step with the policy
(``vllm_mode="server"``: a ``trl vllm-serve`` process, vLLM's OpenAI-compatible server, reached by
``trainer.vllm_generation.vllm_client`` on the main process; ``"colocate"``: a ``vllm.LLM`` inside each
training process, ``trainer.vllm_generation.llm``). Its own ``generate`` samples one completion per prompt
with the trainer's settings, in lockstep across processes (the main process gathers every rank's prompts,
generates, and scatters the results back); the multi-turn agent instead needs one call per turn, with that
turn's token budget and stop strings, and episodes that end after different numbers of turns on different
ranks, which a lockstep collective cannot serve. ``VLLMGenerator`` therefore calls the engine directly, per
process and per turn: the prompt is the episode's exact token ids so far (never re-tokenised), and the
sampled ids come back with the log-probability of each, which the rollout hands to TRL for its
importance-sampling correction (vLLM samples with slightly different numerics than the trained model).

In server mode every rank has a client: the main process uses TRL's (the one that also pushes the weights),
the others make their own for generation only, so any number of training processes works. Each turn of all
the episodes a rank has in flight is one request carrying every prompt, so the server batches them; vLLM's
completions request has one seed for all its prompts, so server-mode episodes are not seeded per episode
(two episodes of one question would otherwise sample the same tokens at their first turn): a run is not
reproducible sample for sample there, as TRL's own server-mode sampling is not. Colocate mode keeps a seed
per prompt in one ``LLM.generate`` call. The ``Generator`` contract is the one every backend keeps
(``hiexp.contracts.generation``).
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
    """

    def __init__(self, engine: Any, tokenizer: Any, model_id: str = "vllm", mode: str = "server"):
        if mode not in ("server", "colocate"):
            raise HiexpError(f"vLLM mode must be server or colocate, got {mode!r}")
        self.engine = engine
        self.tokenizer = tokenizer
        self.model_id = model_id
        self.mode = mode
        self.engine_name = f"vllm ({mode})"

    @classmethod
    def from_trainer(cls, trainer: Any) -> VLLMGenerator:
        """The engine of a ``GRPOTrainer`` built with ``use_vllm=True``, on any rank: TRL makes the server
        client on the main process only, so another rank makes its own (generation only; the weights stay
        the main process's to push)."""
        generation = getattr(trainer, "vllm_generation", None)
        if generation is None:
            raise HiexpError("the trainer has no vLLM engine: build it with use_vllm (TrainConfig.vllm_mode)")
        mode = getattr(generation, "mode", "server")
        if mode == "server":
            engine = getattr(generation, "vllm_client", None)
            if engine is None:
                engine = generation.vllm_client = rank_client(generation)
        else:
            engine = generation.llm
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
        """TRL's ``VLLMClient.generate``: one request with every prompt of the turn, so the server batches
        them (no seed: one seed would be every prompt's, see the module docstring); sampled ids and, per
        token, the sampled token's log-probability."""
        out = self.engine.generate(
            prompts=[list(p) for p in prompts], n=1, temperature=max(params.temperature, 0.0), top_p=params.top_p,
            max_tokens=params.max_new_tokens, logprobs=0,
            generation_kwargs={"stop": list(params.stop), "include_stop_str_in_output": True},
        )
        ids = [list(c) for c in out["completion_ids"]]
        if len(ids) != len(prompts):
            raise HiexpError(f"the vLLM server answered {len(ids)} completions for {len(prompts)} prompts")
        logprobs = out.get("logprobs") or [None] * len(ids)
        ranks = out.get("logprob_token_ids") or [None] * len(ids)
        return ids, [sampled_logprobs(i, lp, r) for i, lp, r in zip(ids, logprobs, ranks, strict=True)]

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


def sampled_logprobs(token_ids: list[int], positions: Any, position_ids: Any = None) -> list[float]:
    """The sampled token's log-probability at each position of one sequence of TRL's ``(positions, ranks)``
    logprobs, found by its id in ``position_ids`` (TRL sorts each position by probability, so the sampled
    token is not always first), else the first entry; NaN where the server gave none."""
    values = []
    for j, token in enumerate(token_ids):
        entries = positions[j] if positions is not None and j < len(positions) else None
        ids = position_ids[j] if position_ids is not None and j < len(position_ids) else None
        k = ids.index(token) if ids and token in ids else 0
        value = entries[k] if entries and k < len(entries) else None
        values.append(float("nan") if value is None else float(value))
    return values


def rank_client(generation: Any) -> Any:
    """A ``VLLMClient`` of this rank for TRL's server (where TRL made none: every process but the main one),
    at the address and with the timeout TRL's own client uses; no weight-sync communicator."""
    from trl.generation.vllm_client import VLLMClient

    base_url = getattr(generation, "server_base_url", None) or \
        f"http://{generation.server_host}:{generation.server_port}"
    return VLLMClient(base_url=base_url, group_port=getattr(generation, "group_port", 51216),
                      connection_timeout=float(getattr(generation, "server_timeout", 240.0) or 0.0))
