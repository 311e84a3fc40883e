"""Build a HEK from E1 entries: embed titles, cluster (Ward), summarise clusters into E2, then E2 into E3.

Each level is clustered on its own title embeddings with its own threshold (or target number of clusters).
A threshold that puts everything into one cluster or leaves every entry alone is reported with thresholds
that would give other counts (taken from the dendrogram's merge heights), and the build goes on.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from pydantic import ValidationError

from hiexp.contracts.experience import Embedder
from hiexp.contracts.generation import Generator
from hiexp.contracts.trajectory import Trajectory
from hiexp.errors import HiexpError
from hiexp.io import check_output_dir, iter_jsonl, sha256_file

from .calibrate import DEFAULT_FIRE_RATE, calibrate_e1_threshold, training_searches
from .cases import CaseConfig, cases_from_trajectories
from .cluster import ClusterConfig, cluster_embeddings, degenerate_warning
from .distill import iter_trajectory_records, sidecar_paths
from .hek import HEK, is_hek_dir
from .lessons import FORM, type_plans
from .retrieve import check_case_placement
from .schema import Entry
from .summarize import SummarizeConfig, summarize_clusters

logger = logging.getLogger(__name__)


@dataclass
class BuildConfig:
    """Options of ``build_hek``."""

    thresholds: tuple[float, float] = (1.2, 1.5)
    """Ward cut heights for E1 -> E2 and E2 -> E3 (unit vectors merge at their Euclidean distance, 0-2)."""
    n_clusters: tuple[int | None, int | None] | None = None
    """Target numbers of clusters per level instead of thresholds (None per level = use the threshold)."""
    exact_max: int = 5000
    """Exact Ward up to this many entries per level; above it the two-stage method (see cluster.py)."""
    max_centroids: int = 2000
    """Centroids of the two-stage method."""
    summarize: SummarizeConfig = field(default_factory=SummarizeConfig)
    skip_bad: bool = False
    """Skip malformed lines of the E1 files (with a warning) instead of stopping."""
    seed: int = 0
    description: str = ""
    """A sentence for the manifest saying what the HEK was built from (shown by reports)."""
    e1_fire_rate: float | None = DEFAULT_FIRE_RATE
    """Share of the training searches that should receive an E1 entry: the E1 threshold is calibrated to it
    on the queries of the trajectories the E1 entries came from (``calibrate.py``), when those files are at
    hand, and recorded in the manifest. None: no calibration (retrieval then uses 0.8)."""


def read_e1(paths: Sequence[str | Path], skip_bad: bool = False) -> list[Entry]:
    """E1 entries from JSONL files, with file:line errors; ids must be unique."""
    entries: list[Entry] = []
    seen: dict[str, str] = {}
    for path in paths:
        for lineno, record in enumerate(iter_jsonl(path, skip_bad=skip_bad), start=1):
            where = f"{path}:{lineno}"
            record = {"level": "E1", **record}
            try:
                entry = Entry.from_dict(record)
            except ValidationError as exc:
                problem = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()[:3])
                if skip_bad:
                    logger.warning("%s: not an E1 entry (%s); skipped", where, problem)
                    continue
                raise HiexpError(f"{where}: not an E1 entry ({problem})") from None
            if entry.level != "E1":
                raise HiexpError(f"{where}: level {entry.level}, expected E1 entries")
            if entry.id in seen:
                raise HiexpError(f"{where}: entry id {entry.id!r} already appeared at {seen[entry.id]}")
            seen[entry.id] = where
            entries.append(entry)
    return entries


def _sources(paths: Sequence[str | Path]) -> dict:
    """Manifest ``sources``: the E1 files and, from their ``.meta.json``, the trajectory files, with hashes."""
    e1_files, trajectories, reflectors = [], [], []
    for path in paths:
        path = Path(path)
        e1_files.append({"path": str(path), "sha256": sha256_file(path)})
        meta_path = sidecar_paths(path)[1]
        if meta_path.exists():
            try:
                meta = json.loads(meta_path.read_text(encoding="utf-8"))
                trajectories.extend(meta.get("trajectory_files", []))
            except ValueError:
                logger.warning("%s is not valid JSON; trajectory sources unknown", meta_path)
    return {"e1_files": e1_files, "trajectory_files": trajectories, "reflectors": reflectors}


def _level(
    name: str, below: list[Entry], vectors: np.ndarray, threshold: float, n_clusters: int | None,
    config: BuildConfig, summarizer: Generator | None, embedder: Embedder, warnings: list[str],
    show_progress: bool,
) -> tuple[list[Entry], np.ndarray, dict]:
    cluster_config = ClusterConfig(threshold=threshold, n_clusters=n_clusters, exact_max=config.exact_max,
                                   max_centroids=config.max_centroids, seed=config.seed)
    clustering = cluster_embeddings(vectors, cluster_config)
    warning = degenerate_warning(clustering, f"{below[0].level} -> {name}" if below else name)
    if warning:
        warnings.append(warning)
        logger.warning(warning)
    clusters = clustering.members()
    entries, summary_warnings = summarize_clusters(below, vectors, clusters, name, summarizer,
                                                   config.summarize, show_progress)
    for message in summary_warnings:
        logger.warning(message)
    warnings.extend(summary_warnings)
    level_vectors = embedder.encode_passages([e.title for e in entries]) if entries else np.zeros(
        (0, vectors.shape[1]), dtype=np.float32)
    sizes = clustering.sizes()
    info = {
        "threshold": None if n_clusters is not None else threshold,
        "n_clusters_requested": n_clusters,
        "method": clustering.method,
        "clusters": clustering.n_clusters,
        "singletons": sum(1 for s in sizes if s == 1),
        "largest": max(sizes) if sizes else 0,
        "candidates": [{"threshold": t, "clusters": c} for t, c in clustering.threshold_candidates()],
    }
    return entries, level_vectors, info


def build_hek(
    e1: Sequence[str | Path] | Sequence[Entry],
    out_dir: str | Path | None,
    embedder: Embedder,
    summarizer: Generator | None,
    config: BuildConfig | None = None,
    show_progress: bool = True,
    overwrite: bool = False,
) -> HEK:
    """Build (and, with ``out_dir``, save) a HEK from E1 files or entries. Returns the HEK; its manifest
    records the embedder, reflector(s), summariser, per-level thresholds and cluster counts, sources and
    the warnings of the build. ``out_dir`` may be new, empty or an earlier HEK; anything else is refused
    before any work unless ``overwrite``."""
    config = config or BuildConfig()
    if out_dir is not None:
        check_output_dir(out_dir, is_hek_dir, overwrite, what="HEK directory")
    paths = [Path(p) for p in e1 if not isinstance(p, Entry)]
    entries_e1 = read_e1(paths, config.skip_bad) if paths else [e for e in e1 if isinstance(e, Entry)]
    if not entries_e1:
        where = ", ".join(map(str, paths)) or "the input"
        raise HiexpError(
            f"no E1 entries in {where}: nothing to build (did distillation fail for every group? see the "
            ".groups.jsonl file next to it)"
        )
    n_clusters = list(config.n_clusters or (None, None))
    thresholds = list(config.thresholds)
    if len(thresholds) != 2 or len(n_clusters) != 2:
        raise HiexpError("give two thresholds (E1->E2, E2->E3) and at most two cluster counts")
    logger.info("embedding %d E1 titles with %s", len(entries_e1), embedder.model_id)
    vectors_e1 = embedder.encode_passages([e.title for e in entries_e1])
    warnings: list[str] = []
    if all(e.meta.get("form") == FORM for e in entries_e1):
        # checked lessons are grouped by their question type, and each type's plan composed by rule
        entries_e2, entries_e3 = type_plans(entries_e1)
        vectors_e2, vectors_e3 = (embedder.encode_passages([e.title for e in level]) for level in (entries_e2, entries_e3))
        info_e2 = info_e3 = {"method": "by question type (checked lessons)"}
    else:
        entries_e2, vectors_e2, info_e2 = _level("E2", entries_e1, vectors_e1, thresholds[0], n_clusters[0], config,
                                                 summarizer, embedder, warnings, show_progress)
        entries_e3, vectors_e3, info_e3 = _level("E3", entries_e2, vectors_e2, thresholds[1], n_clusters[1], config,
                                                 summarizer, embedder, warnings, show_progress)
    hek = HEK(entries_e1 + entries_e2 + entries_e3, np.concatenate([vectors_e1, vectors_e2, vectors_e3]))
    sources = _sources(paths) if paths else {}
    reflectors = sorted({e.model for e in entries_e1 if e.model} | set(sources.pop("reflectors", [])))
    manifest = {
        "description": config.description,
        "embedder": {
            "model_id": embedder.model_id, "dim": int(embedder.dim), "field": "title",
            "query_prefix": getattr(embedder, "query_prefix", ""),
            "passage_prefix": getattr(embedder, "passage_prefix", ""),
        },
        "reflector": reflectors[0] if len(reflectors) == 1 else reflectors,
        "summarizer": getattr(summarizer, "model_id", None),
        "thresholds": {"E2": info_e2, "E3": info_e3},
        "sources": sources,
        "singletons": "promoted: a cluster of one entry is copied one level up (meta.promoted), no model call",
        "build_config": {k: v for k, v in asdict(config).items() if k not in ("summarize", "description")},
        "warnings": warnings,
    }
    hek.manifest = manifest
    calibration = _calibrate(hek, embedder, sources.get("trajectory_files", []), config.e1_fire_rate)
    if calibration is not None:
        manifest["e1_threshold"] = calibration
        logger.info("E1 threshold %s (a %g share of %s training searches reach it)", calibration["value"],
                    calibration["fire_rate"], calibration["queries"])
    if out_dir is not None:
        hek.save(out_dir, overwrite=overwrite)
    return hek


def _calibrate(hek: HEK, embedder: Embedder, files: list[dict], fire_rate: float | None) -> dict | None:
    """Calibrate the E1 threshold on the training searches of the trajectory files still at hand."""
    paths = [Path(f["path"]) for f in files if isinstance(f, dict) and isinstance(f.get("path"), str)]
    paths = [p for p in paths if p.is_file()]
    if fire_rate is None or not paths:
        return None
    try:
        queries, questions = training_searches(read_rollouts(paths))
    except HiexpError as exc:
        logger.warning("no E1 threshold calibration (%s)", exc)
        return None
    return calibrate_e1_threshold(hek, embedder, queries, questions, fire_rate)


def read_rollouts(paths: Sequence[str | Path]) -> list[Trajectory]:
    """Trajectory records of rollout files, with file:line errors (ids may repeat across files: two runs
    of the same questions are two sets of episodes)."""
    return [trajectory for _, _, trajectory in iter_trajectory_records(paths)]


def build_case_hek(
    rollouts: Sequence[str | Path],
    out_dir: str | Path | None,
    embedder: Embedder,
    case_config: CaseConfig | None = None,
    per_episode: int = 2,
    placement: str = "replace",
    description: str = "",
    overwrite: bool = False,
) -> HEK:
    """A HEK of worked cases alone, from rollouts, with no model call: one case per question that has a
    verified success (``cases.py``), titled by its question and embedded as such. The manifest recommends
    ``per_episode`` cases per episode and their ``placement``, which ``hiexp eval`` / ``rollout`` / training
    use unless told otherwise."""
    case_config = case_config or CaseConfig()
    check_case_placement(placement)
    if out_dir is not None:
        check_output_dir(out_dir, is_hek_dir, overwrite, what="HEK directory")
    records = read_rollouts(rollouts)
    entries, counts = cases_from_trajectories(records, case_config)
    if not entries:
        raise HiexpError(f"no verified success ({case_config.reward_key} >= {case_config.threshold:g}) that searched "
                         f"and answered in {', '.join(map(str, rollouts))} ({counts['episodes']} episodes): no case to keep")
    logger.info("%d cases from %d questions (%d episodes); embedding their questions with %s", counts["cases"],
                counts["questions"], counts["episodes"], embedder.model_id)
    vectors = embedder.encode_passages([e.title for e in entries])
    hek = HEK(entries, vectors)
    hek.manifest = {
        "description": description,
        "embedder": {
            "model_id": embedder.model_id, "dim": int(embedder.dim), "field": "title",
            "query_prefix": getattr(embedder, "query_prefix", ""),
            "passage_prefix": getattr(embedder, "passage_prefix", ""),
        },
        "reflector": None,
        "summarizer": None,
        "cases": {"per_episode": per_episode, "placement": placement, "config": asdict(case_config), **counts},
        "sources": {"trajectory_files": [{"path": str(p), "sha256": sha256_file(p)} for p in rollouts]},
        "warnings": [],
    }
    if out_dir is not None:
        hek.save(out_dir, overwrite=overwrite)
    return hek
