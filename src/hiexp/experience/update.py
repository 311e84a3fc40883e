"""Incremental HEK update: new experience into an existing hierarchy, written as a new version.

``update_hek`` takes a HEK and new E1 entries and gives the next version:

1. **Evict** the entries a usefulness table marks harmful (``usefulness.py``). An evicted E1 entry leaves
   its cluster; an evicted E2/E3 entry is dissolved and its children are placed again.
2. **Deduplicate** each new E1 entry against the kept ones and against the other new ones: a title whose
   cosine with an existing title reaches ``dedup_threshold`` is merged into that entry (its question joins
   ``sources.merged_questions``, so the leak guard still keeps it from that question's episodes).
3. **Place** each remaining new entry into the existing cluster whose Ward merge cost is lowest
   (``sqrt(2n/(n+1)) * ||x - centroid||``, the height scipy's Ward would merge it at), when that cost is
   within the level's threshold; entries that fit nowhere are clustered among themselves at the same
   threshold and form new clusters.
4. **Re-summarise** only the clusters whose members changed. A cluster's id is a hash of its members, so
   a cluster that ends up with the same members keeps its entry, its vector and its summary; the level
   above sees a changed child as a changed member and is updated the same way.
5. When the change is large (added plus evicted above ``recluster_fraction`` of the E1 entries), every
   level is clustered again from scratch instead; clusters that come out with the same members still keep
   their summaries.

``update_from_trajectories`` wraps it for trajectory files: it distils only groups of trajectories the
HEK has not seen (resumable, in a work directory keyed by the parent version and the inputs), measures
usefulness from the same trajectories, and saves the new version atomically with its parent recorded. The
parent directory is never written.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from hiexp.contracts.experience import Embedder
from hiexp.contracts.generation import Generator
from hiexp.errors import HiexpError
from hiexp.io import atomic_write_jsonl, cache_dir, exclusive_output, iter_jsonl, read_json, sha256_file, stable_hash

from .cluster import ClusterConfig, cluster_embeddings
from .distill import DistillConfig
from .hek import HEK, MANIFEST, is_hek_dir, is_shipped_name, resolve_hek_dir
from .index import unit_rows
from .schema import LEVELS, Entry
from .summarize import SummarizeConfig, summarize_clusters
from .usefulness import USEFULNESS_FILE, Usefulness, compute_usefulness


@dataclass
class UpdateConfig:
    """Options of an incremental update."""

    dedup_threshold: float = 0.9
    """A new E1 title with at least this cosine to an existing title (or an earlier new one) is merged into it."""
    recluster_fraction: float = 0.3
    """Re-cluster every level from scratch when added + evicted E1 entries exceed this share of the E1 level."""
    thresholds: tuple[float, float] | None = None
    """Ward heights for E1 -> E2 and E2 -> E3; by default the ones the HEK was built with."""
    evict_harmful: bool = True
    """Evict entries the usefulness table marks harmful."""
    min_episodes: int = 3
    """Episodes an entry must have been seen in before it can be marked harmful."""
    margin: float = 0.0
    """An entry is harmful when its effect is below ``-margin`` (and more episodes lost than gained)."""
    summarize: SummarizeConfig = field(default_factory=SummarizeConfig)
    seed: int = 0

    def __post_init__(self) -> None:
        for name, low, high in (("dedup_threshold", -1.0, 1.0), ("recluster_fraction", 0.0, 1.0), ("margin", 0.0, None)):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or not math.isfinite(value) or value < low or \
                    (high is not None and value > high):
                span = f"between {low:g} and {high:g}" if high is not None else f">= {low:g}"
                raise HiexpError(f"--{name.replace('_', '-')} must be a number {span}, got {value!r}")
        if int(self.min_episodes) < 1:
            raise HiexpError(f"--min-episodes must be >= 1, got {self.min_episodes}")


@dataclass
class UpdateReport:
    """What an update did (also stored in the new version's manifest under ``update``)."""

    added: list[str] = field(default_factory=list)
    merged: dict[str, str] = field(default_factory=dict)
    """new entry id -> the existing entry it was merged into"""
    evicted: list[str] = field(default_factory=list)
    dissolved: list[str] = field(default_factory=list)
    """E2/E3 entries evicted as harmful, whose children were placed again"""
    resummarised: dict[str, int] = field(default_factory=dict)
    """summaries written by the summariser per level (clusters whose members changed)"""
    kept_clusters: dict[str, int] = field(default_factory=dict)
    reclustered: bool = False
    counts_before: dict[str, int] = field(default_factory=dict)
    counts_after: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    groups: dict[str, int] = field(default_factory=dict)
    """trajectory groups by kind, when the update came from trajectories"""

    def render(self) -> str:
        before = ", ".join(f"{self.counts_before.get(lv, 0)} {lv}" for lv in LEVELS)
        after = ", ".join(f"{self.counts_after.get(lv, 0)} {lv}" for lv in LEVELS)
        summaries = ", ".join(f"{lv} {n}" for lv, n in self.resummarised.items()) or "none"
        return (f"{before} -> {after}; added {len(self.added)} E1, merged {len(self.merged)} duplicates, evicted "
                f"{len(self.evicted)} ({len(self.dissolved)} clusters dissolved); summaries written: {summaries}"
                f"{'; re-clustered from scratch' if self.reclustered else ''} ({self.seconds:.1f} s)")


def hek_thresholds(hek: HEK) -> tuple[float, float]:
    """The Ward heights a HEK was built with (manifest), else the build defaults."""
    manifest = hek.manifest or {}
    built = (manifest.get("build_config") or {}).get("thresholds") or (1.2, 1.5)
    out = []
    for position, level in enumerate(("E2", "E3")):
        info = (manifest.get("thresholds") or {}).get(level) or {}
        value = info.get("threshold") if isinstance(info, dict) else None
        out.append(float(value if value is not None else built[position]))
    return out[0], out[1]


def _summary_id(level: str, members: Sequence[str]) -> str:
    """The id ``summarize_clusters`` gives a cluster with these members (a singleton is a promotion)."""
    if len(members) == 1:
        return f"{level}-" + stable_hash([level, members[0]], 12)
    return f"{level}-" + stable_hash([level, sorted(members)], 12)


class _Vectors:
    """Unit vectors by entry id: one growing matrix and a row per id (no per-entry arrays at 100k entries)."""

    def __init__(self, ids: Sequence[str], matrix: np.ndarray):
        matrix = np.asarray(matrix, dtype=np.float32)
        self._buffer = np.empty((max(16, int(len(matrix) * 1.25)), matrix.shape[1]), dtype=np.float32)
        self._buffer[: len(matrix)] = matrix
        self._size = len(matrix)
        self.row = {i: r for r, i in enumerate(ids)}

    @property
    def matrix(self) -> np.ndarray:
        return self._buffer[: self._size]

    def add(self, ids: Sequence[str], matrix: np.ndarray) -> None:
        matrix = np.asarray(matrix, dtype=np.float32)
        if self._size + len(matrix) > len(self._buffer):
            grown = np.empty((2 * (self._size + len(matrix)), self._buffer.shape[1]), dtype=np.float32)
            grown[: self._size] = self.matrix
            self._buffer = grown
        self._buffer[self._size : self._size + len(matrix)] = matrix
        self.row.update((i, self._size + r) for r, i in enumerate(ids))
        self._size += len(matrix)

    def of(self, ids: Sequence[str]) -> np.ndarray:
        rows = np.fromiter((self.row[i] for i in ids), dtype=np.int64, count=len(ids))
        if len(rows) and rows[-1] - rows[0] == len(rows) - 1 and np.all(np.diff(rows) == 1):
            return self._buffer[rows[0] : rows[-1] + 1]  # a run of rows: a view, no copy
        return self._buffer[rows]


@dataclass
class _Level:
    """One level's entries (by id), with the shared vector table."""

    entries: dict[str, Entry]
    vectors: _Vectors


@dataclass
class _Update:
    """What every level of one update shares: the parent's summaries it may reuse (none of the harmful ones),
    the models, the options and the report it fills."""

    reusable: dict[str, Entry]
    summarizer: Generator | None
    embedder: Embedder
    config: UpdateConfig
    report: UpdateReport


def _update_level(
    level: str, below: _Level, parents: list[Entry], replaced: dict[str, str | None], unplaced: list[str],
    threshold: float, run: _Update,
) -> tuple[_Level, dict[str, str | None], list[str]]:
    """Next version of one level. ``replaced`` maps children that changed id (or vanished: None);
    ``unplaced`` are children that belong to no cluster yet. Returns the level, the same mapping for the
    level above, and this level's entries that need a place there."""
    clusters = [_continued(parent, replaced, below) for parent in parents]
    origin: list[str | None] = [parent.id for parent in parents]  # None for a new cluster
    pending = [u for u in dict.fromkeys(unplaced) if u in below.entries]
    if pending and clusters:
        pending = _place(pending, clusters, below.vectors, threshold)
    if pending:
        new = _new_clusters(pending, below.vectors, threshold, run.config)
        clusters += new
        origin += [None] * len(new)
    kept, todo, up_replaced, up_unplaced = _sort_clusters(level, clusters, origin, run.reusable)
    run.report.kept_clusters[level] = len(kept)
    kept.update((e.id, e) for e in _resummarise(level, todo, below, run))
    return _Level(kept, below.vectors), up_replaced, up_unplaced


def _continued(parent: Entry, replaced: dict[str, str | None], below: _Level) -> list[str]:
    """The members a parent's cluster keeps: its children under their new ids, without the vanished ones."""
    members = [replaced.get(c, c) for c in parent.children]
    return list(dict.fromkeys(m for m in members if m is not None and m in below.entries))


def _place(pending: list[str], clusters: list[list[str]], vectors: _Vectors, threshold: float) -> list[str]:
    """Put each pending entry into the cluster whose Ward merge cost is lowest, when that is within
    ``threshold`` (step 3 of the module doc); returns the entries that fit nowhere."""
    sizes = np.array([len(c) for c in clusters], dtype=np.float64)
    live = np.flatnonzero(sizes > 0)
    if not len(live):
        return pending
    members = [m for i in live for m in clusters[i]]  # cluster by cluster, so sums are segments
    starts = np.concatenate([[0], np.cumsum(sizes[live])[:-1]]).astype(np.int64)
    centroids = np.add.reduceat(vectors.of(members), starts, axis=0).astype(np.float64)
    centroids /= sizes[live][:, None]
    points = vectors.of(pending).astype(np.float64)
    sq = (points ** 2).sum(1)[:, None] + (centroids ** 2).sum(1)[None, :] - 2 * points @ centroids.T
    n = sizes[live]
    cost = np.sqrt(np.maximum(sq, 0.0)) * np.sqrt(2 * n / (n + 1))[None, :]
    best = cost.argmin(axis=1)
    still = []
    for row, member in enumerate(pending):
        if cost[row, best[row]] <= threshold:
            clusters[live[best[row]]].append(member)
        else:
            still.append(member)
    return still


def _new_clusters(pending: list[str], vectors: _Vectors, threshold: float, config: UpdateConfig) -> list[list[str]]:
    """The entries that fit no existing cluster, clustered among themselves at the level's threshold."""
    labels = cluster_embeddings(vectors.of(pending), ClusterConfig(threshold=threshold, seed=config.seed)).labels
    return [[pending[i] for i in np.flatnonzero(labels == label)]
            for label in range(int(labels.max()) + 1 if len(labels) else 0)]


def _sort_clusters(
    level: str, clusters: list[list[str]], origin: list[str | None], reusable: dict[str, Entry],
) -> tuple[dict[str, Entry], list[tuple[int, list[str]]], dict[str, str | None], list[str]]:
    """Which clusters keep a summary of the parent version (the same members give the same id) and which
    need a new one, and what the level above sees: ``(kept, todo, replaced, unplaced)``."""
    kept: dict[str, Entry] = {}
    up_replaced: dict[str, str | None] = {}
    up_unplaced: list[str] = []
    todo: list[tuple[int, list[str]]] = []
    for position, (members, parent_id) in enumerate(zip(clusters, origin, strict=True)):
        if not members:
            if parent_id is not None:
                up_replaced[parent_id] = None
            continue
        new_id = _summary_id(level, members)
        if parent_id is not None and new_id == parent_id:
            kept[parent_id] = reusable[parent_id]
            continue
        if new_id in reusable:  # the same members as a cluster of the parent version: its summary stays
            kept[new_id] = reusable[new_id]
        else:
            todo.append((position, members))
        if parent_id is not None:
            up_replaced[parent_id] = new_id
        else:
            up_unplaced.append(new_id)
    return kept, todo, up_replaced, up_unplaced


def _resummarise(level: str, todo: list[tuple[int, list[str]]], below: _Level, run: _Update) -> list[Entry]:
    """Summaries of the clusters whose members changed (step 4), their title vectors added to the table."""
    if not todo:
        run.report.resummarised[level] = 0
        return []
    member_ids = list(dict.fromkeys(m for _, members in todo for m in members))
    position_of = {m: i for i, m in enumerate(member_ids)}
    member_entries = [below.entries[m] for m in member_ids]
    member_vectors = below.vectors.of(member_ids)
    made, warnings = summarize_clusters(member_entries, member_vectors,
                                        [[position_of[m] for m in members] for _, members in todo], level,
                                        run.summarizer, run.config.summarize, show_progress=False)
    run.report.resummarised[level] = sum(1 for _, members in todo if len(members) > 1)
    fresh = [e for e in made if e.id not in below.vectors.row]
    if fresh:
        below.vectors.add([e.id for e in fresh], unit_rows(np.asarray(
            run.embedder.encode_passages([e.title for e in fresh]), dtype=np.float32)))
    return made


EXACT_DEDUP_MAX = 20_000


def _nearest(vectors: np.ndarray, kept_ids: list[str], hek: HEK, table: _Vectors,
             probe: int = 8) -> tuple[np.ndarray, np.ndarray]:
    """For each new vector, the position in ``kept_ids`` of the closest kept E1 entry and its cosine.

    Exact up to ``EXACT_DEDUP_MAX`` entries. Above, the E2 clusters are the coarse index: each vector is
    compared with the members of its ``probe`` nearest cluster centroids only (a duplicate, at a cosine of
    0.9 or more, sits in one of them), which keeps a 1,000-entry update of a 100k HEK far from 10^8 products.
    """
    if len(kept_ids) <= EXACT_DEDUP_MAX:
        similarity = vectors @ table.of(kept_ids).T
        column = similarity.argmax(axis=1)
        return column, similarity[np.arange(len(vectors)), column]
    position = {i: p for p, i in enumerate(kept_ids)}
    clusters = [[c for c in e.children if c in position] for e in hek.level("E2")]
    clusters = [c for c in clusters if c]
    placed = {c for cluster in clusters for c in cluster}
    loose = [i for i in kept_ids if i not in placed]
    clusters += [loose[k : k + 64] for k in range(0, len(loose), 64)]
    members = [m for cluster in clusters for m in cluster]
    member_rows = np.fromiter((table.row[m] for m in members), dtype=np.int64, count=len(members))
    member_position = np.fromiter((position[m] for m in members), dtype=np.int64, count=len(members))
    sizes = np.array([len(c) for c in clusters], dtype=np.int64)
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)
    centroids = unit_rows(np.add.reduceat(table.matrix[member_rows], starts, axis=0))
    probe = min(probe, len(clusters))
    nearest = np.argpartition(-(vectors @ centroids.T), probe - 1, axis=1)[:, :probe]
    column = np.zeros(len(vectors), dtype=np.int64)
    score = np.full(len(vectors), -np.inf, dtype=np.float32)
    matrix = table.matrix
    for row, picks in enumerate(nearest):
        spans = np.concatenate([np.arange(starts[k], starts[k] + sizes[k]) for k in picks])
        cosines = matrix[member_rows[spans]] @ vectors[row]
        best = int(cosines.argmax())
        column[row], score[row] = member_position[spans[best]], cosines[best]
    return column, score


