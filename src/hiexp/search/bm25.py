"""BM25 over a passage corpus with bm25s: the embedded default retriever.

An index directory holds bm25s's sparse score matrix (memory-mapped on load), the passages
(``passages.jsonl`` + offsets, see ``corpus.py``) and ``meta.json``, written last, which records the
parameters, the tokenizer, the corpus hash and count, and the bm25s version. A directory without a
readable ``meta.json`` is not an index; building writes into a temporary sibling that is renamed into
place only when complete, so an interrupted build leaves nothing behind.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from hiexp.contracts.passage import Passage, check_queries
from hiexp.errors import HiexpError
from hiexp.io import atomic_directory, atomic_write_json, check_output_dir, read_json, stable_hash
from hiexp.search.corpus import (
    OFFSETS_FILE,
    PASSAGES_FILE,
    PassageList,
    PassageStore,
    corpus_sha256,
    write_passage_store,
)
from hiexp.search.tokenize import Tokenizer, TokenizerConfig

META_FILE = "meta.json"
INDEX_KIND = "bm25"
SCHEMA_VERSION = 1
# Files bm25s writes for the lucene/robertson/atire variants (bm25l and bm25+ add a non-occurrence array).
BM25S_FILES = ("data.csc.index.npy", "indices.csc.index.npy", "indptr.csc.index.npy", "vocab.index.json",
               "params.index.json")
# Corpora at least this large get a progress bar while they are tokenised (smaller ones take < 1 s).
PROGRESS_MIN_PASSAGES = 10_000


@dataclass
class BM25Config:
    """Scoring parameters of a BM25 index (stored in ``meta.json`` and part of the fingerprint)."""

    k1: float = 0.9
    """Term-frequency saturation. 0.9 with b=0.4 are the Anserini/Pyserini defaults that Search-R1's BM25
    baseline used; bm25s's own defaults are 1.5 / 0.75."""
    b: float = 0.4
    """Length normalisation: 0 ignores passage length, 1 normalises fully."""
    method: str = "lucene"
    """bm25s scoring variant: ``lucene``, ``robertson``, ``atire``, ``bm25l`` or ``bm25+``."""
    delta: float = 0.5
    """The delta of ``bm25l`` / ``bm25+``; ignored by the other variants."""
    tokenizer: TokenizerConfig = field(default_factory=TokenizerConfig)
    """How passages and queries become terms."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> BM25Config:
        data = dict(data)
        tokenizer = TokenizerConfig(**data.pop("tokenizer", {}))
        return cls(tokenizer=tokenizer, **data)


class BM25Retriever:
    """Top-k BM25 search over passages (title and text are indexed together).

    Build with ``BM25Retriever.build(passages)``, persist with ``.save(dir)``, reopen with
    ``BM25Retriever.load(dir)``. ``search`` takes a batch of queries; a query with no indexed term (only
    stop words, or only unknown words) gets an empty list, as does any passage that matches no term
    (score 0), so a caller can say "no results" instead of showing arbitrary passages.
    """

    def __init__(self, model, store, meta: dict[str, Any], path: Path | None = None):
        self._model = model
        self._store = store
        self.meta = meta
        self.path = path
        self.config = BM25Config.from_dict(meta["params"])
        self.tokenizer = Tokenizer(self.config.tokenizer)
        self._vocab: dict[str, int] = model.vocab_dict

    # -- construction -------------------------------------------------------------------------------------

    @classmethod
    def build(
        cls,
        passages: Iterable[Passage],
        config: BM25Config | None = None,
        show_progress: bool = True,
    ) -> BM25Retriever:
        """Index ``passages`` in memory; call ``.save(dir)`` to keep the index."""
        import bm25s
        from bm25s.tokenization import Tokenized

        config = config or BM25Config()
        passages = list(passages)
        if not passages:
            raise HiexpError("the corpus is empty: there are no passages to index")
        _warn_duplicate_ids(passages)
        tokenizer = Tokenizer(config.tokenizer)

        # Split every passage into words, give each distinct word an id, then stem each distinct word once.
        word_ids: dict[str, int] = {}
        docs: list[list[int]] = []
        bar = _maybe_progress(show_progress and len(passages) >= PROGRESS_MIN_PASSAGES)
        task = bar.add_task("tokenising passages", total=len(passages)) if bar else None
        try:
            for i, passage in enumerate(passages):
                words = tokenizer.words(f"{passage.title}\n{passage.text}")
                docs.append([word_ids.setdefault(w, len(word_ids)) for w in words])
                if bar and i % 2000 == 1999:
                    bar.update(task, completed=i + 1)
            if bar:
                bar.update(task, completed=len(passages))
        finally:
            if bar:
                bar.stop()
        if not word_ids:
            raise HiexpError(
                f"the corpus has {len(passages)} passages but no indexable words (all empty or stop words)"
            )
        words = list(word_ids)
        stems = tokenizer.stem_all(words)
        stem_ids: dict[str, int] = {}
        word_to_stem = [stem_ids.setdefault(s, len(stem_ids)) for s in stems]
        docs = [[word_to_stem[w] for w in doc] for doc in docs]

        model = bm25s.BM25(k1=config.k1, b=config.b, delta=config.delta, method=config.method)
        with status_spinner(show_progress and len(passages) >= PROGRESS_MIN_PASSAGES, "scoring passages"):
            model.index(Tokenized(ids=docs, vocab=stem_ids), show_progress=False)

        corpus_sha = corpus_sha256(passages)
        meta = _make_meta(config, corpus_sha, len(passages))
        return cls(model, PassageList(passages), meta, path=None)

    def save(self, directory: str | Path, overwrite: bool = False) -> Path:
        """Write the index to ``directory`` atomically (an existing index there is replaced whole)."""
        directory = check_replaceable(Path(directory), overwrite)
        with atomic_directory(directory, is_index_dir, overwrite, what="hiexp index") as tmp:
            self._model.save(tmp, show_progress=False)
            count, corpus_sha = write_passage_store(tmp, self._store)
            if count != self.meta["count"] or corpus_sha != self.meta["corpus_sha256"]:
                raise RuntimeError("passage store does not match the index metadata")
            atomic_write_json(tmp / META_FILE, self.meta)
        self.path = directory
        return directory

    @classmethod
    def load(cls, directory: str | Path, mmap: bool = True) -> BM25Retriever:
        """Open a saved index; a missing or incomplete directory raises ``HiexpError`` saying what to do."""
        import bm25s

        directory = Path(directory)
        meta = read_index_meta(directory, expected_kind=INDEX_KIND)
        required = [*BM25S_FILES, PASSAGES_FILE, OFFSETS_FILE]
        if meta["params"].get("method") in ("bm25l", "bm25+"):
            required.append("nonoccurrence_array.index.npy")
        missing = [name for name in required if not (directory / name).is_file()]
        if missing:
            raise HiexpError(
                f"{directory}: incomplete index, missing {', '.join(missing)}; "
                f"rebuild it with `hiexp index CORPUS --out {directory}`"
            )
        try:
            model = bm25s.BM25.load(directory, mmap=mmap, load_corpus=False, show_progress=False)
        except Exception as exc:  # noqa: BLE001 - numpy, json and bm25s raise many types for a damaged file
            raise HiexpError(
                f"{directory}: the BM25 arrays could not be read ({type(exc).__name__}: {exc}); "
                f"rebuild with `hiexp index CORPUS --out {directory}`"
            ) from None
        check_score_matrix(directory, model.scores, meta["count"])
        if meta["count"] and not model.vocab_dict:
            raise HiexpError(f"{directory}: damaged BM25 index (an empty vocabulary); rebuild it with "
                             f"`hiexp index CORPUS --out {directory}`")
        store = PassageStore(directory, meta.get("corpus_sha256"))
        if len(store) != meta["count"] or model.scores["num_docs"] != meta["count"]:
            raise HiexpError(
                f"{directory}: meta.json says {meta['count']} passages but the index holds "
                f"{model.scores['num_docs']} and the passage store {len(store)}; rebuild the index"
            )
        return cls(model, store, meta, path=directory)

    # -- querying -----------------------------------------------------------------------------------------

    @property
    def fingerprint(self) -> str:
        """A hash of the corpus content and every scoring/tokenizer parameter."""
        return self.meta["fingerprint"]

    def __len__(self) -> int:
        return self.meta["count"]

    def query_term_ids(self, query: str) -> list[int]:
        """The vocabulary ids of a query's terms (unknown terms dropped, repeats kept)."""
        vocab = self._vocab
        return [vocab[t] for t in self.tokenizer.query_terms(query) if t in vocab]

    def search(self, queries: list[str] | str, k: int = 3) -> list[list[Passage]]:
        """Top-``k`` passages per query, best first, with BM25 scores; ``k`` beyond the corpus size is
        clamped. Passages that share no term with the query are left out, so a list may be shorter than k
        or empty."""
        queries = check_queries(queries, k)
        results: list[list[Passage]] = [[] for _ in queries]
        if k == 0 or not queries:
            return results
        for i, query in enumerate(queries):
            term_ids = self.query_term_ids(query)
            if term_ids:
                results[i] = self._top_k(term_ids, k)
        return results

    def _top_k(self, term_ids: list[int], k: int) -> list[Passage]:
        """Score every passage with bm25s, then select among the passages that match at all.

        Selecting among the non-zero scores only (usually a small share of the corpus) is several times
        faster than bm25s's own top-k over the full score vector; equal scores are ordered by corpus
        position (earlier first), also at the k-th place, so results never depend on selection order.
        """
        scores = self._model.get_scores_from_ids(term_ids)
        matched = np.flatnonzero(scores > 0)
        if len(matched) > k:
            matched_scores = scores[matched]
            cut = len(matched_scores) - k
            threshold = np.partition(matched_scores, cut)[cut]  # the k-th best score
            above = matched[matched_scores > threshold]
            tied = matched[matched_scores == threshold]  # ascending positions: the earliest win the tie
            matched = np.concatenate([above, tied[: k - len(above)]])
        # By score descending, then by corpus position ascending.
        order = np.lexsort((matched, -scores[matched]))
        return [self._store.get(int(pos), score=float(scores[pos])) for pos in matched[order]]

    def passages(self) -> Iterable[Passage]:
        """Every passage of the index, in index order."""
        return iter(self._store)


