"""Dense retrieval with a tiny deterministic embedder (hashed bag of words), so no model is loaded."""

from __future__ import annotations

import re
import zlib

import numpy as np
import pytest

from hiexp.errors import HiexpError
from hiexp.search import load_retriever
from hiexp.search.dense import DenseRetriever


class HashedWordsEmbedder:
    model_id = "hashed-words-64"
    dim = 64

    def _encode(self, texts):
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for row, text in enumerate(texts):
            for word in re.findall(r"\w+", text.lower()):
                out[row, zlib.crc32(word.encode()) % self.dim] += 1.0
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return out / np.where(norms == 0, 1.0, norms)

    encode_queries = encode_passages = _encode


def test_build_search_save_load(tmp_path, passages):
    embedder = HashedWordsEmbedder()
    retriever = DenseRetriever.build(passages, embedder)
    row = retriever.search(["Teutberga queen Lotharingia"], k=2)[0]
    assert row[0].id == "p1" and row[0].score >= row[1].score
    assert len(retriever.search(["anything"], k=50)[0]) == len(passages)
    path = retriever.save(tmp_path / "dense")
    loaded = DenseRetriever.load(path, embedder=embedder)
    assert loaded.fingerprint == retriever.fingerprint
    assert [p.id for p in loaded.search(["spices Tanzania"], k=3)[0]] == [
        p.id for p in retriever.search(["spices Tanzania"], k=3)[0]
    ]
    with pytest.raises(HiexpError, match="built with embedder"):
        embedder2 = HashedWordsEmbedder()
        embedder2.model_id = "other"
        DenseRetriever.load(path, embedder=embedder2)


def test_empty_corpus(passages):
    with pytest.raises(HiexpError, match="corpus is empty"):
        DenseRetriever.build([], HashedWordsEmbedder())


def test_load_retriever_reloads_the_named_embedder(tmp_path, passages):
    """A dense index names its embedder in meta.json; loading it asks hiexp.search.embed for that one."""
    from hiexp.search.embed import load_embedder

    embedder = load_embedder("hashing-64", cache=False)
    path = DenseRetriever.build(passages, embedder).save(tmp_path / "dense")
    retriever = load_retriever(path)
    assert isinstance(retriever, DenseRetriever) and retriever.embedder.model_id == "hashing-64"
    assert retriever.search(["Teutberga queen of Lotharingia"], k=1)[0][0].id == "p1"


@pytest.mark.parametrize("damage", ["nan", "garbage", "one-dimensional"])
def test_a_damaged_dense_index_is_refused_on_load(tmp_path, passages, damage):
    embedder = HashedWordsEmbedder()
    path = DenseRetriever.build(passages, embedder).save(tmp_path / "dense")
    vectors = np.load(path / "embeddings.npy")
    if damage == "nan":
        vectors[0, 0] = np.nan
        np.save(path / "embeddings.npy", vectors)
    elif damage == "garbage":
        (path / "embeddings.npy").write_bytes(b"not numpy")
    else:
        np.save(path / "embeddings.npy", vectors[:, 0])
    with pytest.raises(HiexpError, match="embeddings.npy") as info:
        DenseRetriever.load(path, embedder=embedder)
    assert "\n" not in str(info.value)