def update_hek(
    hek: HEK,
    new_e1: Sequence[Entry],
    embedder: Embedder,
    summarizer: Generator | None,
    config: UpdateConfig | None = None,
    usefulness: Usefulness | None = None,
    new_vectors: np.ndarray | None = None,
) -> tuple[HEK, UpdateReport]:
    """The next version of ``hek`` with ``new_e1`` added (see the module doc). ``new_vectors`` are the new
    entries' title embeddings when already computed. The returned HEK is not saved; its manifest carries
    the parent version and the report."""
    config = config or UpdateConfig()
    started = time.perf_counter()
    report = UpdateReport(counts_before=hek.counts())
    thresholds = config.thresholds or hek_thresholds(hek)
    old_ids = {e.id: e for e in hek.entries}
    table = _Vectors([e.id for e in hek.entries], hek.embeddings)
    harmful = _harmful(old_ids, usefulness, config, report)
    e1 = {e.id: e for e in hek.level("E1") if e.id not in harmful}
    reusable = {i: e for i, e in old_ids.items() if i not in harmful}  # a harmful summary is never reused
    run = _Update(reusable, summarizer, embedder, config, report)
    _add_new([e for e in new_e1 if e.id not in old_ids], new_vectors, e1, hek, table, run)
    change = len(report.added) + len(report.evicted)
    report.reclustered = change > config.recluster_fraction * max(1, report.counts_before.get("E1", 0))
    levels = _update_levels(hek, _Level(e1, table), harmful, thresholds, run)
    return _next_version(hek, levels, table, report, started)


