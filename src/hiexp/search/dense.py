"""Dense retrieval: cosine similarity between embedded queries and embedded passages.

Uses faiss (``IndexFlatIP``, exact) when it is installed and a numpy matrix product otherwise; both give
the same ranking because the embeddings are L2-normalised. The embedder is anything with
``encode_queries`` / ``encode_passages`` returning normalised float32 rows, ``model_id`` and ``dim``
(``hiexp.search.embed.load_embedder`` gives the default one). An index directory holds
``embeddings.npy``, the passage store and ``meta.json`` (written last), like the BM25 one.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from hiexp.contracts.passage import Passage, check_queries
from hiexp.errors import HiexpError
from hiexp.io import atomic_directory, atomic_write_json, stable_hash
from hiexp.search.bm25 import check_replaceable, is_index_dir, read_index_meta
from hiexp.search.corpus import (
    OFFSETS_FILE,
    PASSAGES_FILE,
    PassageList,
    PassageStore,
    corpus_sha256,
    write_passage_store,
)

INDEX_KIND = "dense"
EMBEDDINGS_FILE = "embeddings.npy"


def passage_text(passage: Passage) -> str:
    """What gets embedded for a passage: its title and text."""
    return f"{passage.title}\n{passage.text}" if passage.title else passage.text


class DenseRetriever:
    """Top-k passages by inner product of normalised embeddings (cosine similarity)."""

    def __init__(self, embeddings: np.ndarray, store, embedder, meta: dict[str, Any], path: Path | None = None):
        self.embeddings = embeddings
        self._store = store
        self.embedder = embedder
        self.meta = meta
        self.path = path
        self._faiss_index = _faiss_index(embeddings)

    @classmethod
    def build(cls, passages: Iterable[Passage], embedder, batch_size: int = 256) -> DenseRetriever:
        """Embed ``passages`` (in batches of ``batch_size``, with a progress bar) and index them in memory."""
        from hiexp.progress import progress_bar

        passages = list(passages)
        if not passages:
            raise HiexpError("the corpus is empty: there are no passages to index")
        chunks = []
        with progress_bar(transient=True) as bar:
            task = bar.add_task("embedding passages", total=len(passages))
            for start in range(0, len(passages), batch_size):
                batch = passages[start : start + batch_size]
                chunks.append(np.asarray(embedder.encode_passages([passage_text(p) for p in batch]), dtype=np.float32))
                bar.update(task, advance=len(batch))
        embeddings = np.ascontiguousarray(np.concatenate(chunks, axis=0))
        corpus_sha = corpus_sha256(passages)
        meta = {
            "kind": INDEX_KIND,
            "schema_version": 1,
            "fingerprint": f"dense-{stable_hash({'corpus_sha256': corpus_sha, 'embedder': embedder.model_id})}",
            "count": len(passages),
            "corpus_sha256": corpus_sha,
            "params": {"embedder": embedder.model_id, "dim": int(embeddings.shape[1])},
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        }
        return cls(embeddings, PassageList(passages), embedder, meta)

    def save(self, directory: str | Path, overwrite: bool = False) -> Path:
        """Write the index atomically."""
        directory = check_replaceable(Path(directory), overwrite)
        with atomic_directory(directory, is_index_dir, overwrite, what="hiexp index") as tmp:
            np.save(tmp / EMBEDDINGS_FILE, self.embeddings)
            write_passage_store(tmp, self._store)
            atomic_write_json(tmp / "meta.json", self.meta)
        self.path = directory
        return directory

    @classmethod
    def load(cls, directory: str | Path, embedder=None) -> DenseRetriever:
        """Open a saved index; without ``embedder`` the one named in ``meta.json`` is loaded."""
        directory = Path(directory)
        meta = read_index_meta(directory, expected_kind=INDEX_KIND)
        missing = [n for n in (EMBEDDINGS_FILE, PASSAGES_FILE, OFFSETS_FILE) if not (directory / n).is_file()]
        if missing:
            raise HiexpError(f"{directory}: incomplete dense index, missing {', '.join(missing)}; rebuild it")
        rebuild = "rebuild it (DenseRetriever.build(passages, embedder).save(directory))"
        try:
            embeddings = np.load(directory / EMBEDDINGS_FILE, mmap_mode="r")
        except Exception as exc:  # noqa: BLE001 - numpy raises several types for a damaged .npy
            raise HiexpError(f"{directory}: {EMBEDDINGS_FILE} is unreadable ({type(exc).__name__}); {rebuild}") from None
        if embeddings.ndim != 2 or not np.issubdtype(embeddings.dtype, np.floating):
            raise HiexpError(f"{directory}: {EMBEDDINGS_FILE} is not a 2-D float array; {rebuild}")
        if len(embeddings) and not np.isfinite(embeddings).all():
            raise HiexpError(f"{directory}: {EMBEDDINGS_FILE} holds NaN or infinite values; {rebuild}")
        if not isinstance(meta["params"].get("embedder"), str):
            raise HiexpError(f"{directory}: meta.json names no embedder; {rebuild}")
        store = PassageStore(directory, meta.get("corpus_sha256"))
        if embeddings.shape[0] != meta["count"] or len(store) != meta["count"]:
            raise HiexpError(f"{directory}: meta.json, embeddings.npy and passages disagree on the count; rebuild")
        if embedder is None:
            try:
                from hiexp.search.embed import load_embedder
            except ImportError:
                raise HiexpError(
                    f"{directory}: a dense index needs an embedder, and hiexp.search.embed is not available"
                ) from None
            embedder = load_embedder(meta["params"]["embedder"])
        if embedder.model_id != meta["params"]["embedder"]:
            raise HiexpError(
                f"{directory}: built with embedder {meta['params']['embedder']!r}, not {embedder.model_id!r}"
            )
        return cls(np.asarray(embeddings), store, embedder, meta, path=directory)

    @property
    def fingerprint(self) -> str:
        return self.meta["fingerprint"]

    def __len__(self) -> int:
        return self.meta["count"]

    def search(self, queries: list[str] | str, k: int = 3) -> list[list[Passage]]:
        """Top-``k`` passages per query by cosine similarity, best first (``k`` clamped to the corpus)."""
        queries = check_queries(queries, k)
        if not queries or k == 0:
            return [[] for _ in queries]
        k = min(k, len(self))
        vectors = np.ascontiguousarray(np.asarray(self.embedder.encode_queries(queries), dtype=np.float32))
        if self._faiss_index is not None:
            scores, positions = self._faiss_index.search(vectors, k)
        else:
            similarity = vectors @ self.embeddings.T
            positions = np.argpartition(-similarity, kth=k - 1, axis=1)[:, :k]
            scores = np.take_along_axis(similarity, positions, axis=1)
            order = np.argsort(-scores, axis=1, kind="stable")
            positions = np.take_along_axis(positions, order, axis=1)
            scores = np.take_along_axis(scores, order, axis=1)
        return [
            [self._store.get(int(pos), score=float(score)) for pos, score in zip(row_pos, row_scores, strict=True)
             if pos >= 0]
            for row_pos, row_scores in zip(positions, scores, strict=True)
        ]


def _faiss_index(embeddings: np.ndarray):
    try:
        import faiss
    except ImportError:
        return None
    index = faiss.IndexFlatIP(embeddings.shape[1])
    index.add(np.ascontiguousarray(embeddings, dtype=np.float32))
    return index
