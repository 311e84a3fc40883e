"""The local transformers backend: batched sampling with left padding and a KV cache, token-in token-out.

Why a hand-written decoding loop instead of ``model.generate``: the agent and the RL trainer need, for
every sequence, the exact ids that were sampled, the log-probability of each, and a cut at the token that
completed a stop string. The loop below gives that directly, and it drops finished sequences from the batch
(and from the KV cache) at once, so a batch where most episodes stopped early does not keep paying for them.

Contract of a returned :class:`~hiexp.contracts.generation.Generation` (tested in ``tests/llm/test_hf.py``):

- ``token_ids`` are the sampled ids, in order, up to and including the token that ended generation: the
  token that completed a stop string, an end-of-sequence token (``<|im_end|>``, ``<|endoftext|>``, the
  model's eos ids), or the ``max_new_tokens``-th token.
- ``text == tokenizer.decode(token_ids, skip_special_tokens=False)``, except that when the last id is an
  end-of-sequence token its text is left out: ``text == decode(token_ids[:-1])``. The eos id stays in
  ``token_ids`` because a policy has to learn to emit it.
- A stop string ends generation at the first token whose decoded text completes it; ``text`` includes the
  stop string and whatever else that last token carries (text is never cut inside a token, so that
  ``decode(token_ids) == text`` holds). ``stop`` names the stop string; it is None for eos and length.
- ``finish_reason`` is ``"stop"`` (stop string or eos) or ``"length"`` (``max_new_tokens`` reached).
- ``logprobs[i]`` is the log-probability of ``token_ids[i]`` under ``log_softmax(logits / temperature)``
  (``temperature`` of the call; 1 for greedy calls): the distribution the token was drawn from before
  top-p truncation. This matches how TRL recomputes per-token log-probs for a policy sampled at that
  temperature.
- Sampling is reproducible: the same prompts, params and ``seed`` give the same outputs. Each prompt gets
  its own random stream derived from ``(seed, position in the call)``, or from ``seeds[i]`` alone when the
  caller passes one seed per prompt (the agent does, so an episode's samples do not depend on which
  other episodes share its batch).
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hiexp.contracts.generation import Generation, SamplingParams, derive_seed
from hiexp.errors import HiexpError

# Token strings that end a turn in the chat formats hiexp uses (ChatML); added to the model's eos ids when
# the vocabulary has them.
END_TOKEN_STRINGS = ("<|im_end|>", "<|endoftext|>")


class TransformersGenerator:
    """A causal LM from transformers behind the :class:`~hiexp.contracts.generation.Generator` interface.

    Args:
        model: a loaded ``PreTrainedModel`` (causal LM).
        tokenizer: its tokenizer (a ``PreTrainedTokenizerBase``).
        model_id: a readable name recorded in manifests.
        max_batch_size: prompts per forward batch; larger calls are split into chunks of similar length.
        eos_token_ids: ids that end a sequence; default: the model's eos ids plus ``<|im_end|>`` and
            ``<|endoftext|>`` when the vocabulary has them.
    """

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        model_id: str = "local",
        max_batch_size: int = 16,
        eos_token_ids: Sequence[int] | None = None,
    ):
        if max_batch_size < 1:
            raise HiexpError(f"max_batch_size must be >= 1, got {max_batch_size}")
        self.model = model
        self.tokenizer = tokenizer
        self.model_id = model_id
        self.max_batch_size = max_batch_size
        self.eos_token_ids = frozenset(eos_token_ids) if eos_token_ids is not None else self._default_eos()
        pad = tokenizer.pad_token_id
        if pad is None:
            pad = min(self.eos_token_ids) if self.eos_token_ids else 0
        self.pad_token_id = int(pad)
        self.max_context = int(getattr(model.config, "max_position_embeddings", 0) or 0)

    # ------------------------------------------------------------------------------------------ loading

    @classmethod
    def from_pretrained(
        cls,
        path_or_id: str,
        model_id: str | None = None,
        device: str = "auto",
        dtype: str = "auto",
        max_batch_size: int = 16,
        num_threads: int | None = None,
        eos_token_ids: Sequence[int] | None = None,
    ) -> TransformersGenerator:
        """Load a model directory (or hub id) with its tokenizer.

        Args:
            path_or_id: a local Hugging Face model directory or a hub id.
            model_id: the name to record; defaults to ``path_or_id``.
            device: ``"auto"`` (CUDA if available, else CPU), ``"cpu"``, ``"cuda"``, ``"cuda:1"``, ...
            dtype: ``"auto"`` (float32 on CPU, bfloat16 on CUDA), ``"float32"``, ``"bfloat16"``, ``"float16"``.
            max_batch_size: see the class.
            num_threads: CPU threads for torch (``torch.set_num_threads``); None leaves torch's default.
            eos_token_ids: see the class.
        """
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        if dtype == "auto":
            dtype = "float32" if device == "cpu" else "bfloat16"
        if dtype not in ("float32", "bfloat16", "float16"):
            raise HiexpError(f"unknown dtype '{dtype}' (float32, bfloat16, float16 or auto)")
        if num_threads:
            torch.set_num_threads(num_threads)
        try:
            tokenizer = AutoTokenizer.from_pretrained(path_or_id)
            model = AutoModelForCausalLM.from_pretrained(path_or_id, dtype=getattr(torch, dtype))
        except (OSError, ValueError) as exc:
            reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            hint = "offline, name a preset, a local directory or a .gguf file"
            if Path(path_or_id).is_dir():
                hint = "the directory may be incomplete; if it is in hiexp's cache, delete it to rebuild it"
            raise HiexpError(f"cannot load model '{path_or_id}' ({reason}); {hint}") from None
        model.to(device)
        model.eval()
        return cls(model, tokenizer, model_id or str(path_or_id), max_batch_size, eos_token_ids)

    def _default_eos(self) -> frozenset[int]:
        ids: set[int] = set()
        for source in (getattr(self.model, "generation_config", None), self.model.config):
            value = getattr(source, "eos_token_id", None) if source is not None else None
            if isinstance(value, int):
                ids.add(value)
            elif value:
                ids.update(int(v) for v in value)
        if self.tokenizer.eos_token_id is not None:
            ids.add(int(self.tokenizer.eos_token_id))
        vocab = self.tokenizer.get_vocab()
        ids.update(vocab[token] for token in END_TOKEN_STRINGS if token in vocab)
        return frozenset(ids)

    @property
    def device(self) -> Any:
        """The torch device the model's weights are on."""
        return next(self.model.parameters()).device

    def __repr__(self) -> str:
        return f"TransformersGenerator(model_id={self.model_id!r}, device={str(self.device)!r})"

    # --------------------------------------------------------------------------------------- generation

    def encode(self, prompts: Sequence[str]) -> list[list[int]]:
        """Tokenise text prompts as they are (no chat template, no added special tokens)."""
        return [list(ids) for ids in self.tokenizer(list(prompts), add_special_tokens=False)["input_ids"]]

    def generate(
        self, prompts: list[list[int]] | list[str], params: SamplingParams, seeds: Sequence[int] | None = None
    ) -> list[Generation]:
        """One generation per prompt, in order (see the module docstring for the exact contract).

        ``seeds`` (optional, one per prompt) overrides ``params.seed``: prompt ``i`` then samples from a
        stream that depends on ``seeds[i]`` alone, not on its batch-mates or its position in the call.
        """
        if not prompts:
            return []
        _check_params(params)
        if seeds is not None and len(seeds) != len(prompts):
            raise HiexpError(f"got {len(seeds)} seeds for {len(prompts)} prompts")
        if all(isinstance(p, str) for p in prompts):
            id_prompts = self.encode(prompts)  # type: ignore[arg-type]
        elif all(not isinstance(p, str) for p in prompts):
            id_prompts = [list(map(int, p)) for p in prompts]
        else:
            raise HiexpError("prompts must be all token-id lists or all strings, not a mixture")
        vocab_size = self.model.get_input_embeddings().weight.shape[0]
        for index, ids in enumerate(id_prompts):
            if not ids:
                raise HiexpError(f"prompt {index} is empty")
            if min(ids) < 0 or max(ids) >= vocab_size:
                raise HiexpError(f"prompt {index} has a token id outside the vocabulary (0..{vocab_size - 1})")
            if self.max_context and len(ids) + params.max_new_tokens > self.max_context:
                raise HiexpError(
                    f"prompt {index} has {len(ids)} tokens; with max_new_tokens={params.max_new_tokens} it "
                    f"exceeds the model's context of {self.max_context} tokens"
                )
        if seeds is not None:
            row_seeds = [derive_seed(int(seed), -1) for seed in seeds]
        else:
            base_seed = params.seed if params.seed is not None else secrets.randbits(62)
            row_seeds = [derive_seed(base_seed, i) for i in range(len(id_prompts))]
        # Chunks of similar length waste less compute on padding.
        order = sorted(range(len(id_prompts)), key=lambda i: len(id_prompts[i]))
        results: list[Generation | None] = [None] * len(id_prompts)
        # A trainer may hand over its model in training mode (dropout, gradient checkpointing that turns the
        # KV cache off): sample in eval mode and restore the mode afterwards.
        was_training = bool(getattr(self.model, "training", False))
        self.model.eval()
        try:
            for start in range(0, len(order), self.max_batch_size):
                chunk = order[start : start + self.max_batch_size]
                outputs = self._generate_batch([id_prompts[i] for i in chunk], params, [row_seeds[i] for i in chunk])
                for i, generation in zip(chunk, outputs, strict=True):
                    results[i] = generation
        finally:
            if was_training:
                self.model.train()
        return results  # type: ignore[return-value]

    def chat_batch(self, conversations: list[list[dict[str, str]]], params: SamplingParams) -> list[Generation]:
        """One assistant reply per conversation, through the tokenizer's chat template."""
        prompts = [self.apply_chat_template(messages) for messages in conversations]
        return self.generate(prompts, params)

    def chat(self, messages: list[dict[str, str]], params: SamplingParams | None = None) -> Generation:
        """One assistant reply to ``messages`` (``[{"role": ..., "content": ...}, ...]``)."""
        return self.chat_batch([messages], params or SamplingParams())[0]

    def apply_chat_template(self, messages: list[dict[str, str]], add_generation_prompt: bool = True) -> list[int]:
        """Token ids of ``messages`` rendered by the chat template (a plain list, whatever the version)."""
        if not getattr(self.tokenizer, "chat_template", None):
            raise HiexpError(f"model '{self.model_id}' has no chat template")
        text = self.tokenizer.apply_chat_template(messages, add_generation_prompt=add_generation_prompt, tokenize=False)
        return self.encode([text])[0]

    def _generate_batch(self, prompts: list[list[int]], params: SamplingParams, seeds: list[int]) -> list[Generation]:
        import torch
        from transformers import DynamicCache

        device = self.device
        batch = len(prompts)
        width = max(len(p) for p in prompts)
        input_ids = torch.full((batch, width), self.pad_token_id, dtype=torch.long)
        attention = torch.zeros((batch, width), dtype=torch.long)
        for row, ids in enumerate(prompts):
            input_ids[row, width - len(ids) :] = torch.tensor(ids, dtype=torch.long)
            attention[row, width - len(ids) :] = 1
        positions = (attention.cumsum(-1) - 1).clamp(min=0)
        input_ids, attention, positions = input_ids.to(device), attention.to(device), positions.to(device)
        rngs = [torch.Generator(device=device).manual_seed(s) for s in seeds] if params.temperature > 0 else []

        generated: list[list[int]] = [[] for _ in range(batch)]
        logprobs: list[list[float]] = [[] for _ in range(batch)]
        results: list[Generation | None] = [None] * batch
        active = list(range(batch))  # original rows still generating, in cache order
        with torch.inference_mode():
            cache = DynamicCache(config=self.model.config)
            out = self.model(
                input_ids=input_ids,
                attention_mask=attention,
                position_ids=positions,
                past_key_values=cache,
                use_cache=True,
                logits_to_keep=1,
            )
            next_position = positions[:, -1] + 1
            for step in range(params.max_new_tokens):
                logits = out.logits[:, -1, :].float()
                tokens, token_logprobs = _sample(logits, params, [rngs[r] for r in active] if rngs else [])
                token_list, logprob_list = tokens.tolist(), token_logprobs.tolist()
                keep = []
                for slot, row in enumerate(active):
                    token = token_list[slot]
                    generated[row].append(token)
                    logprobs[row].append(logprob_list[slot])
                    done = self._finish(generated[row], logprobs[row], params)
                    if done is not None:
                        results[row] = done
                    else:
                        keep.append(slot)
                if not keep or step == params.max_new_tokens - 1:
                    break
                if len(keep) < len(active):
                    index = torch.tensor(keep, device=device)
                    cache.batch_select_indices(index)
                    tokens, attention, next_position = tokens[index], attention[index], next_position[index]
                    active = [active[slot] for slot in keep]
                attention = torch.cat([attention, attention.new_ones((len(active), 1))], dim=1)
                out = self.model(
                    input_ids=tokens[:, None],
                    attention_mask=attention,
                    position_ids=next_position[:, None],
                    past_key_values=cache,
                    use_cache=True,
                )
                next_position = next_position + 1
            del cache, out
        for row in range(batch):
            if results[row] is None:  # only reachable if max_new_tokens stopped the loop
                text = self._decode(generated[row])
                results[row] = Generation(text, generated[row], logprobs[row], "length", None)
        return results  # type: ignore[return-value]

    def _decode(self, ids: list[int]) -> str:
        return self.tokenizer.decode(ids, skip_special_tokens=False, clean_up_tokenization_spaces=False)

    def _finish(self, ids: list[int], lps: list[float], params: SamplingParams) -> Generation | None:
        """The finished Generation if the last sampled token ends this sequence, else None."""
        if ids[-1] in self.eos_token_ids:
            return Generation(self._decode(ids[:-1]), ids, lps, "stop", None)
        if params.stop:
            text = self._decode(ids)
            # Checked after every token, so any occurrence is one the newest token completed.
            found = None
            for stop in params.stop:
                at = text.find(stop)
                if at != -1:
                    key = (at + len(stop), at)
                    if found is None or key < found[0]:
                        found = (key, stop)
            if found is not None:
                return Generation(text, ids, lps, "stop", found[1])
        if len(ids) >= params.max_new_tokens:
            return Generation(self._decode(ids), ids, lps, "length", None)
        return None