def _harmful(old_ids: dict[str, Entry], usefulness: Usefulness | None, config: UpdateConfig,
             report: UpdateReport) -> set[str]:
    """The entries to evict (step 1), recorded in the report as evicted E1 entries and dissolved summaries."""
    harmful: set[str] = set()
    if usefulness is not None and config.evict_harmful:
        harmful = usefulness.harmful_ids(config.min_episodes, config.margin) & set(old_ids)
    report.evicted = sorted(i for i in harmful if old_ids[i].level == "E1")
    report.dissolved = sorted(i for i in harmful if old_ids[i].level != "E1")
    return harmful


def _add_new(new_e1: list[Entry], new_vectors: np.ndarray | None, e1: dict[str, Entry], hek: HEK,
             table: _Vectors, run: _Update) -> None:
    """Deduplicate the new entries against the kept ones and each other (step 2): each joins ``e1``, or is
    merged into the entry it repeats; the added ones get their rows in ``table``."""
    if new_vectors is None:
        new_vectors = run.embedder.encode_passages([e.title for e in new_e1]) if new_e1 else np.zeros((0, hek.dim))
    new_vectors = unit_rows(np.asarray(new_vectors, dtype=np.float32).reshape(len(new_e1), hek.dim))
    kept_ids = list(e1)
    best_column = best_score = None
    if kept_ids and new_e1:
        best_column, best_score = _nearest(new_vectors, kept_ids, hek, table)
    among_new = new_vectors @ new_vectors.T if new_e1 else None
    added: list[str] = []
    added_rows: list[int] = []
    for row, entry in enumerate(new_e1):
        target = None
        if best_score is not None and best_score[row] >= run.config.dedup_threshold:
            target = kept_ids[int(best_column[row])]
        if target is None and added_rows:
            among = among_new[row, added_rows]
            column = int(among.argmax())
            if among[column] >= run.config.dedup_threshold:
                target = added[column]
        if target is None:
            e1[entry.id] = entry
            added.append(entry.id)
            added_rows.append(row)
            continue
        e1[target] = _merged(e1[target], entry)
        run.report.merged[entry.id] = target
    run.report.added = added
    if added:
        table.add(added, new_vectors[added_rows])


