"""What the HEK browser shows, as plain data: the hierarchy in pages, one entry, search by words and by
meaning, an entry's source trajectories, evaluation runs with and without experience, and versions.

Everything here is read-only and lazy where size matters: the hierarchy is paged by root, children are cut
to a few per node with a count, and trajectories are read from their files only when a page asks for them
(then indexed once by id).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from hiexp.contracts.trajectory import record_problem
from hiexp.errors import HiexpError
from hiexp.experience.hek import HEK, resolve_hek_dir
from hiexp.experience.schema import Entry
from hiexp.experience.show import count_leaves, roots
from hiexp.experience.usefulness import injected_entry_ids, load_usefulness
from hiexp.io import iter_jsonl


def usefulness_of(table: Any, entry_id: str) -> dict[str, Any] | None:
    stats = table.get(entry_id) if table is not None else None
    if stats is None:
        return None
    from dataclasses import asdict

    return asdict(stats)


@dataclass
class Step:
    """One turn of a trajectory as the browser shows it."""

    kind: str  # think | search | passages | experience | answer | text
    text: str
    highlight: bool = False


_TAGS = re.compile(r"<(think|search|answer|information|experience|tool_call|tool_response)>(.*?)</\1>", re.DOTALL)


def trajectory_steps(record: dict[str, Any], decisive: set[str] = frozenset()) -> list[Step]:
    """A trajectory record as steps: think, search (highlighted when ``decisive`` names the query),
    passages, experience injected, answer."""
    steps: list[Step] = []
    for turn in record.get("turns") or []:
        role, text = turn.get("role"), str(turn.get("text") or "")
        if role == "prompt":
            continue
        if role == "experience":
            steps.append(Step("experience", _strip_tags(text)))
            continue
        found = False
        for match in _TAGS.finditer(text):
            tag, body = match.group(1), match.group(2).strip()
            found = True
            kind = {"information": "passages", "tool_response": "passages", "tool_call": "search"}.get(tag, tag)
            if kind == "experience":
                kind = "experience"
            steps.append(Step(kind, body, kind == "search" and _norm(body) in decisive))
        if not found and text.strip():
            steps.append(Step("passages" if role == "tool" else "text", text.strip()))
    return steps


def _strip_tags(text: str) -> str:
    return re.sub(r"</?experience>", "", text).strip()


def _norm(text: str) -> str:
    return " ".join(str(text).lower().split())


def decisive_queries(entry: Entry, successes: list[dict], failures: list[dict]) -> set[str]:
    """Queries the distillation named: a query of a successful attempt that no failed attempt issued and
    that the entry's text quotes, or failing that every such query."""
    failed = {_norm(q) for r in failures for q in r.get("queries") or []}
    only_success = {_norm(q) for r in successes for q in r.get("queries") or []} - failed
    text = _norm(" ".join([entry.title, entry.description, entry.thinking]))
    quoted = {q for q in only_success if q and q in text}
    return quoted or only_success


class TrajectoryIndex:
    """Trajectory records by id, from a list of files, read on first use. The first file holding an id
    wins (the HEK's own sources come first)."""

    def __init__(self, paths: list[Path]):
        self.paths = [p for p in dict.fromkeys(paths) if p.is_file()]

    @cached_property
    def _records(self) -> dict[str, dict[str, Any]]:
        records: dict[str, dict[str, Any]] = {}
        for path in self.paths:
            for record in _usable_records(path):
                records.setdefault(str(record.get("id")), record)
        return records

    def get(self, trajectory_id: str) -> dict[str, Any] | None:
        return self._records.get(str(trajectory_id))


@dataclass
class RunPair:
    """Two evaluation runs on the same questions: without and with experience."""

    without: Path
    with_: Path
    rows: list[dict[str, Any]] = field(default_factory=list)
    records: tuple[dict[str, dict[str, Any]], dict[str, dict[str, Any]]] = ({}, {})
    """question id -> trajectory record, without and with (read once)"""


