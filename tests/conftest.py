"""Shared fixtures. Tests run offline: nothing may reach a model hub."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"


# Content-addressed caches (assembled models, corpora, indexes, embeddings) are shared with the user's cache;
# caches of model replies are per test, since scripted test models share one model id.
_SHARED_CACHES = ("models", "corpora", "indexes", "embeddings")


@pytest.fixture(autouse=True)
def _isolated_reply_caches(tmp_path_factory, monkeypatch):
    real = Path(os.environ.get("HIEXP_CACHE") or Path.home() / ".cache" / "hiexp")
    root = tmp_path_factory.mktemp("hiexp-cache")
    for name in _SHARED_CACHES:
        (real / name).mkdir(parents=True, exist_ok=True)
        (root / name).symlink_to(real / name, target_is_directory=True)
    monkeypatch.setenv("HIEXP_CACHE", str(root))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """``../shared/data`` (present on developer machines and in CI)."""
    if not SHARED_DATA.exists():
        pytest.skip("../shared/data is not present")
    return SHARED_DATA


# ---- generators (engineer C) ----------------------------------------------------------------------------


@pytest.fixture(scope="session")
def tiny_generator():
    """The tiny random Qwen2 model (built in code, cached): for plumbing tests that need real token ids."""
    from hiexp.llm import load_generator

    return load_generator("tiny-random", device="cpu")


@pytest.fixture(scope="session")
def real_generator():
    """The embedded 0.5B model, loaded once per session. Use only in ``@pytest.mark.slow`` tests."""
    from hiexp.llm import load_generator

    return load_generator("qwen2.5-coder-0.5b", backend="transformers", device="cpu")


@pytest.fixture(scope="session")
def embedded_llama():
    """The embedded 0.5B GGUF on llama.cpp (the backend ``eval``, ``demo`` and reflection use), loaded once."""
    from hiexp.llm import load_generator

    generator = load_generator("qwen2.5-coder-0.5b", backend="llamacpp", parallel=4, context_per_sequence=2048)
    yield generator
    generator.close()