# -- helpers shared with the dense index and the loader -------------------------------------------------------


def is_index_dir(directory: Path) -> bool:
    """A directory written by ``save`` (BM25 or dense): it holds the index's ``meta.json``."""
    return (directory / META_FILE).is_file()


def check_replaceable(directory: Path, overwrite: bool = False) -> Path:
    """Refuse to overwrite anything but an empty directory or an earlier index (``--overwrite`` aside).

    Saving replaces the target directory whole, so ``--out`` pointing at, say, a project folder must stop
    instead of deleting it.
    """
    return check_output_dir(directory, is_index_dir, overwrite, what="hiexp index")


def read_index_meta(directory: Path, expected_kind: str | None = None) -> dict[str, Any]:
    """``meta.json`` of an index directory, or a ``HiexpError`` that says what is wrong and how to fix it."""

    how = f"build one with `hiexp index CORPUS --out {directory}`"
    if not directory.exists():
        raise HiexpError(f"{directory}: no such index directory; {how}")
    if not directory.is_dir():
        raise HiexpError(f"{directory}: is a file, not an index directory; {how}")
    meta_path = directory / META_FILE
    if not meta_path.is_file():
        raise HiexpError(f"{directory}: not a complete hiexp index (no {META_FILE}); {how}")
    try:
        meta = read_json(meta_path)
    except HiexpError as exc:
        raise HiexpError(f"{exc}; {how}") from None
    if not isinstance(meta, dict):
        raise HiexpError(f"{meta_path}: expected a JSON object, got {type(meta).__name__}; {how}")
    for key, kind in (("kind", str), ("count", int), ("fingerprint", str), ("params", dict)):
        if key not in meta:
            raise HiexpError(f"{meta_path}: lacks {key!r}; {how}")
        if not isinstance(meta[key], kind) or isinstance(meta[key], bool):
            raise HiexpError(f"{meta_path}: {key!r} is {type(meta[key]).__name__}, expected {kind.__name__}; {how}")
    if meta["count"] < 0:
        raise HiexpError(f"{meta_path}: 'count' is negative; {how}")
    version = meta.get("schema_version", SCHEMA_VERSION)
    if version != SCHEMA_VERSION:
        raise HiexpError(f"{meta_path}: index schema_version {version!r}; this hiexp reads version {SCHEMA_VERSION} "
                         f"({how} with this hiexp)")
    if expected_kind and meta["kind"] != expected_kind:
        raise HiexpError(f"{directory}: is a {meta['kind']!r} index, not {expected_kind!r}")
    return meta


