"""A dataset's closed-world corpus: the union of its questions' context paragraphs, as a passage JSONL.

A HotpotQA / 2Wiki / MuSiQue question comes with the paragraphs it can be answered from (plus distractors),
so the union of those paragraphs over a dataset is a small corpus in which every question is answerable by
search. ``corpus_path_for`` builds it once into ``cache_dir("corpora")`` and reuses it while the source
files are unchanged; it also normalises named corpora of the data directory and plain passage files.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from hiexp.data.corpus import CORPUS_FORMAT_VERSION, corpus_from_items, corpus_records, load_corpus, write_corpus
from hiexp.data.demo_set import demo_corpus_path
from hiexp.data.paths import shared_data_dir
from hiexp.data.registry import REGISTRY, load_raw, looks_like_path
from hiexp.errors import HiexpError
from hiexp.io import cache_dir, sha256_file

# Passage collections in the data directory that are corpora rather than question sets.
NAMED_CORPORA: dict[str, str] = {
    "wiki18-sample": "corpus/wiki18_sample_1000_flashrag.jsonl",
    "2wiki-hipporag": "corpus/hipporag_2wikimultihopqa_corpus.json",
    "hotpotqa-train-hipporag": "train/hotpotqa_train_hipporag100_corpus.json",
    "musique-train-hipporag": "train/musique_train_hipporag100_corpus.json",
}


def _cache_path(name: str, sources: list[Path]) -> Path:
    digest = hashlib.sha256(CORPUS_FORMAT_VERSION.encode())
    for source in sources:
        digest.update(sha256_file(source).encode())
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in name)
    return cache_dir("corpora") / f"{safe}-{digest.hexdigest()[:16]}.jsonl"


def _is_passage_file(path: Path) -> bool:
    """Whether a file holds passages rather than questions (looked at on its first record)."""
    try:
        for _, record in corpus_records(path, skip_bad=True):
            if not isinstance(record, dict):
                return False
            return ("contents" in record or "text" in record) and "question" not in record
    except HiexpError:
        return False
    return False


def corpus_path_for(name_or_path: str | Path) -> Path | None:
    """The closed-world corpus of a dataset as a passage JSONL, built and cached on first use.

    Accepts a dataset name or data file (the union of its context paragraphs; None when it has none, e.g.
    ``nq`` or ``bamboogle``), a named corpus from ``NAMED_CORPORA``, or a passage file (normalised to
    ``{id, title, contents}`` lines). The demo set ``hotpotqa`` uses the corpus shipped in the package.
    """
    key = str(name_or_path)
    if isinstance(name_or_path, str) and key in NAMED_CORPORA:
        source = shared_data_dir() / NAMED_CORPORA[key]
        if not source.exists():
            raise HiexpError(f"corpus {key!r}: {source} is missing from the data directory")
        return _normalised_copy(key, source)
    if isinstance(name_or_path, str) and not looks_like_path(name_or_path):
        spec = REGISTRY.get(key) or REGISTRY.get(key.lower())
        if spec is None:
            known = ", ".join([*REGISTRY, *NAMED_CORPORA])
            raise HiexpError(f"unknown dataset or corpus {key!r}; known names: {known} (or give a file path)")
        if spec.builtin:
            return demo_corpus_path()
        if not spec.has_context:
            return None
        sources = spec.paths()
        name = spec.name
    else:
        path = Path(name_or_path).expanduser()
        if not path.exists():
            raise HiexpError(f"{path}: no such file")
        if _is_passage_file(path):
            return _normalised_copy(path.name.split(".")[0], path)
        sources = [path]
        name = path.name.split(".")[0]
    target = _cache_path(name, sources)
    if target.exists():
        return target
    _, _, items = load_raw(name_or_path)
    passages = corpus_from_items(items)
    if not passages:
        return None
    return write_corpus(passages, target)


def _normalised_copy(name: str, source: Path) -> Path:
    target = _cache_path(name, [source])
    if not target.exists():
        write_corpus(load_corpus(source), target)
    return target
