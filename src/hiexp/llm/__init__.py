"""Generators: transformers (local), llama.cpp and OpenAI-compatible HTTP behind one interface.

``load_generator`` is the one entry point; heavy libraries are imported only when a backend is built, so
importing ``hiexp.llm`` stays cheap.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from hiexp.contracts.generation import Generation, Generator, SamplingParams
from hiexp.errors import HiexpError
from hiexp.llm.models import DEFAULT_MODEL, PRESETS, list_presets, resolve_model

BACKENDS = ("auto", "transformers", "openai", "llamacpp")

__all__ = [
    "batched_greedy",
    "BACKENDS",
    "DEFAULT_MODEL",
    "PRESETS",
    "Generation",
    "Generator",
    "SamplingParams",
    "inference_backend",
    "list_presets",
    "load_generator",
    "resolve_model",
]


@contextmanager
def batched_greedy(generator: Any) -> Iterator[Any]:
    """Let ``generator`` batch its greedy requests for a while (llama.cpp decodes them one at a time to repeat
    exactly). For reflection and summaries: a HEK is a recorded artefact, and batching is several times faster."""
    serial = getattr(generator, "serial_greedy", None)
    if serial is None:
        yield generator
        return
    generator.serial_greedy = False
    try:
        yield generator
    finally:
        generator.serial_greedy = serial


def inference_backend(model: str, backend: str = "auto") -> str:
    """The backend for a frozen model (evaluation, the demo, reflection) when ``backend`` is ``auto``.

    A GGUF model runs on llama.cpp when ``xllamacpp`` is installed: several times faster on CPU than the
    dequantised transformers model, and it reuses each episode's prompt prefix across turns. URLs go to the
    OpenAI-compatible client; everything else to transformers. Training always needs transformers.
    """
    if backend != "auto":
        return backend
    if str(model).startswith(("http://", "https://")):
        return "openai"
    import importlib.util

    from hiexp.llm.models import preset_for

    preset = preset_for(str(model))
    is_gguf = str(model).endswith(".gguf") or (preset is not None and preset.kind != "tiny_random")
    if is_gguf and importlib.util.find_spec("xllamacpp") is not None:
        return "llamacpp"
    return "transformers"


def load_generator(model: str = DEFAULT_MODEL, backend: str = "auto", **options: Any) -> Generator:
    """Build a generator for ``model``.

    Args:
        model: a preset (``default`` = ``qwen2.5-coder-1.5b``, ``qwen2.5-coder-0.5b``, ``smollm2-135m``,
            ``tiny-random``), a local
            model directory, a ``.gguf`` file, a Hugging Face hub id, or an ``http(s)://host:port/v1`` URL
            of an OpenAI-compatible server.
        backend: ``auto`` (``openai`` for URLs, else ``transformers``; commands resolve ``auto`` with
            ``inference_backend`` first), ``transformers``, ``openai`` or
            ``llamacpp`` (GGUF presets and files; frozen-model inference only).
        **options: passed to the backend: ``TransformersGenerator.from_pretrained`` (device, dtype,
            max_batch_size, num_threads, eos_token_ids), ``OpenAIGenerator`` (served_model, api_key_env,
            endpoint, concurrency, timeout, max_retries, ...) or ``LlamaCppGenerator``.
    """
    model = str(model)
    if backend not in BACKENDS:
        raise HiexpError(f"unknown backend '{backend}'; choose one of {', '.join(BACKENDS)}")
    is_url = model.startswith(("http://", "https://"))
    if backend == "auto":
        backend = "openai" if is_url else "transformers"
    if backend == "openai":
        if not is_url:
            raise HiexpError(f"backend 'openai' needs a server URL such as http://127.0.0.1:8000/v1, got '{model}'")
        from hiexp.llm.openai_http import OpenAIGenerator

        return OpenAIGenerator(model, **options)
    if is_url:
        raise HiexpError(f"a URL ({model}) needs backend 'openai' or 'auto', not '{backend}'")
    if backend == "llamacpp":
        from hiexp.llm.llamacpp import LlamaCppGenerator

        return LlamaCppGenerator.from_model(model, **options)
    _require_transformers()
    from hiexp.llm.hf import TransformersGenerator

    path, model_id = resolve_model(model)
    return TransformersGenerator.from_pretrained(path, model_id=model_id, **options)


def _require_transformers() -> None:
    import importlib.util

    for module in ("torch", "transformers"):
        if importlib.util.find_spec(module) is None:
            raise HiexpError(
                f"the transformers backend needs '{module}'; install it with: pip install -e \".\" "
                "(torch==2.13.0 for the CPU build)"
            )
