"""The HEK artefact: a directory with a manifest, the entries and their title embeddings (docs/experience.md).

```
hek/
  manifest.json     schema_version, hek_version, created, embedder, reflector, summarizer, thresholds,
                    counts, sources, files (sha256 of the two data files)
  entries.jsonl     one Entry per line, E1 first, then E2, then E3
  embeddings.npy    float32 (n, dim), L2-normalised title embeddings, same order as entries.jsonl
```

``hek_version`` is a content hash of the two data files, so two HEKs with the same version hold the same
experience. ``HEK.load`` checks everything it can and names what is wrong: a missing or edited file, an
entry line that does not parse, counts or shapes that disagree with the manifest, a child that does not
exist or has two parents.
"""

from __future__ import annotations

import io
import json
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import ValidationError

from hiexp.errors import HiexpError
from hiexp.io import atomic_directory, iter_jsonl, read_json, sha256_file, stable_hash

from .manifest import check_manifest
from .schema import LEVELS, Entry

HEK_SCHEMA_VERSION = 1
MANIFEST = "manifest.json"
ENTRIES = "entries.jsonl"
EMBEDDINGS = "embeddings.npy"


def _entries_bytes(entries: list[Entry]) -> bytes:
    return "".join(json.dumps(e.to_dict(), ensure_ascii=False) + "\n" for e in entries).encode("utf-8")


def _embeddings_bytes(embeddings: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, np.ascontiguousarray(embeddings, dtype=np.float32), allow_pickle=False)
    return buffer.getvalue()


# HEKs that ship inside the package, by name: usable wherever a HEK directory is expected (``--hek demo``).
# ``demo`` is the form measured best for the default 1.5B policy (curated worked cases, docs/results.md);
# ``demo-paper`` is the paper's form (E1 lessons, E2/E3 summaries) distilled by that policy from its rollouts.
SHIPPED_HEKS = {
    "demo": Path(__file__).resolve().parent.parent / "data" / "demo" / "hek",
    "demo-paper": Path(__file__).resolve().parent.parent / "data" / "demo" / "hek-paper",
    "demo-math": Path(__file__).resolve().parent.parent / "data" / "demo" / "hek-math",
}


def is_shipped_name(name: str | Path) -> bool:
    """Whether ``name`` means a HEK inside the package (read-only): a shipped name with no path of that name."""
    return str(name) in SHIPPED_HEKS and not Path(name).exists()


def resolve_hek_dir(name: str | Path) -> Path:
    """The directory of a HEK: a path, or the name of a shipped HEK (a path of that name takes precedence)."""
    return SHIPPED_HEKS[str(name)] if is_shipped_name(name) else Path(name)


def content_version(entries_sha: str, embeddings_sha: str) -> str:
    return stable_hash({ENTRIES: entries_sha, EMBEDDINGS: embeddings_sha}, 16)


