"""Usage and usefulness of every HEK entry, from the episodes that were shown it.

Every episode records the entries injected into it (``experience`` turns carry ``meta.entry_ids``). For an
entry, the episodes that saw it are compared with episodes of the *same question* that did not see it
(another sample, another arm of an evaluation, a run without the HEK); when every episode of a question saw
the entry, the question's mean reward is the baseline instead. Each episode that saw the entry then counts
as *helpful* (reward above its baseline), *harmful* (below) or neutral, and the entry's ``effect`` is the
mean of reward minus baseline: a counter in the spirit of ACE's helpful / harmful bullets, measured on
outcomes rather than judged by a model.

The table is stored beside a HEK as ``usefulness.json`` (entries.jsonl is never rewritten for it), read by
``hiexp show`` and, as an option, by retrieval (``ExperienceRetriever(usefulness=..., usefulness_mode=...)``)
and by ``hiexp update`` to evict harmful entries.
"""

from __future__ import annotations

import time
import warnings
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictInt, ValidationError
from pydantic.dataclasses import dataclass as pydantic_dataclass

from hiexp.contracts.fields import field_of
from hiexp.errors import HiexpError
from hiexp.io import atomic_write_json, check_output_place, iter_jsonl, read_json, sha256_file

USEFULNESS_FILE = "usefulness.json"
USEFULNESS_SCHEMA = 1


def injected_entry_ids(record: Any) -> list[str]:
    """Ids of the entries injected into one episode (a ``Trajectory`` or its dict), once per injection."""
    ids: list[str] = []
    for turn in field_of(record, "turns", []):
        meta = field_of(turn, "meta") or {}
        if field_of(turn, "role") == "experience":
            ids.extend(str(i) for i in meta.get("entry_ids") or [])
    return ids


Count = Annotated[StrictInt, Field(ge=0)]
Finite = Annotated[float, Field(allow_inf_nan=False, strict=True)]


@pydantic_dataclass(config=ConfigDict(extra="ignore"))
class EntryUsefulness:
    """What the episodes say about one entry.

    episodes: episodes that saw the entry at least once. injections: times it was injected (an E1 entry can
    join several searches of one episode). reward_with: mean reward of those episodes. reward_without: mean
    reward of same-question episodes that did not see it (None when there were none). paired: episodes
    whose baseline came from such episodes rather than from the question's mean. helpful / harmful:
    episodes above / below their baseline. effect: mean of reward minus baseline.
    """

    episodes: Count = 0
    injections: Count = 0
    reward_with: Finite = 0.0
    reward_without: Finite | None = None
    paired: Count = 0
    helpful: Count = 0
    harmful: Count = 0
    effect: Finite = 0.0

    def is_harmful(self, min_episodes: int = 3, margin: float = 0.0) -> bool:
        """Seen often enough, and the episodes that saw it did worse than their baselines on the whole."""
        return self.episodes >= min_episodes and self.effect < -margin and self.harmful > self.helpful


class UsefulnessSource(BaseModel):
    """Where counts came from: a trajectory file with its hash, or a curation log."""

    model_config = ConfigDict(extra="allow")
    path: str | None = None
    sha256: str | None = None


class UsefulnessTable(BaseModel):
    """A ``usefulness.json`` as stored, checked field by field when read."""

    model_config = ConfigDict(extra="allow")
    schema_: Literal[1] = Field(alias="schema")
    hek_version: str | None = None
    reward_key: str = "cem"
    episodes: Count = 0
    questions: Count = 0
    sources: list[UsefulnessSource] = Field(default_factory=list)
    created: str | None = None
    entries: dict[str, EntryUsefulness]