def _merged(host: Entry, duplicate: Entry) -> Entry:
    """``host`` with a duplicate's question and id recorded, so that the leak guard also keeps it from the
    duplicate's question."""
    sources = dict(host.sources)
    question = duplicate.sources.get("question")
    merged_questions = list(sources.get("merged_questions") or [])
    if question and question not in merged_questions and question != sources.get("question"):
        merged_questions.append(question)
    sources["merged_questions"] = merged_questions
    sources["merged_ids"] = sorted(set(sources.get("merged_ids") or []) | {duplicate.id})
    return host.model_copy(update={"sources": sources})


def _update_levels(hek: HEK, below: _Level, harmful: set[str], thresholds: tuple[float, float],
                   run: _Update) -> dict[str, _Level]:
    """E2 then E3, each updated from the changes of the level below (steps 3 to 5): its replaced and
    unplaced children, and the children of its dissolved entries."""
    report = run.report
    replaced: dict[str, str | None] = {i: None for i in report.evicted}
    unplaced = list(report.added)
    levels_out: dict[str, _Level] = {"E1": below}
    for level, threshold in zip(("E2", "E3"), thresholds, strict=True):
        parents = [e for e in hek.level(level) if e.id not in harmful]
        for dissolved in (e for e in hek.level(level) if e.id in harmful):
            unplaced.extend(replaced.get(c, c) for c in dissolved.children)
            replaced[dissolved.id] = None
        if report.reclustered:
            unplaced = list(below.entries)
            parents = []
        unplaced = [u for u in unplaced if u is not None]
        below, replaced, unplaced = _update_level(level, below, parents, replaced, unplaced, threshold, run)
        # the summaries of unchanged clusters name their (unchanged) children: nothing to rewrite
        levels_out[level] = below
    return levels_out