def is_hek_dir(directory: Path) -> bool:
    """A directory ``HEK.save`` wrote: its manifest names a HEK version (what ``build --out`` may replace)."""
    try:
        manifest = json.loads((Path(directory) / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(manifest, dict) and "hek_version" in manifest and (Path(directory) / ENTRIES).is_file()


class HEK:
    """Hierarchical experience knowledge: entries of levels E1-E3 and one unit vector per entry."""

    def __init__(self, entries: list[Entry], embeddings: np.ndarray, manifest: dict[str, Any] | None = None):
        embeddings = np.asarray(embeddings, dtype=np.float32)
        if embeddings.ndim != 2 or len(embeddings) != len(entries):
            raise ValueError(f"{len(entries)} entries but embeddings of shape {embeddings.shape}")
        self.entries = list(entries)
        self.embeddings = embeddings
        self.manifest = dict(manifest or {})
        self._by_id = {e.id: i for i, e in enumerate(self.entries)}
        self._parent: dict[str, str] = {}
        for entry in self.entries:
            for child in entry.children:
                self._parent.setdefault(child, entry.id)

    # --- views -----------------------------------------------------------------------------------------
    @property
    def version(self) -> str | None:
        return self.manifest.get("hek_version")

    @property
    def embedder_name(self) -> str | None:
        """The embedder the manifest says the titles were embedded with (what queries must use), or None."""
        built_with = self.manifest.get("embedder")
        if isinstance(built_with, dict):
            built_with = built_with.get("name") or built_with.get("model_id")
        return str(built_with) if built_with else None

    @property
    def dim(self) -> int:
        return int(self.embeddings.shape[1])

    def level(self, name: str) -> list[Entry]:
        """Entries of one level (``E1``, ``E2`` or ``E3``), in file order."""
        return [e for e in self.entries if e.level == name]

    def level_indices(self, name: str) -> np.ndarray:
        """Row indices of one level's entries in ``entries`` and ``embeddings``."""
        return np.array([i for i, e in enumerate(self.entries) if e.level == name], dtype=np.int64)

    def level_embeddings(self, name: str) -> tuple[list[Entry], np.ndarray]:
        indices = self.level_indices(name)
        return [self.entries[i] for i in indices], self.embeddings[indices]

    def get(self, entry_id: str) -> Entry | None:
        index = self._by_id.get(entry_id)
        return None if index is None else self.entries[index]

    def parent_of(self, entry_id: str) -> Entry | None:
        parent = self._parent.get(entry_id)
        return None if parent is None else self.get(parent)

    def children_of(self, entry: Entry | str) -> list[Entry]:
        entry = self.get(entry) if isinstance(entry, str) else entry
        return [c for c in (self.get(i) for i in (entry.children if entry else [])) if c is not None]

    def counts(self) -> dict[str, int]:
        counts = Counter(e.level for e in self.entries)
        return {level: counts.get(level, 0) for level in LEVELS}

    def __len__(self) -> int:
        return len(self.entries)

    # --- checks ----------------------------------------------------------------------------------------
    def check_hierarchy(self, where: str = "HEK") -> None:
        """Ids unique; every child exists one level down; no entry has two parents."""
        seen: dict[str, int] = {}
        for index, entry in enumerate(self.entries):
            if entry.id in seen:
                raise HiexpError(f"{where}: entry id {entry.id!r} appears twice (lines {seen[entry.id] + 1}, {index + 1})")
            seen[entry.id] = index
        parents: dict[str, str] = {}
        for entry in self.entries:
            if entry.level == "E1" and entry.children:
                raise HiexpError(f"{where}: E1 entry {entry.id} has children")
            below = LEVELS[LEVELS.index(entry.level) - 1] if entry.level != "E1" else None
            for child_id in entry.children:
                child = self.get(child_id)
                if child is None:
                    raise HiexpError(f"{where}: {entry.id} names child {child_id!r}, which is not in the HEK")
                if child.level != below:
                    raise HiexpError(f"{where}: {entry.id} ({entry.level}) has child {child_id} at {child.level}")
                if child_id in parents and parents[child_id] != entry.id:
                    raise HiexpError(f"{where}: {child_id} has two parents, {parents[child_id]} and {entry.id}")
                parents[child_id] = entry.id

    # --- files -----------------------------------------------------------------------------------------
    def save(self, directory: str | Path, overwrite: bool = False, extra_files: dict[str, bytes] | None = None,
             **manifest_fields: Any) -> Path:
        """Write the three files atomically; returns the directory. ``manifest_fields`` (embedder,
        thresholds, sources, ...) are merged into the manifest; counts, hashes and version are computed.
        ``extra_files`` (such as ``usefulness.json``) are written in the same atomic step, outside the
        content hashes. An existing directory is replaced only if it is empty or a HEK (or with
        ``overwrite``)."""
        self.check_hierarchy()
        norms = np.linalg.norm(self.embeddings, axis=1) if len(self.embeddings) else np.ones(0)
        if len(norms) and not np.allclose(norms, 1.0, atol=1e-3):
            raise ValueError("embeddings must be L2-normalised")
        entries_bytes = _entries_bytes(self.entries)
        embeddings_bytes = _embeddings_bytes(self.embeddings)
        from hashlib import sha256

        files = {ENTRIES: sha256(entries_bytes).hexdigest(), EMBEDDINGS: sha256(embeddings_bytes).hexdigest()}
        manifest = {**self.manifest, **manifest_fields}
        manifest.update(
            schema_version=HEK_SCHEMA_VERSION,
            hek_version=content_version(files[ENTRIES], files[EMBEDDINGS]),
            created=manifest.get("created") or time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            counts=self.counts(),
            dim=self.dim,
            files=files,
        )
        directory = Path(directory)
        with atomic_directory(directory, is_hek_dir, overwrite, what="HEK directory") as tmp:
            (tmp / ENTRIES).write_bytes(entries_bytes)
            (tmp / EMBEDDINGS).write_bytes(embeddings_bytes)
            (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
            for name, data in (extra_files or {}).items():
                if name in (MANIFEST, ENTRIES, EMBEDDINGS) or "/" in name:
                    raise ValueError(f"{name!r} cannot be an extra file of a HEK")
                (tmp / name).write_bytes(data)
        self.manifest = manifest
        return directory

    @classmethod
    def load(cls, directory: str | Path) -> HEK:
        """Read and check a HEK directory (or a shipped HEK by name, see ``SHIPPED_HEKS``); a ``HiexpError``
        names the file and the problem."""
        directory = resolve_hek_dir(directory)
        if not directory.is_dir():
            raise HiexpError(f"{directory}: no such HEK directory (build one with: hiexp build E1.jsonl --out DIR)")
        for name in (MANIFEST, ENTRIES, EMBEDDINGS):
            if not (directory / name).is_file():
                raise HiexpError(f"{directory}: {name} is missing; not a complete HEK (rebuild it)")
        manifest_path = directory / MANIFEST
        try:
            manifest = read_json(manifest_path)
        except HiexpError as exc:
            raise HiexpError(f"corrupted manifest: {exc}") from None
        if not isinstance(manifest, dict):
            raise HiexpError(f"{manifest_path}: corrupted manifest (not a JSON object)")
        if manifest.get("schema_version") != HEK_SCHEMA_VERSION:
            raise HiexpError(
                f"{manifest_path}: HEK schema_version {manifest.get('schema_version')!r}; this hiexp reads "
                f"{HEK_SCHEMA_VERSION} (rebuild the HEK)"
            )
        check_manifest(manifest, str(manifest_path))
        files = manifest["files"]
        for name in (ENTRIES, EMBEDDINGS):
            actual = sha256_file(directory / name)
            if files.get(name) != actual:
                raise HiexpError(
                    f"{directory / name}: content does not match the manifest (sha256 {actual[:12]}…, manifest "
                    f"says {str(files.get(name))[:12]}…): the file is corrupted or was edited; rebuild the HEK"
                )
        if manifest.get("hek_version") != content_version(files[ENTRIES], files[EMBEDDINGS]):
            raise HiexpError(f"{manifest_path}: hek_version does not match the content hashes; rebuild the HEK")
        entries: list[Entry] = []
        for lineno, record in enumerate(iter_jsonl(directory / ENTRIES), start=1):
            try:
                entries.append(Entry.from_dict(record))
            except ValidationError as exc:
                raise HiexpError(f"{directory / ENTRIES}:{lineno}: not an entry ({exc.errors()[0]['msg']})") from None
        try:
            embeddings = np.load(directory / EMBEDDINGS, allow_pickle=False)
        except (ValueError, OSError, EOFError) as exc:
            raise HiexpError(f"{directory / EMBEDDINGS}: unreadable ({exc})") from None
        if embeddings.dtype != np.float32 or embeddings.ndim != 2:
            raise HiexpError(f"{directory / EMBEDDINGS}: expected a 2-D float32 array, got {embeddings.dtype} "
                             f"{embeddings.shape}")
        if len(embeddings) != len(entries):
            raise HiexpError(f"{directory}: {len(entries)} entries but {len(embeddings)} embedding rows")
        if manifest.get("dim") not in (None, embeddings.shape[1]):
            raise HiexpError(f"{directory / EMBEDDINGS}: dimension {embeddings.shape[1]}, manifest says {manifest['dim']}")
        hek = cls(entries, embeddings, manifest)
        counts = hek.counts()
        expected = manifest.get("counts") or {}
        for level in LEVELS:
            if expected.get(level, 0) != counts[level]:
                raise HiexpError(
                    f"{directory}: manifest counts {expected} but {ENTRIES} holds {counts}"
                )
        if len(embeddings):
            norms = np.linalg.norm(embeddings, axis=1)
            bad = np.flatnonzero(~np.isfinite(norms) | (np.abs(norms - 1.0) > 1e-3))
            if len(bad):
                raise HiexpError(f"{directory / EMBEDDINGS}: row {int(bad[0])} is not a unit vector (NaN, infinite "
                                 "or not L2-normalised)")
        hek.check_hierarchy(str(directory))
        return hek
