"""The one place that turns names into parts: a generator, a retriever and an experience hook.

Every command, the evaluation, the trainer and the demo assemble their parts here, so a model name, a
``--backend``, an index and a ``--hek`` mean the same thing everywhere:

- ``make_generator(model, backend)``: ``backend="auto"`` is an OpenAI-compatible client for an
  ``http(s)://.../v1`` URL, llama.cpp for a GGUF preset or ``.gguf`` file when ``xllamacpp`` is installed
  (several times faster on CPU), and transformers otherwise. Training asks for ``transformers`` itself,
  since it needs the exact token ids and log-probs of the weights it updates.
- ``make_retriever(index, dataset)``: an index directory, a corpus file or a Search-R1 ``/retrieve`` URL;
  without one, BM25 over the dataset's own closed-world corpus (built once, cached).
- ``make_experience_hook(hek, ...)``: the HEK lookup that the agent calls at the start of each episode and
  at each search, or None for no experience.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

from hiexp.contracts.experience import ExperienceHook
from hiexp.contracts.generation import Generator
from hiexp.contracts.passage import Retriever
from hiexp.errors import HiexpError


def make_generator(model: str = "default", backend: str = "auto", **options: Any) -> Generator:
    """The generator for ``model`` (a preset, a local directory, a ``.gguf`` file, a hub id or a URL)."""
    from hiexp.llm import inference_backend, load_generator

    return load_generator(model, backend=inference_backend(model, backend), **options)


def make_retriever(index: str | Path | None = None, dataset: str | None = None) -> Retriever:
    """The retriever of ``index`` (index directory, corpus file or URL), else of ``dataset``'s own corpus.

    Retrievers of a dataset's corpus are loaded once per process and shared.
    """
    if index is not None:
        from hiexp.search import load_retriever

        return load_retriever(str(index))
    if dataset is None:
        raise HiexpError("no retriever: give an index (directory, corpus file or URL) or a dataset")
    return _dataset_retriever(str(dataset))


@lru_cache(maxsize=16)
def _dataset_retriever(dataset: str) -> Retriever:
    from hiexp.data import corpus_path_for
    from hiexp.search import load_retriever

    path = corpus_path_for(dataset)
    if path is None:
        raise HiexpError(f"dataset {dataset!r} has no context paragraphs to search; give a retriever index "
                         "(--index: an index directory, a corpus file or a /retrieve URL)")
    return load_retriever(str(path))


def make_experience_hook(hek: str | Path | None, top_k: int = 5, threshold: float = 0.8, ablation: str = "full",
                         embedder: Any = None, exclude_own_question: bool = False) -> ExperienceHook | None:
    """The experience hook of a HEK (a directory or a shipped name such as ``demo``); None for no HEK.

    ``embedder`` is an embedder object or name; by default the one named in the HEK's manifest.
    """
    if hek is None or str(hek).lower() in ("", "none"):
        return None
    from hiexp.experience.retrieve import load_experience_hook

    if isinstance(embedder, str):
        from hiexp.search.embed import load_embedder

        embedder = load_embedder(embedder)
    return load_experience_hook(hek, embedder=embedder, top_k=top_k, threshold=threshold, ablation=ablation,
                                exclude_own_question=exclude_own_question)


__all__ = ["make_experience_hook", "make_generator", "make_retriever"]
