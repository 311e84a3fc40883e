"""BM25 queries per second: hiexp's bm25s index against rank-bm25's BM25Okapi, in one run.

Both sides get the same passages, the same queries and the same terms (hiexp's tokenizer: lower case,
English stop words, Snowball stemming) and the same k1/b, so the only difference is the scoring engine:
bm25s precomputes a sparse term x passage score matrix, rank-bm25 rescans every passage's term counts
in Python for each query. Query tokenisation is inside the timed region for both.

Two settings:
1. the shipped closed-world HotpotQA corpus (the demo set's paragraphs) with its questions as queries;
2. the same corpus repeated with distinct ids up to ``--passages`` (100k) passages. rank-bm25 manages only
   a few queries per second there, so it answers the first ``--slow-queries`` questions (default 20)
   while hiexp answers all of them.

Run: ``python benchmarks/bench_retrieval.py`` (about a minute on 2 cores). The last line is the headline:
the speed-up at 100k passages.
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def load_inputs():
    from hiexp.data import DEMO_DATASET, corpus_path_for, load_corpus, load_dataset

    passages = load_corpus(corpus_path_for(DEMO_DATASET))
    questions = [example.question for example in load_dataset(DEMO_DATASET)]
    return passages, questions


def repeat_corpus(passages, total):
    from hiexp.contracts.passage import Passage

    out = []
    copy = 0
    while len(out) < total:
        for p in passages:
            if len(out) == total:
                break
            out.append(Passage(id=f"{p.id}#{copy}", title=p.title, text=p.text))
        copy += 1
    return out


def time_hiexp(passages, queries, k, k1, b, repeats):
    from hiexp.search.bm25 import BM25Config, BM25Retriever

    started = time.perf_counter()
    retriever = BM25Retriever.build(passages, BM25Config(k1=k1, b=b), show_progress=False)
    build_s = time.perf_counter() - started
    retriever.search(queries[:5], k=k)  # warm-up
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        results = retriever.search(queries, k=k)
        best = min(best, time.perf_counter() - started)
    return retriever, results, build_s, len(queries) / best


def time_rank_bm25(passages, queries, k, k1, b, tokenizer):
    from rank_bm25 import BM25Okapi

    started = time.perf_counter()
    model = BM25Okapi([tokenizer.terms(f"{p.title}\n{p.text}") for p in passages], k1=k1, b=b)
    build_s = time.perf_counter() - started
    started = time.perf_counter()
    results = []
    for query in queries:
        terms = tokenizer.query_terms(query)
        scores = model.get_scores(terms)
        top = np.argpartition(-scores, kth=min(k, len(scores) - 1))[:k]
        top = top[np.argsort(-scores[top], kind="stable")]
        results.append([passages[i].id for i in top if scores[i] > 0])
    seconds = time.perf_counter() - started
    return results, build_s, len(queries) / seconds


def overlap_at_k(ours, theirs):
    """Mean share of rank-bm25's top-k passages that hiexp also returns, a check that both rank alike.

    Copies of one passage (``id#copy``) count as the same passage: they tie, and each engine may pick
    different copies.
    """
    def base(pid):
        return pid.split("#", 1)[0]

    shares = [
        len({base(p.id) for p in a} & {base(i) for i in b}) / len({base(i) for i in b})
        for a, b in zip(ours, theirs, strict=False)
        if b
    ]
    return sum(shares) / max(1, len(shares))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--k", type=int, default=10, help="passages per query")
    parser.add_argument("--k1", type=float, default=1.5, help="BM25 k1 for both engines (rank-bm25's default)")
    parser.add_argument("--b", type=float, default=0.75, help="BM25 b for both engines (rank-bm25's default)")
    parser.add_argument("--passages", type=int, default=100_000, help="size of the repeated corpus")
    parser.add_argument("--slow-queries", type=int, default=20, help="queries rank-bm25 answers at 100k")
    parser.add_argument("--repeats", type=int, default=3, help="timed passes of hiexp's batch (best kept)")
    args = parser.parse_args()

    import bm25s
    import rank_bm25  # noqa: F401 - fail early with a clear ImportError

    from hiexp.search.tokenize import Tokenizer

    passages, queries = load_inputs()
    tokenizer = Tokenizer()
    print(f"bm25s {bm25s.__version__}, {os.cpu_count()} CPUs, k={args.k}, k1={args.k1}, b={args.b}")

    print(f"\n[1] shipped HotpotQA corpus: {len(passages)} passages, {len(queries)} questions (both engines)")
    _, ours, build_s, ours_qps = time_hiexp(passages, queries, args.k, args.k1, args.b, args.repeats)
    print(f"  hiexp BM25Retriever: build {build_s:.2f} s, {ours_qps:,.0f} queries/s")
    theirs, their_build_s, their_qps = time_rank_bm25(passages, queries, args.k, args.k1, args.b, tokenizer)
    print(f"  rank-bm25 BM25Okapi: build {their_build_s:.2f} s, {their_qps:,.1f} queries/s")
    print(f"  top-{args.k} overlap with rank-bm25: {overlap_at_k(ours, theirs):.3f}")
    small_ratio = ours_qps / their_qps
    print(f"  speed-up: {small_ratio:.1f}x")

    big = repeat_corpus(passages, args.passages)
    slow = queries[: args.slow_queries]
    print(f"\n[2] repeated corpus: {len(big)} passages (distinct ids); hiexp {len(queries)} questions, "
          f"rank-bm25 the first {len(slow)}")
    retriever, ours_big, build_s, ours_big_qps = time_hiexp(big, queries, args.k, args.k1, args.b, args.repeats)
    print(f"  hiexp BM25Retriever: build {build_s:.1f} s, {ours_big_qps:,.0f} queries/s")
    theirs_big, their_build_s, their_big_qps = time_rank_bm25(big, slow, args.k, args.k1, args.b, tokenizer)
    print(f"  rank-bm25 BM25Okapi: build {their_build_s:.1f} s, {their_big_qps:,.2f} queries/s")
    print(f"  top-{args.k} overlap with rank-bm25 (first {len(slow)}): {overlap_at_k(ours_big, theirs_big):.3f}")

    import tempfile

    from hiexp.search.bm25 import BM25Retriever

    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        retriever.save(f"{tmp}/idx")
        save_s = time.perf_counter() - started
        started = time.perf_counter()
        loaded = BM25Retriever.load(f"{tmp}/idx")
        load_s = time.perf_counter() - started
        started = time.perf_counter()
        loaded.search(queries, k=args.k)
        first_pass_qps = len(queries) / (time.perf_counter() - started)
    print(f"  hiexp save {save_s:.2f} s, load (mmap) {load_s * 1000:.0f} ms, "
          f"first pass after load {first_pass_qps:,.0f} queries/s")
    big_ratio = ours_big_qps / their_big_qps
    print(f"  speed-up: {big_ratio:,.0f}x")
    print(f"\nbm25_speedup_vs_rank_bm25_{len(passages)}_passages: {small_ratio:.1f}")
    print(f"bm25_speedup_vs_rank_bm25_{len(big)}_passages: {big_ratio:.0f}")


if __name__ == "__main__":
    main()
