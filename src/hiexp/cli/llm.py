"""``hiexp models list | prepare | generate``: inspect, pre-convert and try models."""

from __future__ import annotations

from typing import Annotated

import typer

models_app = typer.Typer(help="Model presets: list them, convert one ahead of time, try one.", no_args_is_help=True)


@models_app.command("list")
def list_models() -> None:
    """List the model presets and whether each is converted in the cache already."""
    from hiexp.io import cache_dir
    from hiexp.llm.models import ALIASES, CONVERSION_VERSION, PRESETS, TINY_RANDOM_VERSION, is_complete

    models = cache_dir("models")
    for name, preset in PRESETS.items():
        folder = f"tiny-random-v{TINY_RANDOM_VERSION}" if preset.kind == "tiny_random" else (
            f"{name}-v{CONVERSION_VERSION}-hf"
        )
        state = "ready" if is_complete(models / folder) else "not converted yet"
        aliases = [a for a, target in ALIASES.items() if target == name]
        label = name + (f" (= {', '.join(aliases)})" if aliases else "")
        typer.echo(f"{label}: {preset.description} [{state}]")


@models_app.command("prepare")
def prepare(
    model: Annotated[str, typer.Argument(help="A preset (default, qwen2.5-coder-0.5b, tiny-random) or a .gguf file.")] = (
        "default"
    ),
) -> None:
    """Assemble, verify and convert a model once into the cache, so later runs load it in seconds."""
    from hiexp.llm.models import resolve_model
    from hiexp.progress import console

    with console.status(f"preparing {model} (the first conversion takes about a minute)"):
        path, model_id = resolve_model(model)
    typer.echo(f"{model_id}: {path}")


@models_app.command("generate")
def generate(
    prompt: Annotated[str, typer.Argument(help="A user message; the model's chat template is applied.")],
    model: Annotated[str, typer.Option("--model", "-m", help="Preset, model directory, .gguf file or server URL.")] = (
        "default"
    ),
    backend: Annotated[str, typer.Option(help="auto (llama.cpp for GGUF models when installed, else transformers; "
                                              "openai for URLs), transformers, openai or llamacpp.")] = "auto",
    max_new_tokens: Annotated[int, typer.Option(help="Most tokens to generate.")] = 128,
    temperature: Annotated[float, typer.Option(help="Sampling temperature; 0 is greedy.")] = 0.0,
    seed: Annotated[int, typer.Option(help="Random seed for sampling.")] = 0,
) -> None:
    """Generate one reply, to check that a model loads and answers."""
    from hiexp.components import make_generator
    from hiexp.llm import SamplingParams

    generator = make_generator(model, backend)
    params = SamplingParams(max_new_tokens=max_new_tokens, temperature=temperature, seed=seed)
    reply = generator.chat([{"role": "user", "content": prompt}], params)  # type: ignore[attr-defined]
    typer.echo(reply.text)
    typer.echo(f"[{generator.model_id}; finish: {reply.finish_reason}]", err=True)


def register(app: typer.Typer) -> None:
    """Add the ``models`` command group to the ``hiexp`` app."""
    app.add_typer(models_app, name="models")