def _next_version(hek: HEK, levels: dict[str, _Level], table: _Vectors, report: UpdateReport,
                  started: float) -> tuple[HEK, UpdateReport]:
    """The new HEK from its levels, checked, with the parent and the report in its manifest."""
    entries = [e for lv in LEVELS for e in levels[lv].entries.values()]
    vectors = table.of([e.id for e in entries]) if entries else np.zeros((0, hek.dim))
    manifest = {k: v for k, v in (hek.manifest or {}).items()
                if k not in ("created", "hek_version", "files", "counts", "update", "parent")}
    manifest["parent"] = {"hek_version": hek.version}
    manifest["lineage"] = [*list((hek.manifest or {}).get("lineage") or []), hek.version]
    result = HEK(entries, vectors, manifest)
    result.check_hierarchy("updated HEK")
    report.counts_after = result.counts()
    report.seconds = round(time.perf_counter() - started, 3)
    result.manifest["update"] = asdict(report)
    return result, report


# --------------------------------------------------------------------------------------------------------
# From trajectory files
# --------------------------------------------------------------------------------------------------------


def seen_trajectory_files(hek: HEK) -> set[str]:
    """sha256 of the trajectory files a HEK (or an earlier update of it) was distilled from.

    Files, not trajectory ids: ids (``question#sample``) repeat across runs and training steps. A file
    that changed is read again; its groups that the HEK already holds give the same E1 ids (a hash of
    the group's trajectories and the reply) and are dropped, and their replies come from the cache."""
    sources = (hek.manifest or {}).get("sources") or {}
    files = list(sources.get("trajectory_files") or []) + list(sources.get("update_trajectory_files") or [])
    return {str(f.get("sha256")) for f in files if isinstance(f, dict) and f.get("sha256")}


