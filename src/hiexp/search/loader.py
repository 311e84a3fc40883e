"""One entry point from a user's "which retriever" string to a ready ``Retriever``."""

from __future__ import annotations

import logging
from pathlib import Path

from hiexp.contracts.passage import Retriever
from hiexp.errors import HiexpError
from hiexp.io import cache_dir, sha256_file, stable_hash

logger = logging.getLogger(__name__)

# Bump when the on-disk index layout changes, so that cached indexes are rebuilt instead of misread.
CACHE_LAYOUT = 1


def load_retriever(spec: str | Path, skip_bad: bool = False, timeout: float = 30.0, retries: int = 3) -> Retriever:
    """A retriever from ``spec``.

    - ``http(s)://host:port[/retrieve]``: a Search-R1 compatible server (``RemoteRetriever``);
    - a directory: an index written by ``hiexp index`` (BM25) or a dense index;
    - a corpus file (JSONL/JSON of passages): a BM25 index built once and cached under
      ``$HIEXP_CACHE/indexes/<corpus sha256>``;
    - a dataset name (e.g. ``hotpotqa``): BM25 over its closed-world corpus, via ``hiexp.data``.
    ``skip_bad`` skips malformed corpus lines (with a warning) when an index has to be built. ``timeout``
    and ``retries`` apply to a remote server only.
    """
    text = str(spec)
    if text.startswith(("http://", "https://")):
        from hiexp.search.remote import RemoteRetriever

        return RemoteRetriever(text, timeout=timeout, retries=retries)
    path = Path(text).expanduser()
    if path.is_dir():
        return load_index(path)
    if path.is_file():
        return cached_bm25_index(path, skip_bad=skip_bad)
    corpus = dataset_corpus_path(text)
    if corpus is not None:
        return cached_bm25_index(Path(corpus), skip_bad=skip_bad)
    raise HiexpError(
        f"{text}: not an index directory, a corpus file, a known dataset or an http(s) URL; "
        f"build an index with `hiexp index CORPUS --out DIR`"
    )


def load_index(directory: str | Path) -> Retriever:
    """Open an index directory of any kind, reading ``meta.json`` to tell which."""
    from hiexp.search.bm25 import INDEX_KIND, BM25Retriever, read_index_meta

    directory = Path(directory)
    meta = read_index_meta(directory)
    if meta["kind"] == INDEX_KIND:
        return BM25Retriever.load(directory)
    if meta["kind"] == "dense":
        from hiexp.search.dense import DenseRetriever

        return DenseRetriever.load(directory)
    raise HiexpError(f"{directory}: unknown index kind {meta['kind']!r} in meta.json")


def cached_bm25_index(corpus: str | Path, skip_bad: bool = False):
    """The BM25 index of a corpus file, built on first use and reused while the file's bytes are unchanged."""
    from hiexp.search.bm25 import BM25Config, BM25Retriever, status_spinner

    corpus = Path(corpus)
    config = BM25Config()
    key = stable_hash(
        {"corpus_sha256": sha256_file(corpus), "params": config.to_dict(), "skip_bad": skip_bad,
         "layout": CACHE_LAYOUT},
        length=24,
    )
    directory = cache_dir("indexes") / key
    if (directory / "meta.json").is_file():
        try:
            return BM25Retriever.load(directory)
        except HiexpError:
            pass  # a damaged cache entry is rebuilt below
    from hiexp.data import load_corpus

    with status_spinner(True, f"reading corpus {corpus}"):
        passages = load_corpus(corpus, skip_bad=skip_bad)
    if not passages:
        raise HiexpError(f"{corpus}: the corpus is empty: there are no passages to index")
    logger.info("building a BM25 index of %d passages from %s (cached for next time)", len(passages), corpus)
    retriever = BM25Retriever.build(passages, config=config)  # shows its own progress on large corpora
    retriever.save(directory)
    return BM25Retriever.load(directory)


def dataset_corpus_path(name: str):
    """The closed-world corpus path of a dataset name, if the data package knows the name."""
    if "/" in name or "\\" in name or name.endswith((".jsonl", ".json", ".gz")):
        return None
    try:
        from hiexp.data import corpus_path_for
    except ImportError:
        return None
    try:
        path = corpus_path_for(name)
    except HiexpError:
        return None  # not a dataset name either: the caller explains every accepted form
    if path is None:
        raise HiexpError(
            f"dataset {name!r} has no context paragraphs, so there is no closed-world corpus to search; "
            "give an index directory, a corpus file or a retriever URL instead"
        )
    return path
