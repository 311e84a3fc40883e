"""Passages on disk: the passage store kept inside every index directory.

Corpus files are read by ``hiexp.data.load_corpus`` (one reader for the whole project). The store is
``passages.jsonl`` (one ``{id, title, text}`` per line) plus ``passages.offsets.npy`` (byte
offset of each line). Opening it maps the file and reads nothing else, so loading a 100k-passage index is
instant and a search only parses the lines it returns.
"""

from __future__ import annotations

import hashlib
import json
import mmap
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from hiexp.contracts.passage import Passage
from hiexp.errors import HiexpError

PASSAGES_FILE = "passages.jsonl"
OFFSETS_FILE = "passages.offsets.npy"


def passage_line(passage: Passage) -> bytes:
    """The stored form of one passage (scores are not part of a corpus)."""
    record = {"id": passage.id, "title": passage.title, "text": passage.text}
    return (json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\n").encode("utf-8")


def write_passage_store(directory: Path, passages: Iterable[Passage]) -> tuple[int, str]:
    """Write the store into ``directory``; returns (count, sha256 of ``passages.jsonl``)."""
    digest = hashlib.sha256()
    offsets = [0]
    with (directory / PASSAGES_FILE).open("wb") as handle:
        for passage in passages:
            line = passage_line(passage)
            handle.write(line)
            digest.update(line)
            offsets.append(offsets[-1] + len(line))
    np.save(directory / OFFSETS_FILE, np.asarray(offsets, dtype=np.int64))
    return len(offsets) - 1, digest.hexdigest()


class IndexDamaged(HiexpError):
    """An index whose files no longer agree with each other (edited, shuffled or cut after it was built)."""


def check_passages_once(path: Path, expected_sha256: str) -> None:
    """Refuse a passage file whose bytes are not the ones indexed (lines shuffled or edited in place keep the
    size and may keep every offset valid, and would then return the wrong passages). Each state of the file
    (device, inode, size, mtime) is hashed once per machine and remembered in hiexp's cache, so a load costs
    one ``stat``; the first load of a new or copied index reads it whole (about 1 s per GB)."""
    from hiexp.io import cache_dir, sha256_file

    stat = path.stat()
    state = hashlib.sha256(f"{path.resolve()}|{stat.st_dev}|{stat.st_ino}|{stat.st_size}|{stat.st_mtime_ns}|"
                           f"{expected_sha256}".encode()).hexdigest()[:32]
    mark = cache_dir("verified-passages") / state
    if mark.exists():
        return
    if sha256_file(path) != expected_sha256:
        raise IndexDamaged(f"{path.parent}: the index is damaged ({path.name} is not the file that was indexed: "
                           "edited or shuffled after indexing): rebuild it with `hiexp index CORPUS --out DIR`")
    mark.touch()


class PassageStore:
    """Read-only, memory-mapped access to the passages of an index by position."""

    def __init__(self, directory: str | Path, corpus_sha256: str | None = None):
        directory = Path(directory)
        self._directory = directory
        damaged = f"{directory}: the index is damaged (%s): rebuild it with `hiexp index CORPUS --out DIR`"
        try:
            self._offsets = np.load(directory / OFFSETS_FILE, mmap_mode="r")
        except Exception as exc:  # noqa: BLE001 - numpy raises several types for a damaged .npy
            raise HiexpError(damaged % f"{OFFSETS_FILE} unreadable: {type(exc).__name__}") from None
        offsets = self._offsets
        if (offsets.ndim != 1 or len(offsets) < 1 or not np.issubdtype(offsets.dtype, np.integer)
                or int(offsets[0]) != 0 or (len(offsets) > 1 and np.any(np.diff(offsets) <= 0))):
            raise HiexpError(damaged % f"{OFFSETS_FILE} is not an increasing list of byte offsets from 0")
        self._file = (directory / PASSAGES_FILE).open("rb")
        size = int(self._offsets[-1])
        self._map = mmap.mmap(self._file.fileno(), 0, access=mmap.ACCESS_READ) if size else b""
        if len(self._map) != size:
            raise HiexpError(
                f"{directory}: {PASSAGES_FILE} has {len(self._map)} bytes but its offsets expect {size}; "
                "the index is damaged: rebuild it with `hiexp index CORPUS --out DIR`"
            )
        if corpus_sha256 is not None:
            check_passages_once(directory / PASSAGES_FILE, corpus_sha256)

    def __len__(self) -> int:
        return len(self._offsets) - 1

    def get(self, position: int, score: float = 0.0) -> Passage:
        start, end = int(self._offsets[position]), int(self._offsets[position + 1])
        line = self._map[start:end]
        try:
            record = json.loads(line)
            return Passage(id=str(record["id"]), title=str(record["title"]), text=str(record["text"]), score=score)
        except (ValueError, KeyError, TypeError):
            raise IndexDamaged(f"{self._directory}: the index is damaged (passage {position} does not start where "
                               f"its offsets say): rebuild it with `hiexp index CORPUS --out DIR`") from None

    def __iter__(self):
        for position in range(len(self)):
            yield self.get(position)


class PassageList:
    """The in-memory twin of ``PassageStore`` for an index that was just built."""

    def __init__(self, passages: list[Passage]):
        self._passages = passages

    def __len__(self) -> int:
        return len(self._passages)

    def get(self, position: int, score: float = 0.0) -> Passage:
        p = self._passages[position]
        return Passage(id=p.id, title=p.title, text=p.text, score=score)

    def __iter__(self):
        return iter(self._passages)


def corpus_sha256(passages: list[Passage]) -> str:
    """sha256 of the stored form of the passages (equal to the sha256 of the saved ``passages.jsonl``)."""
    digest = hashlib.sha256()
    for passage in passages:
        digest.update(passage_line(passage))
    return digest.hexdigest()