def update_key(hek: HEK, paths: Sequence[Path], config: UpdateConfig, distill_config: DistillConfig,
               models: Sequence[str] = ()) -> str:
    """Names the work of one update: the same parent, inputs, options and models (reflector, summariser,
    embedder) give the same key, so a re-run resumes it and a run with another reflector starts afresh."""
    parts = [hek.version, [sha256_file(p) for p in paths], asdict(config), asdict(distill_config)]
    if models:
        parts.append(list(models))
    return stable_hash(parts, 12)


def check_update_output(hek_dir: str | Path, hek: HEK, out: Path) -> None:
    """Refuse an ``--out`` that would replace or nest in the HEK being updated or one of its ancestors."""
    out = out.resolve()
    source = resolve_hek_dir(hek_dir).resolve()
    if out == source or source.is_relative_to(out):
        raise HiexpError(f"{out}: it holds the HEK being updated; the new version needs another --out")
    if out.is_relative_to(source):
        raise HiexpError(f"{out}: inside the HEK being updated; give a directory outside it")
    ancestor = (hek.manifest.get("parent") or {}).get("path")
    seen = set()
    while isinstance(ancestor, str) and ancestor and ancestor not in seen:
        seen.add(ancestor)
        path = Path(ancestor).resolve()
        if out == path or path.is_relative_to(out):
            raise HiexpError(f"{out}: it holds an earlier version of this HEK; the new version needs another --out")
        try:  # only the manifest: loading the whole HEK would hash its files for one field
            manifest = read_json(path / MANIFEST)
        except HiexpError:
            break
        parent = manifest.get("parent") if isinstance(manifest, dict) else None
        ancestor = parent.get("path") if isinstance(parent, dict) else None