def _check_params(params: SamplingParams) -> None:
    if params.max_new_tokens < 1:
        raise HiexpError(f"max_new_tokens must be >= 1, got {params.max_new_tokens}")
    if params.temperature < 0:
        raise HiexpError(f"temperature must be >= 0, got {params.temperature}")
    if not 0 < params.top_p <= 1:
        raise HiexpError(f"top_p must be in (0, 1], got {params.top_p}")
    if any(not s for s in params.stop):
        raise HiexpError("stop strings must be non-empty")


def _sample(logits: Any, params: SamplingParams, rngs: list[Any]) -> tuple[Any, Any]:
    """Next tokens and their log-probs (see the module docstring) for a batch of last-position logits."""
    import torch

    if params.temperature == 0:
        tokens = logits.argmax(dim=-1)
        logp = torch.log_softmax(logits, dim=-1)
        return tokens, logp.gather(-1, tokens[:, None])[:, 0]
    logp = torch.log_softmax(logits / params.temperature, dim=-1)
    probs = logp.exp()
    if params.top_p < 1:
        sorted_probs, sorted_index = probs.sort(dim=-1, descending=True)
        # Drop a token when the tokens ranked above it already reach top_p; the top token always stays.
        outside = (sorted_probs.cumsum(dim=-1) - sorted_probs) >= params.top_p
        sorted_probs = sorted_probs.masked_fill(outside, 0.0)
        probs = torch.zeros_like(probs).scatter_(-1, sorted_index, sorted_probs)
    tokens = torch.stack([torch.multinomial(probs[row], 1, generator=rngs[row])[0] for row in range(len(rngs))])
    return tokens, logp.gather(-1, tokens[:, None])[:, 0]