def check_score_matrix(directory: Path, scores: dict[str, Any], count: int) -> None:
    """The bm25s term x passage score matrix (CSC) holds finite scores, passage ids below ``count`` and
    monotone column pointers, and a vocabulary: else the index is damaged (it would answer wrongly)."""
    import numpy as np

    def bad(what: str) -> HiexpError:
        return HiexpError(f"{directory}: damaged BM25 index ({what}); rebuild it with "
                          f"`hiexp index CORPUS --out {directory}`")

    data, indices, indptr = (np.asarray(scores[k]) for k in ("data", "indices", "indptr"))
    if data.ndim != 1 or indices.shape != data.shape or indptr.ndim != 1 or len(indptr) < 1:
        raise bad("score arrays of mismatched shapes")
    if int(indptr[0]) != 0 or int(indptr[-1]) != len(data) or (len(indptr) > 1 and np.any(np.diff(indptr) < 0)):
        raise bad("column pointers that do not run from 0 to the number of scores")
    if len(indices) and (int(indices.min()) < 0 or int(indices.max()) >= count):
        raise bad(f"passage numbers outside 0..{count - 1}")
    if not np.isfinite(data).all():
        raise bad("scores that are NaN or infinite")
    if count and len(indptr) < 2:
        raise bad("an empty vocabulary")