def default_out_dir(hek_dir: str | Path, key: str) -> Path:
    if is_shipped_name(hek_dir):
        raise HiexpError(f"the shipped HEK {str(hek_dir)!r} cannot take a version beside it: give --out DIR")
    hek_dir = Path(hek_dir)
    return hek_dir.with_name(f"{hek_dir.name}-{key[:8]}")


def update_from_trajectories(
    hek_dir: str | Path,
    trajectory_paths: Sequence[str | Path],
    reflector: Generator,
    embedder: Embedder,
    summarizer: Generator | None = None,
    out_dir: str | Path | None = None,
    config: UpdateConfig | None = None,
    distill_config: DistillConfig | None = None,
    usefulness: Usefulness | None = None,
    show_progress: bool = True,
    overwrite: bool = False,
    require_change: bool = True,
) -> tuple[Path, UpdateReport]:
    """Distil the new trajectories' contrastive groups, update the HEK, save the new version.

    With ``require_change`` (the CLI), an update that adds, merges and evicts nothing, or whose every
    reflection failed, raises instead of saving a copy of the parent; training's closed loop passes False
    and gets the unchanged version.

    Resumable: the distillation runs in a work directory keyed by the parent version and the inputs
    (``hiexp.io.cache_dir("updates", key)``), so a run killed at any point is completed by running it
    again; the parent directory is only read, and the new one appears whole or not at all.
    ``usefulness`` defaults to the one measured on ``trajectory_paths``.
    """
    config = config or UpdateConfig()
    distill_config = distill_config or DistillConfig()
    hek = HEK.load(hek_dir)
    paths = [Path(p) for p in trajectory_paths]
    for path in paths:
        if not path.is_file():
            raise HiexpError(f"{path}: no such trajectory file")
    models = [str(getattr(m, "model_id", "?")) for m in (reflector, summarizer or reflector)]
    models.append(str(getattr(embedder, "model_id", "?")))
    key = update_key(hek, paths, config, distill_config, models)
    out = Path(out_dir) if out_dir is not None else default_out_dir(hek_dir, key)
    check_update_output(hek_dir, hek, out)
    with exclusive_output(out, "hiexp update"):
        return _update_into(hek_dir, hek, paths, reflector, embedder, summarizer, out, key, config, distill_config,
                            usefulness, show_progress, overwrite, require_change)


