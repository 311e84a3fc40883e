"""Nearest-entry search over one HEK level that stays fast as the HEK grows, and grows in place.

Up to ``exact_max`` entries the index is a normalised matrix in memory and a search is one matrix product:
exact, and at 10k entries about a millisecond. Above it, and when faiss is installed (``pip install
hiexp[dense]``), an inverted-file index (``faiss.IndexIVFFlat``, inner product) scans only the ``nprobe``
lists nearest the query: at 100k entries a fraction of a millisecond against about 17 ms for the matrix
product (``benchmarks/bench_experience_lookup.py``, which also reports how often both agree on the best
entry). Without faiss the matrix product is used at every size.

Entries are addressed by their ids. ``sync`` makes the index hold exactly a given list of entries, adding
the new ones and dropping the missing ones without rebuilding, so that a HEK refreshed during training
reuses the index of its parent version. ``search`` can exclude rows (the entries of an episode's own
question, entries marked harmful); candidates are over-fetched, and a row whose candidates were all
excluded is answered by the exact product.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

EXACT_MAX = 20_000


def unit_rows(matrix: np.ndarray) -> np.ndarray:
    """Rows scaled to length 1 (an all-zero row stays zero), as contiguous float32."""
    matrix = np.asarray(matrix, dtype=np.float32)
    if matrix.ndim != 2:
        raise ValueError(f"expected a 2-D matrix, got shape {matrix.shape}")
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    return np.ascontiguousarray(matrix / np.maximum(norms, 1e-12), dtype=np.float32)


def _faiss():
    try:
        import faiss
    except ImportError:
        return None
    return faiss


def top_k_indices(scores: np.ndarray, k: int) -> np.ndarray:
    """Indices of the ``k`` largest scores of each row, best first (``argpartition``, then a small sort)."""
    n = scores.shape[-1]
    k = min(k, n)
    if k <= 0:
        return np.zeros(scores.shape[:-1] + (0,), dtype=np.int64)
    if k < n:
        part = np.argpartition(-scores, k - 1, axis=-1)[..., :k]
    else:
        part = np.broadcast_to(np.arange(n), scores.shape).copy()
    order = np.argsort(-np.take_along_axis(scores, part, axis=-1), axis=-1, kind="stable")
    return np.take_along_axis(part, order, axis=-1)


class EntryIndex:
    """Inner-product search over unit vectors keyed by entry id.

    Rows are *slots*: a slot keeps its number for the life of the index (an evicted entry leaves a hole),
    so callers can precompute sets of slots to exclude. ``ids[slot]`` is the entry id (None for a hole).
    """

    def __init__(self, ids: Sequence[str], vectors: np.ndarray, dim: int | None = None,
                 exact_max: int = EXACT_MAX, nprobe: int = 16):
        vectors = np.asarray(vectors, dtype=np.float32)
        self.dim = int(vectors.shape[1]) if vectors.ndim == 2 and vectors.shape[1] else int(dim or 1)
        self.exact_max = exact_max
        self.nprobe = nprobe
        self.ids: list[str | None] = []
        self.slot_of: dict[str, int] = {}
        self._matrix = np.zeros((0, self.dim), dtype=np.float32)
        self._live = np.zeros(0, dtype=bool)
        self._ann = None
        self._quantizer = None
        self.add(ids, vectors)

    # --- contents ----------------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.slot_of)

    @property
    def kind(self) -> str:
        return "ivf" if self._ann is not None else "exact"

    def add(self, ids: Sequence[str], vectors: np.ndarray) -> list[int]:
        """Add entries (ids new to the index); returns their slots."""
        ids = list(ids)
        if not ids:
            return []
        vectors = unit_rows(np.asarray(vectors, dtype=np.float32).reshape(len(ids), -1))
        if vectors.shape[1] != self.dim:
            if len(self.slot_of) == 0:
                self.dim = int(vectors.shape[1])
                self._matrix = np.zeros((0, self.dim), dtype=np.float32)
            else:
                raise ValueError(f"vectors of dimension {vectors.shape[1]} added to an index of {self.dim}")
        duplicate = [i for i in ids if i in self.slot_of]
        if duplicate or len(set(ids)) != len(ids):
            raise ValueError(f"entry {(duplicate or ids)[0]!r} is already in the index")
        start = len(self.ids)
        slots = list(range(start, start + len(ids)))
        self.ids.extend(ids)
        self.slot_of.update(zip(ids, slots, strict=True))
        self._matrix = np.concatenate([self._matrix, vectors]) if len(self._matrix) else vectors
        self._live = np.concatenate([self._live, np.ones(len(ids), dtype=bool)])
        if self._ann is not None:
            self._ann.add_with_ids(vectors, np.asarray(slots, dtype=np.int64))
        elif len(self.slot_of) > self.exact_max:
            self._build_ann()
        return slots

    def remove(self, ids: Sequence[str]) -> None:
        """Drop entries by id (unknown ids are ignored); their slots become holes."""
        slots = [self.slot_of.pop(i) for i in ids if i in self.slot_of]
        if not slots:
            return
        for slot in slots:
            self.ids[slot] = None
        self._live[slots] = False
        if self._ann is not None:
            self._ann.remove_ids(np.asarray(slots, dtype=np.int64))
        if len(self.ids) > 1024 and len(self.slot_of) < len(self.ids) // 2:
            self._compact()

    def sync(self, ids: Sequence[str], vectors: np.ndarray) -> tuple[int, int]:
        """Hold exactly ``ids`` (with ``vectors`` aligned to them): add the new, drop the missing. Returns
        ``(added, removed)``. An entry whose id stays keeps its vector (ids are content hashes)."""
        wanted = set(ids)
        gone = [i for i in self.slot_of if i not in wanted]
        new_rows = [r for r, i in enumerate(ids) if i not in self.slot_of]
        self.remove(gone)
        vectors = np.asarray(vectors, dtype=np.float32)
        self.add([ids[r] for r in new_rows], vectors[new_rows] if new_rows else np.zeros((0, self.dim)))
        return len(new_rows), len(gone)

    def slots_of(self, ids: Sequence[str]) -> np.ndarray:
        return np.asarray([self.slot_of[i] for i in ids if i in self.slot_of], dtype=np.int64)

    def _compact(self) -> None:
        live_ids = [i for i in self.ids if i is not None]
        matrix = self._matrix[self._live]
        self.ids, self.slot_of = [], {}
        self._matrix = np.zeros((0, self.dim), dtype=np.float32)
        self._live = np.zeros(0, dtype=bool)
        self._ann = None
        self.add(live_ids, matrix)

    def _build_ann(self) -> None:
        faiss = _faiss()
        if faiss is None:
            return
        live = np.flatnonzero(self._live)
        # about 4 sqrt(n) lists, with the 39 training points per list that faiss's k-means asks for
        nlist = int(max(16, min(65536, 4 * math.sqrt(len(live)), len(live) // 39)))
        quantizer = faiss.IndexFlatIP(self.dim)
        index = faiss.IndexIVFFlat(quantizer, self.dim, nlist, faiss.METRIC_INNER_PRODUCT)
        rng = np.random.default_rng(0)
        sample = live if len(live) <= nlist * 40 else rng.choice(live, nlist * 40, replace=False)
        index.train(self._matrix[np.sort(sample)])
        index.add_with_ids(self._matrix[live], live.astype(np.int64))
        index.nprobe = self.nprobe
        self._quantizer = quantizer  # the index holds it by pointer only: keep it alive
        self._ann = index

    # --- search ------------------------------------------------------------------------------------
    def search(self, queries: np.ndarray, k: int,
               exclude: Sequence[np.ndarray | None] | None = None) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` best live slots per query (``-1`` and ``-inf`` pad short rows), never a slot of
        ``exclude[row]``. ``queries`` are unit vectors of the index's dimension."""
        queries = np.ascontiguousarray(np.asarray(queries, dtype=np.float32).reshape(-1, self.dim))
        n = len(queries)
        scores = np.full((n, k), -np.inf, dtype=np.float32)
        slots = np.full((n, k), -1, dtype=np.int64)
        if k <= 0 or not self.slot_of or n == 0:
            return scores, slots
        if self._ann is None:
            full = queries @ self._matrix.T
            if len(self.slot_of) < len(self.ids):  # holes left by removed entries
                full[:, ~self._live] = -np.inf
            for row in range(n):
                if exclude is not None and exclude[row] is not None and len(exclude[row]):
                    full[row, exclude[row]] = -np.inf
            picks = full.argmax(axis=1)[:, None] if k == 1 else top_k_indices(full, k)
            got = np.take_along_axis(full, picks, axis=1)
            scores[:, : picks.shape[1]] = got
            slots[:, : picks.shape[1]] = np.where(np.isfinite(got), picks, -1)
            return scores, slots
        extra = max(32, 4 * k)
        found_scores, found = self._ann.search(queries, k + extra)
        for row in range(n):
            banned = exclude[row] if exclude is not None else None
            keep = found[row] >= 0
            if banned is not None and len(banned):
                keep &= ~np.isin(found[row], banned)
            row_slots, row_scores = found[row][keep][:k], found_scores[row][keep][:k]
            if len(row_slots) < min(k, len(self.slot_of)) and banned is not None and len(banned):
                exact = queries[row] @ self._matrix.T  # every candidate was excluded: ask the matrix
                exact[~self._live] = -np.inf
                exact[banned] = -np.inf
                picks = top_k_indices(exact[None, :], k)[0]
                picks = picks[np.isfinite(exact[picks])]
                row_slots, row_scores = picks, exact[picks]
            slots[row, : len(row_slots)] = row_slots
            scores[row, : len(row_scores)] = row_scores
        return scores, slots


__all__ = ["EXACT_MAX", "EntryIndex", "top_k_indices", "unit_rows"]
