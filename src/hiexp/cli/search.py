"""``hiexp index``, ``hiexp search`` and ``hiexp serve-retriever``."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated

import typer


def index(
    corpus: Annotated[Path, typer.Argument(help="Passage file: JSONL (or a JSON array) of {id,title,contents} / "
                                                "{id,contents:'\"Title\"\\ntext'} / {id,title,text}; or a "
                                                "dataset name (its closed-world corpus).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Index directory to write; an earlier index there is "
                                                          "replaced whole, any other non-empty folder is refused.")],
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace --out whole even if it is not an "
                                                                "index.")] = False,
    skip_bad: Annotated[bool, typer.Option("--skip-bad", help="Skip malformed corpus lines with a warning "
                                                              "instead of stopping at the first one.")] = False,
    k1: Annotated[float, typer.Option(help="BM25 k1: term-frequency saturation.")] = 0.9,
    b: Annotated[float, typer.Option(help="BM25 b: passage-length normalisation (0 to 1).")] = 0.4,
    method: Annotated[str, typer.Option(help="bm25s variant: lucene, robertson, atire, bm25l or bm25+.")] = "lucene",
) -> None:
    """Build a BM25 index of a passage corpus (title and text indexed, English stemming, stop words)."""
    from hiexp.data import load_corpus
    from hiexp.errors import HiexpError
    from hiexp.search.bm25 import BM25Config, BM25Retriever, check_replaceable, status_spinner
    from hiexp.search.loader import dataset_corpus_path

    if not corpus.exists():  # a dataset name: index its closed-world corpus
        corpus = Path(dataset_corpus_path(str(corpus)) or corpus)
    if method not in ("lucene", "robertson", "atire", "bm25l", "bm25+"):
        raise HiexpError(f"unknown BM25 method {method!r}; choose lucene, robertson, atire, bm25l or bm25+")
    check_replaceable(out, overwrite)  # before the slow part: never replace a folder that is not an index
    started = time.perf_counter()
    with status_spinner(True, f"reading {corpus}"):
        passages = load_corpus(corpus, skip_bad=skip_bad)
    if not passages:
        raise HiexpError(f"{corpus}: the corpus is empty: there are no passages to index")
    retriever = BM25Retriever.build(passages, config=BM25Config(k1=k1, b=b, method=method))  # own progress bar
    with status_spinner(True, f"writing {out}"):
        retriever.save(out, overwrite=overwrite)
    seconds = time.perf_counter() - started
    typer.echo(f"indexed {len(passages)} passages in {seconds:.1f} s -> {out} (fingerprint {retriever.fingerprint})")


def search(
    index_spec: Annotated[str, typer.Argument(metavar="INDEX", help="Index directory, corpus file (indexed and "
                                                                  "cached on first use), dataset name, or "
                                                                  "http(s)://host:port/retrieve URL.")],
    queries: Annotated[list[str], typer.Argument(metavar="QUERY...", help="One or more queries.")],
    k: Annotated[int, typer.Option("--k", "-k", min=0, help="Passages to show per query.")] = 3,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object per query "
                                                         "({query, passages: [{id,title,text,score}]}).")] = False,
) -> None:
    """Search an index and print the top passages as the agent sees them: Doc i(Title: ...) text."""
    from hiexp.search import load_retriever, render_passages

    retriever = load_retriever(index_spec)
    results = retriever.search(list(queries), k=k)
    for query, passages in zip(queries, results, strict=True):
        if as_json:
            typer.echo(json.dumps({"query": query, "passages": [p.to_dict() for p in passages]},
                                  ensure_ascii=False))
            continue
        if len(queries) > 1:
            typer.secho(f"# {query}", bold=True)
        typer.echo(render_passages(passages) if passages else "no results (no query word occurs in the corpus)")


def serve_retriever(
    index_spec: Annotated[str, typer.Argument(metavar="INDEX", help="Index directory, corpus file or dataset name "
                                                                  "to serve.")],
    host: Annotated[str, typer.Option(help="Interface to listen on (0.0.0.0 for every interface).")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port to listen on.")] = 8000,
    topk: Annotated[int, typer.Option(help="Passages per query when a request does not say.")] = 3,
    max_body_bytes: Annotated[int, typer.Option(min=1, help="Largest request body (413 beyond it).")] = 1 << 20,
    max_queries: Annotated[int, typer.Option(min=1, help="Queries in one request (422 beyond it).")] = 512,
    max_query_chars: Annotated[int, typer.Option(min=1, help="Characters in one query (422 beyond it).")] = 2000,
    max_topk: Annotated[int, typer.Option(min=1, help="Passages per query a request may ask for.")] = 100,
    max_in_flight: Annotated[int, typer.Option(min=1, help="Searches running at once; others wait.")] = 4,
    queue_seconds: Annotated[float, typer.Option(min=0, help="Wait for a search slot before 503 + "
                                                             "Retry-After.")] = 30.0,
    docs: Annotated[bool, typer.Option("--docs", help="Serve the interactive /docs pages.")] = False,
) -> None:
    """Serve an index over HTTP with Search-R1's POST /retrieve protocol (needs the 'serve' extra)."""
    from hiexp.search import load_retriever
    from hiexp.search.server import ServerLimits, serve

    limits = ServerLimits(max_body_bytes=max_body_bytes, max_queries=max_queries, max_query_chars=max_query_chars,
                          max_topk=max_topk, max_in_flight=max_in_flight, queue_seconds=queue_seconds)
    retriever = load_retriever(index_spec)
    typer.echo(f"serving {index_spec} ({getattr(retriever, 'fingerprint', '?')}) on http://{host}:{port}/retrieve",
               err=True)
    serve(retriever, host=host, port=port, default_topk=topk, limits=limits, docs=docs)


def register(app: typer.Typer) -> None:
    """Add this package's commands to the ``hiexp`` app."""
    app.command("index")(index)
    app.command("search")(search)
    app.command("serve-retriever")(serve_retriever)
