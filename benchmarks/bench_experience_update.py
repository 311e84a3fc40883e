"""One incremental HEK update: 1,000 new E1 entries into a 100k-entry HEK, against a full rebuild.

The HEK is built by hiexp's own ``build_hek`` from synthetic E1 entries (unit vectors of dimension 384
around 5,000 topic centres); the new entries are drawn the same way, so most of them land in existing
clusters and some start new ones. Embeddings are looked up from a table (the "embedding cached" case) and
summaries come from a stub that answers at once, so the times are hiexp's own work: deduplication,
placement, clustering of what fits nowhere, re-summarising bookkeeping, the new HEK and its checks. The
baseline, in the same run, is a full rebuild of the updated E1 set with ``build_hek``; the count of
clusters each one sends to the summariser is what an LLM would be asked for.

    python benchmarks/bench_experience_update.py [--n 100000] [--new 1000]
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

from hiexp.contracts.generation import Generation
from hiexp.experience.build import BuildConfig, build_hek
from hiexp.experience.schema import Entry
from hiexp.experience.summarize import SummarizeConfig
from hiexp.experience.update import UpdateConfig, update_hek


def unit(a: np.ndarray) -> np.ndarray:
    return (a / np.linalg.norm(a, axis=1, keepdims=True)).astype(np.float32)


class TableEmbedder:
    """Title -> vector from a table; a summary "about: T" gets the vector of T."""

    def __init__(self, dim: int):
        self.dim, self.model_id, self.table = dim, "synthetic", {}

    def encode_passages(self, texts):
        return np.stack([self.table[t.removeprefix("about: ")] for t in texts]).astype(np.float32)

    encode_queries = encode_passages


class StubSummariser:
    """Answers every summary prompt at once with its first member's title; counts the prompts."""

    model_id = "stub"
    tokenizer = None

    def __init__(self):
        self.calls = 0

    def generate(self, prompts, params):
        self.calls += len(prompts)
        out = []
        for prompt in prompts:
            first = prompt.split("Title: ", 1)[1].split("\n", 1)[0]
            while first.startswith("about: "):
                first = first.removeprefix("about: ")
            out.append(Generation(text=json.dumps({"title": f"about: {first}", "description": "d"}),
                                  finish_reason="stop"))
        return out


def entries(start: int, count: int, centres: np.ndarray, rng, embedder: TableEmbedder) -> list[Entry]:
    vectors = unit(centres[rng.integers(0, len(centres), count)] + 0.8 * unit(rng.standard_normal((count, embedder.dim))))
    out = []
    for i, vector in zip(range(start, start + count), vectors, strict=True):
        title = f"lesson {i}"
        embedder.table[title] = vector
        out.append(Entry(id=f"E1-{i}", level="E1", title=title, description="d", sources={"question_id": f"q{i}"}))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000, help="E1 entries of the HEK")
    parser.add_argument("--new", type=int, default=1000, help="new E1 entries")
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--thresholds", default="1.1,1.6", help="Ward heights E1->E2, E2->E3")
    args = parser.parse_args()

    rng = np.random.default_rng(0)
    embedder = TableEmbedder(args.dim)
    centres = unit(rng.standard_normal((5000, args.dim)))
    thresholds = tuple(float(t) for t in args.thresholds.split(","))
    config = BuildConfig(thresholds=thresholds, summarize=SummarizeConfig(batch_size=256, use_cache=False))
    base = entries(0, args.n, centres, rng, embedder)
    t0 = time.perf_counter()
    hek = build_hek(base, None, embedder, StubSummariser(), config, show_progress=False)
    print(f"HEK built: {hek.counts()} in {time.perf_counter() - t0:.1f} s")
    new = entries(args.n, args.new, centres, rng, embedder)
    new_vectors = embedder.encode_passages([e.title for e in new])

    summariser = StubSummariser()
    t0 = time.perf_counter()
    updated, report = update_hek(hek, new, embedder, summariser,
                                 UpdateConfig(summarize=SummarizeConfig(batch_size=256, use_cache=False)),
                                 new_vectors=new_vectors)
    incremental = time.perf_counter() - t0
    print(f"incremental update: {incremental:.2f} s; {report.render()}")
    print(f"  clusters sent to the summariser: {summariser.calls}")

    rebuild_summariser = StubSummariser()
    t0 = time.perf_counter()
    rebuilt = build_hek([e for e in updated.entries if e.level == "E1"], None, embedder, rebuild_summariser, config,
                        show_progress=False)
    full = time.perf_counter() - t0
    print(f"full rebuild: {full:.2f} s; {rebuilt.counts()}; clusters sent to the summariser: "
          f"{rebuild_summariser.calls}")
    print(f"speed-up: {full / incremental:.1f}x, summaries {rebuild_summariser.calls} -> {summariser.calls}")
    print(f"incremental_update_seconds_{args.new}_into_{args.n}: {incremental:.2f}")


if __name__ == "__main__":
    main()
