"""Latency of one E1 match (one search query against every E1 title) at 10k and 100k entries, before and after.

Before: the retriever of hiexp <= 0.1 kept one normalised [n, dim] matrix per level and answered a query
with a matrix-vector product and an argmax (exact; its cost grows with n). After: ``EntryIndex``, which
is that same exact product up to 20k entries and an inverted-file index (faiss ``IndexIVFFlat``) above,
through the real ``ExperienceRetriever.for_queries``. Both run in this process on the same data.

Synthetic data, so nothing is downloaded: unit vectors of dimension 384 (the default embedder's) drawn
around 5,000 topic centres, and queries that are noisy copies of entries (a cosine of about 0.85 to the
entry they came from), the case in which an E1 entry is injected. ``agreement`` is the share of queries
for which the index returns the entry the exact product returns.

    python benchmarks/bench_experience_lookup.py [--sizes 10000,100000] [--repeats 300]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from hiexp.experience.retrieve import ExperienceRetriever


def unit(a: np.ndarray) -> np.ndarray:
    return (a / np.linalg.norm(a, axis=1, keepdims=True)).astype(np.float32)


class SyntheticHEK:
    def __init__(self, n: int, dim: int, rng: np.random.Generator):
        centres = unit(rng.standard_normal((5000, dim)))
        self.embeddings = unit(centres[rng.integers(0, 5000, n)] + unit(rng.standard_normal((n, dim))))
        self.entries = [{"id": f"e1-{i}", "level": "E1", "title": f"t{i}", "description": f"d{i}"} for i in range(n)]
        self.version = "synthetic"


class TableEmbedder:
    """Returns pre-drawn query vectors, so that the timing measures the lookup and not a model."""

    def __init__(self, vectors: np.ndarray):
        self.vectors, self.dim, self.model_id, self.position = vectors, vectors.shape[1], "synthetic", 0

    def encode_queries(self, texts):
        out = self.vectors[self.position : self.position + len(texts)]
        self.position = (self.position + len(texts)) % len(self.vectors)
        return out


def percentile_ms(samples: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(samples) * 1000.0, q))


def time_it(fn, repeats: int) -> list[float]:
    for _ in range(10):
        fn(0)
    out = []
    for r in range(repeats):
        t = time.perf_counter()
        fn(r)
        out.append(time.perf_counter() - t)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,100000", help="E1 entries, comma-separated")
    parser.add_argument("--dim", type=int, default=384, help="embedding dimension")
    parser.add_argument("--repeats", type=int, default=300, help="timed lookups per method")
    args = parser.parse_args()

    headline = None
    for n in [int(s) for s in args.sizes.split(",")]:
        rng = np.random.default_rng(0)
        hek = SyntheticHEK(n, args.dim, rng)
        sources = rng.integers(0, n, args.repeats + 10)
        queries = unit(hek.embeddings[sources] + 0.6 * unit(rng.standard_normal((len(sources), args.dim))))
        matrix = hek.embeddings.copy()
        before = time_it(lambda r: int(np.argmax(matrix @ queries[r])), args.repeats)
        t0 = time.perf_counter()
        retriever = ExperienceRetriever(hek, TableEmbedder(queries), threshold=0.0)
        build = time.perf_counter() - t0
        retriever.embedder.position = 0
        picks = []

        def lookup(r: int) -> None:
            picks.append(retriever.for_queries(["q"])[0].meta["best_id"])

        after = time_it(lookup, args.repeats)
        retriever.embedder.position = 0
        got = [retriever.for_queries(["q"])[0].meta["best_id"] for _ in range(args.repeats)]
        exact = [f"e1-{int(np.argmax(matrix @ queries[r]))}" for r in range(args.repeats)]
        agreement = float(np.mean([a == b for a, b in zip(got, exact, strict=True)]))
        print(f"n={n}: before (matrix-vector product): p50 {percentile_ms(before, 50):.2f} ms  "
              f"p99 {percentile_ms(before, 99):.2f} ms")
        print(f"n={n}: after ({retriever._e1.kind} index, built in {build:.2f} s): p50 {percentile_ms(after, 50):.2f} ms"
              f"  p99 {percentile_ms(after, 99):.2f} ms  agreement with exact {agreement:.3f}")
        headline = (n, percentile_ms(after, 99))
    print(f"e1_match_p99_ms_at_{headline[0]}: {headline[1]:.2f}")


if __name__ == "__main__":
    main()
