"""Embedders: unit float32 vectors, the on-disk cache, the shipped default model, name resolution."""

from __future__ import annotations

import numpy as np
import pytest

from hiexp.errors import HiexpError
from hiexp.search.embed import (
    E5_ID,
    EmbeddingCache,
    HashingEmbedder,
    load_embedder,
    minilm_package_dir,
    resolve_embedder,
)


def test_hashing_embedder_vectors_are_unit_float32():
    embedder = load_embedder("hashing-64")
    vectors = embedder.encode_passages(["search the director first", "", "search the director first"])
    assert vectors.dtype == np.float32 and vectors.shape == (3, 64)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0)
    assert np.allclose(vectors[0], vectors[2])


def test_cache_makes_repeated_texts_free(tmp_path):
    class Counting(HashingEmbedder):
        calls: list[int] = []

        def _encode(self, texts):
            self.calls.append(len(texts))
            return super()._encode(texts)

    cache = EmbeddingCache(tmp_path / "v.sqlite")
    embedder = Counting(dim=32, cache=cache)
    first = embedder.encode_passages(["a b", "c d", "a b"])
    second = Counting(dim=32, cache=EmbeddingCache(tmp_path / "v.sqlite")).encode_passages(["c d", "a b"])
    assert Counting.calls == [2]  # one batch of the two distinct texts, then nothing
    assert np.allclose(second, first[[1, 0]])


def test_names_resolve_with_prefixes(tmp_path):
    assert resolve_embedder("e5").query_prefix == "query: "
    assert resolve_embedder(E5_ID).passage_prefix == "passage: "
    local = tmp_path / "my-model"
    local.mkdir()
    spec = resolve_embedder(str(local))
    assert spec.path == str(local.resolve()) and spec.query_prefix == ""


def test_missing_local_model_is_a_clear_error(tmp_path):
    with pytest.raises(HiexpError, match="cannot load embedding model"):
        load_embedder(str(tmp_path / "nowhere" / "e5-small"))


def test_default_model_loads_offline_from_the_package():
    assert (minilm_package_dir() / "modules.json").exists()
    embedder = load_embedder("default")
    assert embedder.model_id == "sentence-transformers/all-MiniLM-L6-v2" and embedder.dim == 384
    vectors = embedder.encode_queries(["who directed the film", "which person directed the movie", "boiling point of water"])
    assert vectors.dtype == np.float32 and np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert vectors[0] @ vectors[1] > vectors[0] @ vectors[2] + 0.2