def _make_meta(config: BM25Config, corpus_sha: str, count: int) -> dict[str, Any]:
    import bm25s

    from hiexp import __version__

    params = config.to_dict()
    return {
        "kind": INDEX_KIND,
        "schema_version": SCHEMA_VERSION,
        "fingerprint": f"bm25-{stable_hash({'corpus_sha256': corpus_sha, 'params': params})}",
        "count": count,
        "corpus_sha256": corpus_sha,
        "params": params,
        "bm25s_version": bm25s.__version__,
        "hiexp_version": __version__,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


def _warn_duplicate_ids(passages: list[Passage]) -> None:
    seen: set[str] = set()
    duplicates = [p.id for p in passages if p.id in seen or seen.add(p.id)]
    if duplicates:
        warnings.warn(
            f"{len(duplicates)} passages share an id with an earlier one (first: {duplicates[0]!r}); "
            "results will not tell them apart",
            stacklevel=3,
        )


def _maybe_progress(enabled: bool):
    if not enabled:
        return None
    from rich.errors import LiveError

    from hiexp.progress import progress_bar

    bar = progress_bar(transient=True)
    try:
        bar.start()
    except LiveError:  # a caller's progress display is already live: build quietly inside it
        return None
    return bar


class status_spinner:
    """A rich spinner with a message while a step without progress information runs (none when another
    live display, e.g. a caller's progress bar, is already on screen)."""

    def __init__(self, enabled: bool, message: str):
        self.enabled, self.message, self._status = enabled, message, None

    def __enter__(self):
        if self.enabled:
            from rich.errors import LiveError

            from hiexp.progress import console

            try:
                status = console.status(self.message)
                status.__enter__()
                self._status = status
            except LiveError:  # a caller's progress display is already live: no spinner of our own
                self._status = None
        self.started = time.perf_counter()
        return self

    def __exit__(self, *exc):
        if self._status is not None:
            self._status.__exit__(*exc)
        return False