def _update_into(hek_dir: str | Path, hek: HEK, paths: list[Path], reflector: Generator, embedder: Embedder,
                 summarizer: Generator | None, out: Path, key: str, config: UpdateConfig,
                 distill_config: DistillConfig, usefulness: Usefulness | None, show_progress: bool,
                 overwrite: bool, require_change: bool) -> tuple[Path, UpdateReport]:
    from .distill import distill

    if is_hek_dir(out):
        done = HEK.load(out)
        if (done.manifest.get("parent") or {}).get("hek_version") == hek.version and \
                (done.manifest.get("update") or {}).get("key") == key:
            return out, UpdateReport(**{k: v for k, v in done.manifest["update"].items()
                                        if k not in ("key", "models")})
    from hiexp.io import check_output_dir

    check_output_dir(out, is_hek_dir, overwrite, what="HEK directory")
    work = cache_dir("updates", key)
    seen = seen_trajectory_files(hek)
    fresh = work / "trajectories.jsonl"
    if not fresh.exists():
        records = [r for p in paths if sha256_file(p) not in seen for r in iter_jsonl(p)]
        atomic_write_jsonl(fresh, records)
    e1_path = work / "e1.jsonl"
    summary = distill([fresh], e1_path, reflector, distill_config, show_progress=show_progress) \
        if fresh.stat().st_size else None
    if require_change and summary is not None and summary.all_failed:
        raise HiexpError(f"every one of the {summary.groups_failed} reflections failed, nothing was written "
                         f"(work kept in {work}); run the same command again to retry them")
    new_e1 = [Entry.from_dict({"level": "E1", **r}) for r in iter_jsonl(e1_path)] if e1_path.exists() else []
    if usefulness is None:
        usefulness = compute_usefulness(iter_jsonl(fresh), distill_config.reward_key)
    updated, report = update_hek(hek, new_e1, embedder, summarizer or reflector, config, usefulness)
    if require_change and not (report.added or report.merged or report.evicted or report.dissolved):
        episodes = sum(1 for _ in iter_jsonl(fresh))
        raise HiexpError(f"nothing to add and nothing to evict from {episodes} new episodes (no contrastive group "
                         "gave an entry, no entry measured harmful): no new version was written")
    if summary is not None:
        report.groups = dict(summary.groups_by_kind)
    updated.manifest["parent"] = {"hek_version": hek.version, "path": str(resolve_hek_dir(hek_dir))}
    sources = dict(updated.manifest.get("sources") or {})
    sources["update_trajectory_files"] = [
        *list(sources.get("update_trajectory_files") or []),
        *({"path": str(p), "sha256": sha256_file(p)} for p in paths),
    ]
    updated.manifest["sources"] = sources
    # who wrote this version's new entries and summaries (the top-level names stay those of the first build)
    updated.manifest["update"] = {**asdict(report), "key": key, "models": {
        "reflector": str(getattr(reflector, "model_id", "?")),
        "summarizer": str(getattr(summarizer or reflector, "model_id", "?"))}}
    usefulness.hek_version = hek.version  # the version the measured episodes saw
    table = (json.dumps(usefulness.to_dict(), indent=1, ensure_ascii=False) + "\n").encode("utf-8")
    updated.save(out, overwrite=overwrite, extra_files={USEFULNESS_FILE: table})
    return out, report


__all__ = ["UpdateConfig", "UpdateReport", "default_out_dir", "hek_thresholds", "seen_trajectory_files",
           "update_from_trajectories", "update_hek", "update_key"]