@dataclass
class Usefulness:
    """Per-entry usefulness, with where it was measured from."""

    entries: dict[str, EntryUsefulness] = field(default_factory=dict)
    reward_key: str = "cem"
    episodes: int = 0
    questions: int = 0
    sources: list[dict[str, Any]] = field(default_factory=list)
    hek_version: str | None = None

    def get(self, entry_id: str) -> EntryUsefulness | None:
        return self.entries.get(entry_id)

    def harmful_ids(self, min_episodes: int = 3, margin: float = 0.0) -> set[str]:
        return {i for i, u in self.entries.items() if u.is_harmful(min_episodes, margin)}

    def to_dict(self) -> dict[str, Any]:
        return {"schema": USEFULNESS_SCHEMA, "hek_version": self.hek_version, "reward_key": self.reward_key,
                "episodes": self.episodes, "questions": self.questions, "sources": self.sources,
                "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "entries": {i: asdict(u) for i, u in sorted(self.entries.items())}}

    @classmethod
    def from_dict(cls, data: dict[str, Any], where: str = "usefulness") -> Usefulness:
        """A table as read from disk, every field checked (``UsefulnessTable``); a ``HiexpError`` names the
        first field of the wrong kind."""
        if not isinstance(data, dict) or data.get("schema") != USEFULNESS_SCHEMA or not isinstance(
                data.get("entries"), dict):
            raise HiexpError(f"{where}: not a usefulness table of this hiexp (rebuild it with hiexp usefulness)")
        try:
            table = UsefulnessTable.model_validate(data)
        except ValidationError as exc:
            error = exc.errors()[0]
            field_name = ".".join(str(part) for part in error["loc"])
            raise HiexpError(f"{where}: {field_name}: {error['msg']} (rebuild it with hiexp usefulness)") from None
        return cls(entries=dict(table.entries), reward_key=table.reward_key, episodes=table.episodes,
                   questions=table.questions, sources=[s.model_dump() for s in table.sources],
                   hek_version=table.hek_version)

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        atomic_write_json(path, self.to_dict())
        return path


def _reward(record: dict[str, Any], key: str) -> float | None:
    rewards = record.get("rewards") or {}
    value = rewards.get(key) if isinstance(rewards, dict) else None
    try:
        return None if value is None else float(value)
    except (TypeError, ValueError):
        return None


def compute_usefulness(records: Iterable[Any], reward_key: str = "cem") -> Usefulness:
    """Usefulness of every entry injected into ``records`` (trajectory dicts or ``Trajectory`` objects).

    Episodes without the reward are skipped; episodes of every arm and run count, grouped by question id.
    """
    by_question: dict[str, list[tuple[float, list[str]]]] = defaultdict(list)
    episodes = 0
    for record in records:
        record = record if isinstance(record, dict) else record.to_dict()
        reward = _reward(record, reward_key)
        if reward is None:
            continue
        by_question[str(record.get("question_id"))].append((reward, injected_entry_ids(record)))
        episodes += 1
    sums: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for group in by_question.values():
        group_mean = sum(r for r, _ in group) / len(group)
        seen_in = [set(ids) for _, ids in group]
        entry_ids = set().union(*seen_in) if seen_in else set()
        for entry_id in entry_ids:
            with_ = [r for (r, _), seen in zip(group, seen_in) if entry_id in seen]
            without = [r for (r, _), seen in zip(group, seen_in) if entry_id not in seen]
            baseline = sum(without) / len(without) if without else group_mean
            s = sums[entry_id]
            for (reward, ids), seen in zip(group, seen_in):
                if entry_id not in seen:
                    continue
                s["episodes"] += 1
                s["injections"] += ids.count(entry_id)
                s["reward_with"] += reward
                s["delta"] += reward - baseline
                s["helpful"] += reward > baseline + 1e-9
                s["harmful"] += reward < baseline - 1e-9
                s["paired"] += bool(without)
            if without:
                s["without_sum"] += sum(without) / len(without) * len(with_)
                s["without_n"] += len(with_)
    table = {}
    for entry_id, s in sums.items():
        n = int(s["episodes"])
        table[entry_id] = EntryUsefulness(
            episodes=n, injections=int(s["injections"]), reward_with=round(s["reward_with"] / n, 4),
            reward_without=round(s["without_sum"] / s["without_n"], 4) if s["without_n"] else None,
            paired=int(s["paired"]), helpful=int(s["helpful"]), harmful=int(s["harmful"]),
            effect=round(s["delta"] / n, 4),
        )
    return Usefulness(entries=table, reward_key=reward_key, episodes=episodes, questions=len(by_question))


def usefulness_from_files(paths: Sequence[str | Path], reward_key: str = "cem") -> Usefulness:
    """``compute_usefulness`` over trajectory files (rollouts, evaluation ``trajectories.jsonl``)."""
    paths = [Path(p) for p in paths]

    def records():  # a missing file stops here with the reader's own "no such file"
        for path in paths:
            yield from iter_jsonl(path)

    usefulness = compute_usefulness(records(), reward_key)
    usefulness.sources = [{"path": str(p), "sha256": sha256_file(p)} for p in paths]
    return usefulness


REWARD_KEYS = ("em", "cem", "f1", "reward")


def unique_files(paths: Sequence[str | Path]) -> list[Path]:
    """The paths with any file given twice (the same path, or the same content under another name) kept
    once, so that its episodes are not counted twice; a warning names what was dropped."""
    seen: dict[str, Path] = {}
    kept = []
    for path in map(Path, paths):
        digest = sha256_file(path) if path.is_file() else str(path.resolve())
        if digest in seen:
            warnings.warn(f"{path}: the same episodes as {seen[digest]}; counted once", stacklevel=2)
            continue
        seen[digest] = path
        kept.append(path)
    return kept


def check_usefulness_output(path: str | Path) -> Path:
    """Refuse an output that is not a usefulness table: a directory, or an existing file of any other kind
    (a user's notes, a HEK's ``entries.jsonl`` or ``manifest.json``), or a place inside a HEK other than its
    own ``usefulness.json``, before anything is computed."""
    path = check_output_place(path, allow_in_hek=(USEFULNESS_FILE,))
    if path.is_dir():
        raise HiexpError(f"{path}: is a directory; --out takes the usefulness table (.json) to write")
    if path.exists():
        try:
            Usefulness.from_dict(read_json(path), str(path))
        except HiexpError:
            raise HiexpError(f"{path}: exists and is not a usefulness table; choose a new file name, nothing "
                             "was written") from None
    return path


def load_usefulness(where: str | Path) -> Usefulness | None:
    """The table at a path, or the ``usefulness.json`` inside a HEK directory; None when a HEK has none."""
    path = Path(where)
    if path.is_dir():
        path = path / USEFULNESS_FILE
        if not path.exists():
            return None
    return Usefulness.from_dict(read_json(path), str(path))


__all__ = ["EntryUsefulness", "REWARD_KEYS", "USEFULNESS_FILE", "Usefulness", "check_usefulness_output",
           "compute_usefulness", "injected_entry_ids", "load_usefulness", "unique_files", "usefulness_from_files"]
