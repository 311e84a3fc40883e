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

Servers given as URLs get the deadline and retry budget of ``http_settings`` (``hiexp --http-timeout S
--http-retries N COMMAND``).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from hiexp.contracts.experience import ExperienceHook
from hiexp.contracts.generation import Generator
from hiexp.contracts.passage import Retriever
from hiexp.errors import HiexpError


@dataclass
class HttpSettings:
    """Deadline and retries of every HTTP client the components make (servers given as URLs); None keeps
    the client's own default (generator: 120 s, 4 retries; retriever: 30 s, 3 retries)."""

    timeout: float | None = None
    """Seconds one try may take for the whole answer."""
    retries: int | None = None
    """Tries after the first one, on connection errors, time-outs, 429 and 5xx."""
    concurrency: int | None = None
    """Model requests in flight per server (the generator's default: 8)."""
    routing: str | None = None
    """How model requests are spread over several servers: ``least_loaded`` (default) or ``round_robin``."""


HTTP = HttpSettings()


@contextmanager
def http_settings(timeout: float | None = None, retries: int | None = None) -> Iterator[HttpSettings]:
    """Use this deadline and retry budget for URL generators and retrievers made inside the block."""
    if timeout is not None and not 0 < timeout < float("inf"):
        raise HiexpError(f"the HTTP time-out must be > 0 seconds, got {timeout}")
    if retries is not None and retries < 0:
        raise HiexpError(f"HTTP retries must be >= 0, got {retries}")
    saved = (HTTP.timeout, HTTP.retries)
    HTTP.timeout, HTTP.retries = timeout, retries
    try:
        yield HTTP
    finally:
        HTTP.timeout, HTTP.retries = saved


def _is_url(spec: Any) -> bool:
    return str(spec).startswith(("http://", "https://"))


def make_generator(model: str = "default", backend: str = "auto", **options: Any) -> Generator:
    """The generator for ``model`` (a preset, a local directory, a ``.gguf`` file, a hub id, or the URL of
    one OpenAI-compatible server or several separated by commas)."""
    from hiexp.llm import inference_backend, load_generator

    if _is_url(model):
        for option, value in (("timeout", HTTP.timeout), ("max_retries", HTTP.retries),
                              ("concurrency", HTTP.concurrency), ("routing", HTTP.routing)):
            if value is not None:
                options.setdefault(option, value)
        # a request whose tries all failed ends its own episode (recorded as failed, retried by a re-run)
        # instead of failing every other request of the batch
        options.setdefault("on_failure", "record")
    return load_generator(model, backend=inference_backend(model, backend), **options)


def make_retriever(index: str | Path | None = None, dataset: str | None = None) -> Retriever:
    """The retriever of ``index`` (index directory, corpus file or URL), else of ``dataset``'s own corpus.

    Retrievers of a dataset's corpus are loaded once per process and shared.
    """
    if index is not None:
        from hiexp.search import load_retriever

        if _is_url(index):
            options = {"timeout": HTTP.timeout, "retries": HTTP.retries}
            return load_retriever(str(index), **{k: v for k, v in options.items() if v is not None})
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


def make_experience_hook(hek: str | Path | None, top_k: int = 5, threshold: float | None = None,
                         ablation: str = "full", embedder: Any = None, exclude_own_question: bool = False,
                         usefulness_mode: str = "off", usefulness: str | Path | None = None, cases: int | None = None,
                         case_placement: str | None = None) -> ExperienceHook | None:
    """The experience hook of a HEK (a directory or a shipped name such as ``demo``); None for no HEK.

    ``embedder`` is an embedder object or name; by default the one named in the HEK's manifest.
    ``threshold`` (the E1 cosine) defaults to the one calibrated in the HEK's manifest, else 0.8. ``cases``
    worked cases shown per episode and ``case_placement`` (``replace`` or ``beside`` the fixed example)
    default to what the HEK's manifest recommends.
    ``usefulness_mode`` (``off``, ``filter``, ``rank``) reads ``usefulness`` (a table's path; by default the
    HEK's own ``usefulness.json``).
    """
    if hek is None or str(hek).lower() in ("", "none"):
        return None
    from hiexp.experience.retrieve import load_experience_hook

    if isinstance(embedder, str):
        from hiexp.search.embed import load_embedder

        embedder = load_embedder(embedder)
    return load_experience_hook(hek, embedder=embedder, top_k=top_k, threshold=threshold, ablation=ablation,
                                exclude_own_question=exclude_own_question, usefulness_mode=usefulness_mode,
                                usefulness=usefulness, cases=cases, case_placement=case_placement)


__all__ = ["make_experience_hook", "make_generator", "make_retriever"]