def _run_trajectories(run_dir: Path) -> dict[str, dict[str, Any]]:
    by_question: dict[str, dict[str, Any]] = {}
    files = sorted((run_dir / "trajectories").glob("*.jsonl")) if (run_dir / "trajectories").is_dir() else []
    if not files and (run_dir / "rollouts.jsonl").is_file():
        files = [run_dir / "rollouts.jsonl"]
    for path in files:
        for record in _usable_records(path):
            by_question.setdefault(str(record.get("question_id")), record)
    return by_question


def _usable_records(path: Path) -> Iterator[dict[str, Any]]:
    """The trajectory records of a file that the pages can show: unreadable lines, records with fields of
    the wrong kind, and a file removed since the browser started are passed over."""
    try:
        for record in iter_jsonl(path, skip_bad=True):
            if isinstance(record, dict) and record_problem(record) is None:
                yield record
    except (OSError, HiexpError):
        return


class BrowseData:
    """The HEK and runs a browser shows (``hiexp browse HEK [RUN_WITHOUT RUN_WITH]``)."""

    def __init__(self, hek_dir: str | Path, run_dirs: list[str | Path] | None = None,
                 trajectories: list[str | Path] | None = None, embedder: Any = None, threshold: float = 0.8,
                 page_size: int = 50, children_shown: int = 10):
        self.hek_dir = resolve_hek_dir(hek_dir)
        self.hek = HEK.load(hek_dir)
        self.usefulness = load_usefulness(self.hek_dir)
        self.threshold = threshold
        self.page_size = page_size
        self.children_shown = children_shown
        self._embedder = embedder
        self.run_dirs = [Path(r) for r in run_dirs or []]
        for run in self.run_dirs:
            if not run.is_dir():
                raise HiexpError(f"{run}: no such run directory")
        sources = (self.hek.manifest.get("sources") or {})
        listed = list(sources.get("trajectory_files") or []) + list(sources.get("update_trajectory_files") or [])
        candidates: list[Path] = [Path(t) for t in trajectories or []]
        for item in listed:
            path = Path(str(item.get("path", ""))) if isinstance(item, dict) else Path(str(item))
            candidates += [path, self.hek_dir / path, self.hek_dir.parent / path.name]
        for run in self.run_dirs:
            candidates += sorted(run.glob("trajectories/*.jsonl")) + sorted(run.glob("rollouts*.jsonl"))
        self.trajectories = TrajectoryIndex(candidates)

    # --- the hierarchy ------------------------------------------------------------------------------
    @cached_property
    def roots(self) -> list[Entry]:
        return roots(self.hek)

    def leaves(self, entry: Entry) -> int:
        return count_leaves(entry, self.hek)

    def node(self, entry: Entry, depth: int = 0) -> dict[str, Any]:
        """An entry for the tree, with its first children (``depth`` more levels) and counts."""
        children = entry.children
        shown = [self.hek.get(c) for c in children[: self.children_shown]] if depth > 0 else []
        return {
            "id": entry.id, "level": entry.level, "title": entry.title, "children_total": len(children),
            "leaves": self.leaves(entry), "usefulness": usefulness_of(self.usefulness, entry.id),
            "promoted": bool(entry.meta.get("promoted")),
            "children": [self.node(c, depth - 1) for c in shown if c is not None],
        }

    def pages(self) -> int:
        return max(1, -(-len(self.roots) // self.page_size))

    def hierarchy_page(self, page: int = 1) -> dict[str, Any]:
        page = min(max(1, page), self.pages())
        chosen = self.roots[(page - 1) * self.page_size : page * self.page_size]
        return {"page": page, "pages": self.pages(), "counts": self.hek.counts(), "version": self.hek.version,
                "description": self.hek.manifest.get("description") or "",
                "has_usefulness": self.usefulness is not None, "roots": [self.node(e, depth=2) for e in chosen]}

    def entry(self, entry_id: str, page: int = 1) -> dict[str, Any]:
        entry = self.hek.get(entry_id)
        if entry is None:
            raise KeyError(entry_id)
        parent = self.hek.parent_of(entry_id)
        per_page = 100
        pages = max(1, -(-len(entry.children) // per_page))
        page = min(max(1, page), pages)
        children = [self.hek.get(c) for c in entry.children[(page - 1) * per_page : page * per_page]]
        return {"entry": entry, "parent": parent, "children": [c for c in children if c is not None],
                "children_total": len(entry.children), "page": page, "pages": pages,
                "usefulness": usefulness_of(self.usefulness, entry_id),
                "has_sources": entry.level == "E1" and bool(entry.sources.get("trajectory_ids"))}

    # --- search -------------------------------------------------------------------------------------
    @property
    def embedder(self) -> Any:
        if self._embedder is None:
            from hiexp.search.embed import load_embedder

            self._embedder = load_embedder(self.hek.embedder_name or "default")
        return self._embedder

    @cached_property
    def _retriever(self) -> Any:
        from hiexp.experience.retrieve import ExperienceRetriever

        return ExperienceRetriever(self.hek, self.embedder, threshold=self.threshold, top_k=5)

    def search(self, text: str, k: int = 10, meaning: bool = True) -> dict[str, Any]:
        """Entries by words (every word of ``text`` in the title, description or tags) and by meaning: the
        agent's own lookups, the E1 match of a search query (with its cosine and whether it passes the
        threshold) and the E2/E3 entries a question would be given."""
        words = [w for w in _norm(text).split() if w]
        by_words = []
        if words:
            for entry in self.hek.entries:
                haystack = _norm(" ".join([entry.title, entry.description, " ".join(entry.tags)]))
                if all(w in haystack for w in words):
                    by_words.append(entry)
                    if len(by_words) >= k:
                        break
        result: dict[str, Any] = {"query": text, "words": by_words, "meaning": [], "e1": None,
                                  "start": [], "threshold": self.threshold}
        if meaning and text.strip():
            vector = np.asarray(self.embedder.encode_queries([text]), dtype=np.float32)
            vector /= max(float(np.linalg.norm(vector)), 1e-12)
            cosines = self.hek.embeddings @ vector[0]
            best = np.argsort(-cosines)[:k]
            result["meaning"] = [(self.hek.entries[i], float(cosines[i])) for i in best]
            match = self._retriever.for_queries([text])[0]
            if match.meta.get("best_id"):
                result["e1"] = {"entry": self.hek.get(match.meta["best_id"]), "cosine": match.meta["best_score"],
                                "passes": bool(match.meta.get("entry_ids"))}
            start = self._retriever.for_questions([text])[0]
            result["start"] = [(self.hek.get(i), s) for i, s in zip(start.meta.get("entry_ids", []),
                                                                     start.meta.get("scores", []), strict=False)]
        return result

    # --- provenance ---------------------------------------------------------------------------------
    def provenance(self, entry_id: str) -> dict[str, Any]:
        entry = self.hek.get(entry_id)
        if entry is None:
            raise KeyError(entry_id)
        sources = entry.sources
        success_ids = list(sources.get("success_ids") or [])
        failure_ids = list(sources.get("failure_ids") or [])
        if not success_ids and not failure_ids:
            success_ids = list(sources.get("trajectory_ids") or [])
        successes = [r for r in (self.trajectories.get(i) for i in success_ids) if r is not None]
        failures = [r for r in (self.trajectories.get(i) for i in failure_ids) if r is not None]
        decisive = decisive_queries(entry, successes, failures)
        missing = [i for i in success_ids + failure_ids if self.trajectories.get(i) is None]

        def view(record: dict[str, Any]) -> dict[str, Any]:
            return {"id": record.get("id"), "answer": record.get("answer"), "rewards": record.get("rewards") or {},
                    "steps": trajectory_steps(record, decisive)}

        return {"entry": entry, "question": sources.get("question") or "",
                "golden": (successes + failures)[0].get("golden_answers") if successes + failures else [],
                "successes": [view(r) for r in successes], "failures": [view(r) for r in failures],
                "missing": missing, "decisive": sorted(decisive)}

    # --- runs ---------------------------------------------------------------------------------------
    @cached_property
    def run_pair(self) -> RunPair | None:
        if len(self.run_dirs) < 2:
            return None
        without, with_ = self.run_dirs[0], self.run_dirs[1]
        a, b = _run_trajectories(without), _run_trajectories(with_)
        pair = RunPair(without, with_, records=(a, b))
        for question_id in [q for q in a if q in b]:
            ra, rb = a[question_id], b[question_id]
            sa, sb = (ra.get("rewards") or {}), (rb.get("rewards") or {})
            change = float(sb.get("cem", 0.0)) - float(sa.get("cem", 0.0))
            f1_change = float(sb.get("f1", 0.0)) - float(sa.get("f1", 0.0))
            pair.rows.append({
                "question_id": question_id, "question": ra.get("question") or rb.get("question"),
                "golden": ra.get("golden_answers") or [], "answer_without": ra.get("answer"),
                "answer_with": rb.get("answer"), "cem_change": change, "f1_change": round(f1_change, 3),
                "status": "improved" if change > 0 or (change == 0 and f1_change > 0) else
                          "worsened" if change < 0 or f1_change < 0 else "same",
                "injected": list(dict.fromkeys(injected_entry_ids(rb))),
            })
        return pair

    def runs(self, status: str = "all") -> dict[str, Any]:
        pair = self.run_pair
        if pair is None:
            return {"pair": None, "rows": [], "status": status, "counts": {}}
        counts = {s: sum(1 for r in pair.rows if r["status"] == s) for s in ("improved", "worsened", "same")}
        rows = [r for r in pair.rows if status == "all" or r["status"] == status]
        return {"pair": pair, "rows": rows, "status": status, "counts": counts}

    def run_question(self, question_id: str) -> dict[str, Any]:
        pair = self.run_pair
        if pair is None:
            raise KeyError(question_id)
        a, b = pair.records[0].get(question_id), pair.records[1].get(question_id)
        if a is None or b is None:
            raise KeyError(question_id)
        row = next(r for r in pair.rows if r["question_id"] == question_id)
        return {"row": row, "without": {"record": a, "steps": trajectory_steps(a)},
                "with": {"record": b, "steps": trajectory_steps(b)},
                "injected": [self.hek.get(i) for i in row["injected"] if self.hek.get(i) is not None]}

    # --- versions -----------------------------------------------------------------------------------
    def versions(self) -> list[dict[str, Any]]:
        """This version and its ancestors that can still be read, newest first, each with what changed."""
        out = []
        hek, directory = self.hek, self.hek_dir
        seen = set()
        while hek is not None and hek.version not in seen:
            seen.add(hek.version)
            parent_info = hek.manifest.get("parent") or {}
            parent = None
            path = parent_info.get("path")
            if path and Path(path).is_dir():
                try:
                    parent = HEK.load(path)
                except HiexpError:
                    parent = None
            update = hek.manifest.get("update") or {}
            item = {"version": hek.version, "path": str(directory), "counts": hek.counts(),
                    "parent": parent_info.get("hek_version"), "created": hek.manifest.get("created"),
                    "merged": update.get("merged") or {}, "evicted": update.get("evicted") or [],
                    "dissolved": update.get("dissolved") or [], "added": [], "removed": [], "added_e1": 0}
            if parent is not None:
                now, before = {e.id for e in hek.entries}, {e.id for e in parent.entries}
                item["added"] = [hek.get(i) for i in sorted(now - before)]
                item["removed"] = [parent.get(i) for i in sorted(before - now)]
            item["added_e1"] = sum(1 for e in item["added"] if e.level == "E1")
            out.append(item)
            hek, directory = parent, Path(path) if path else None
        return out


__all__ = ["BrowseData", "Step", "TrajectoryIndex", "decisive_queries", "trajectory_steps"]
