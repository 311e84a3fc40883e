"""A llama.cpp backend (``xllamacpp``) for frozen-model work on CPU: evaluation, baselines, reflection.

llama.cpp runs the quantised GGUF directly (no dequantisation to float32), which makes it faster and
lighter than the transformers backend for a model that is not being trained. It cannot sample from a
policy whose weights change, and it is text-only here (``tokenizer`` is None): use the transformers backend
for RL rollouts that need exact token ids and log-probs.

The model runs inside this process: ``xllamacpp.Server`` loads it and serves llama.cpp's HTTP API on a
random loopback port, protected by a random per-process API key. Requests go through the same async client
as :class:`~hiexp.llm.openai_http.OpenAIGenerator` (concurrency = the server's parallel slots, which
llama.cpp batches together), to llama.cpp's native ``/completion`` endpoint because it reports which stop
string fired.
"""

from __future__ import annotations

import asyncio
import os
import secrets
from pathlib import Path
from typing import Any

from hiexp.contracts.generation import Generation, SamplingParams
from hiexp.errors import HiexpError
from hiexp.llm.models import preset_for, preset_gguf
from hiexp.llm.openai_http import OpenAIGenerator


class LlamaCppGenerator(OpenAIGenerator):
    """Sample from a GGUF model with llama.cpp, in-process.

    Args:
        gguf_path: the GGUF file.
        model_id: a readable name recorded in manifests.
        parallel: sequences decoded together (llama.cpp slots); also the client's concurrency.
        context_per_sequence: KV-cache tokens per slot (prompt + generation).
        num_threads: CPU threads; default: all cores.
        timeout: seconds one request may take.
        serial_greedy: decode greedy requests (temperature 0) one at a time. llama.cpp's arithmetic depends
            slightly on which sequences share a batch, so batched greedy decoding can give different text
            for the same prompt from run to run; one at a time, the same requests give the same text.
    """

    def __init__(
        self,
        gguf_path: str | Path,
        model_id: str | None = None,
        parallel: int = 8,
        context_per_sequence: int = 4096,
        num_threads: int | None = None,
        timeout: float = 600.0,
        serial_greedy: bool = True,
    ):
        try:
            import xllamacpp
        except ImportError:
            raise HiexpError(
                'the llama.cpp backend needs xllamacpp; install it with: pip install -e ".[llamacpp]"'
            ) from None
        gguf_path = Path(gguf_path)
        if not gguf_path.is_file():
            raise HiexpError(f"{gguf_path}: no such GGUF file")
        threads = num_threads or os.cpu_count() or 1
        params = xllamacpp.CommonParams()
        params.model.path = str(gguf_path)
        params.n_parallel = parallel
        params.n_ctx = context_per_sequence * parallel
        params.cpuparams.n_threads = threads
        params.cpuparams_batch.n_threads = threads
        params.warmup = False
        params.verbosity = -1
        key = secrets.token_hex(16)
        params.api_keys = [key]
        try:
            self._server = xllamacpp.Server(params)
        except Exception as exc:  # the extension raises plain exceptions on a bad model file
            raise HiexpError(f"{gguf_path}: llama.cpp cannot load it ({exc})") from None
        super().__init__(
            f"{self._server.listening_address}/v1",
            served_model=model_id or gguf_path.name,
            endpoint="completions",
            concurrency=parallel,
            timeout=timeout,
            max_retries=1,
        )
        self._api_key = key
        self.slots = parallel  # sequences with their own KV cache: the agent keeps at most this many in flight
        self.serial_greedy = serial_greedy
        self.gguf_path = gguf_path
        self.context_per_sequence = context_per_sequence

    @classmethod
    def from_model(cls, model: str, **options: Any) -> LlamaCppGenerator:
        """A GGUF preset (``default``, ``smollm2-135m``) or a ``.gguf`` path."""
        preset = preset_for(model)
        if preset is not None:
            if preset.kind == "tiny_random":
                raise HiexpError("the tiny-random preset has no GGUF file; use the transformers backend")
            return cls(preset_gguf(model), model_id=preset.name, **options)
        if str(model).endswith(".gguf"):
            return cls(model, **options)
        raise HiexpError(f"the llama.cpp backend needs a GGUF preset or a .gguf file, got '{model}'")

    def concurrency_for(self, params: SamplingParams) -> int:
        if self.serial_greedy and params.temperature == 0:
            return 1
        return self.concurrency

    @property
    def model_id(self) -> str:  # type: ignore[override]
        return f"{self._served_model} (llama.cpp)"

    @property
    def engine(self) -> str:
        """The llama.cpp build: its version, compiler and CPU features. Builds for other CPU features (the
        prebuilt AVX2 wheel, one compiled for this CPU) decode the same greedy prompt slightly differently,
        so run manifests record this and a resume with another build is refused."""
        import xllamacpp

        info = getattr(xllamacpp, "BUILD_INFO", {}) or {}
        system = xllamacpp.get_system_info() if hasattr(xllamacpp, "get_system_info") else ""
        features = [part.split("=")[0].strip() for part in system.replace("CPU :", "").split("|")
                    if part.strip().endswith("= 1")]
        return f"xllamacpp {xllamacpp.__version__} ({info.get('compiler', '?')}; {' '.join(features)})"

    def __repr__(self) -> str:
        return f"LlamaCppGenerator(gguf={str(self.gguf_path)!r}, parallel={self.concurrency})"

    async def _complete(
        self, client: Any, kind: str, payload: Any, params: SamplingParams, seed: int | None,
        slots: dict[int, asyncio.Semaphore],
    ) -> Generation:
        if kind == "chat":
            return await super()._complete(client, kind, payload, params, seed, slots)
        body: dict[str, Any] = {
            "prompt": payload,
            "n_predict": params.max_new_tokens,
            "temperature": params.temperature,
            "top_p": params.top_p,
            "top_k": 0,
            "min_p": 0.0,
            "stop": list(params.stop),
            "cache_prompt": True,
        }
        if seed is not None:
            body["seed"] = seed
        # llama.cpp's own endpoint: it reports the stop string that fired (stop_type / stopping_word).
        root = self.base_url[: -len("/v1")]
        response = await self._request(client, "POST", "", body, url=f"{root}/completion", slots=slots)
        text = response.get("content", "")
        stop_type = response.get("stop_type")
        word = response.get("stopping_word") or None
        if stop_type == "word" and word:
            text += word
            return Generation(text=text, finish_reason="stop", stop=word)
        return Generation(text=text, finish_reason="length" if stop_type == "limit" else "stop")

    def close(self) -> None:
        """Stop the in-process server and free the model."""
        server = getattr(self, "_server", None)
        if server is not None:
            self._server = None
            del server

    def __del__(self) -> None:
        self.close()
