"""Passage corpus files: reading the formats corpora come in, writing ``{"id", "title", "contents"}`` lines
(``contents`` is the paragraph text without the title), and the paragraphs of raw items as passages.

Passage ids are content hashes of (title, text) (``formats.passage_id``), so the same paragraph has the same
id in every corpus and ``metadata["context_ids"]`` of an example can be computed without building anything.
Which corpus belongs to which dataset is ``closed_world.py``.
"""

from __future__ import annotations

import gzip
import json
import os
import shutil
import tempfile
import warnings
from pathlib import Path
from typing import Any

from hiexp.contracts.passage import Passage
from hiexp.data.formats import RawItem, iter_jsonl_records, join_sentences, passage_id, read_json_document
from hiexp.errors import HiexpError
from hiexp.io import atomic_write_jsonl

# Bump when the corpus file layout or the id scheme changes, so cached corpora are rebuilt.
CORPUS_FORMAT_VERSION = "1"



def passage_record(passage: Passage) -> dict[str, str]:
    """The corpus line of a passage: ``{id, title, contents}`` with contents = the text alone."""
    return {"id": passage.id, "title": passage.title, "contents": passage.text}


def corpus_from_items(items: list[RawItem]) -> list[Passage]:
    """The union of the items' paragraphs, first occurrence kept, deduplicated by (title, text)."""
    seen: set[tuple[str, str]] = set()
    passages: list[Passage] = []
    for item in items:
        for title, text in item.paragraphs:
            if (title, text) in seen or not (title.strip() or text.strip()):
                continue
            seen.add((title, text))
            passages.append(Passage(id=passage_id(title, text), title=title, text=text))
    return passages


def write_corpus(passages: list[Passage], path: str | Path) -> Path:
    """Write passages as a corpus JSONL atomically (plain, or gzip when the name ends in ``.gz``)."""
    path = Path(path)
    if not passages:
        raise HiexpError(f"{path}: refusing to write an empty corpus")
    if path.name.endswith(".gz"):
        lines = (json.dumps(passage_record(p), ensure_ascii=False) + "\n" for p in passages)
        write_gzip_lines(path, lines)
    else:
        atomic_write_jsonl(path, (passage_record(p) for p in passages))
    return path


def write_gzip_lines(path: Path, lines) -> Path:
    """Write text lines gzip-compressed and atomically; mtime 0 keeps the bytes identical between rebuilds."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0, filename="") as handle:
            for line in lines:
                handle.write(line.encode("utf-8"))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


# ------------------------------------------------------------------------------------------ reading


def _passage_from(record: dict[str, Any], position: int) -> Passage:
    """A passage from ``{id?, title?, contents|text}``; no id -> its position."""
    if not isinstance(record, dict):
        raise ValueError(f"expected an object, got {type(record).__name__}")
    if isinstance(record.get("text"), list):  # sentences
        record = {**record, "text": join_sentences(record["text"])}
    passage = Passage.from_record(record)
    if not passage.id:
        passage.id = str(position)
    passage.score = 0.0
    return passage


def corpus_records(path: Path, skip_bad: bool):
    name = path.name.lower()
    if name.endswith((".json", ".json.gz")):
        data = read_json_document(path)
        if data is None:  # one passage per line despite the .json name
            yield from iter_jsonl_records(path, skip_bad)
            return
        if isinstance(data, dict):  # {title: [sentences]} (HippoRAG HotpotQA corpus)
            for index, (title, sentences) in enumerate(data.items()):
                text = join_sentences(sentences) if isinstance(sentences, list) else str(sentences)
                yield f"[{index}]", {"title": title, "text": text}
            return
        if not isinstance(data, list):
            raise HiexpError(f"{path}: expected a JSON array of passages, got {type(data).__name__}")
        for index, record in enumerate(data):
            yield f"[{index}]", record
    else:
        yield from iter_jsonl_records(path, skip_bad)


def load_corpus(path: str | Path, skip_bad: bool = False) -> list[Passage]:
    """Passages of a corpus file: JSONL (``.gz`` too) of ``{id, title, contents}``, FlashRAG's
    ``{id, contents: '"Title"\\ntext'}`` or ``{id, title, text}``; a JSON array of such records; or a
    JSON object ``{title: [sentences]}``.

    Records without an id get their position as id. A record with no text, or an id seen before, stops
    with a ``HiexpError`` naming file and line (or is skipped with a warning under ``skip_bad``); an empty
    corpus is an error.
    """
    path = Path(path)
    if not path.exists():
        raise HiexpError(f"{path}: no such corpus file")
    if path.is_dir():
        raise HiexpError(f"{path}: is a directory, expected a corpus file (JSONL of passages)")
    passages: list[Passage] = []
    first_seen: dict[str, str] = {}
    for where, record in corpus_records(path, skip_bad):
        problem = None
        passage = None
        try:
            passage = _passage_from(record, len(passages))
        except (TypeError, ValueError, AttributeError) as exc:
            problem = f"not a passage record ({exc})"
        if passage is not None:
            if not (passage.text.strip() or passage.title.strip()):
                problem = "passage has no text (expected 'contents' or 'text')"
            elif passage.id in first_seen:
                problem = f"duplicate passage id {passage.id!r} (first at {first_seen[passage.id]})"
        if problem:
            message = f"{path}:{where}: {problem}"
            if skip_bad:
                warnings.warn(message + "; skipped", stacklevel=2)
                continue
            raise HiexpError(message + "; use --skip-bad to skip such lines")
        first_seen[passage.id] = where
        passages.append(passage)
    if not passages:
        raise HiexpError(f"{path}: the corpus is empty (no passages)")
    return passages


def copy_gzip_to_plain(source: Path, target: Path) -> Path:
    """Decompress a shipped ``.jsonl.gz`` into the cache (written to a temporary name, then renamed)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with gzip.open(source, "rb") as src, os.fdopen(fd, "wb") as dst:
            shutil.copyfileobj(src, dst)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target
