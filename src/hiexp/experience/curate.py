"""Keep only what measurably helps: replay each candidate on contested training questions, with and without.

Unchecked memory spreads errors, and a small policy's own experience is often neutral or worse. Curation
measures each candidate (a case or an entry) where it matters: on the contested training questions (some
rollouts right, some wrong) closest to it, never its own question. The agent answers each of those
questions greedily once without experience (the baseline, shared by all candidates) and once with only the
candidate injected; the candidate's effect is the mean paired reward difference. What hurts is evicted,
what helps is kept (``keep="helps"``; ``"not-hurts"`` keeps the neutral ones too), and the counts go into
the HEK's ``usefulness.json`` (the table ``hiexp usefulness`` writes), so ``--usefulness filter|rank`` can
use them as well.

What a screen of this size can see: with ``m`` questions per candidate the effect moves in steps of ``1/m``,
and any injected text changes about a fifth of a 1.5B policy's greedy answers in either direction (docs/
results.md), so with m = 4 only a candidate that flips two or more answers the same way stands out from
that noise; the screen removes what clearly hurts and keeps what clearly helps, it does not rank the rest.
``screen_spread`` says whether a screen saw more than that: it sets the candidates' net flips beside the
spread that candidates with one shared effect would give.

Every replayed episode is appended to ``curation.jsonl`` in the output directory as it finishes; a re-run
reads it and replays only what is missing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from hiexp.contracts.example import Example
from hiexp.contracts.experience import Injection
from hiexp.errors import HiexpError
from hiexp.io import append_jsonl, iter_jsonl, stable_hash

from .hek import HEK
from .index import unit_rows
from .retrieve import (
    check_case_placement,
    question_key,
    question_provenance,
    recommended_case_placement,
    start_entry_text,
)
from .schema import Entry
from .usefulness import EntryUsefulness, Usefulness

KEEP_RULES = ("helps", "not-hurts")
LOG = "curation.jsonl"


@dataclass
class CurationConfig:
    """Options of curation.

    questions_per_candidate: contested training questions each candidate is replayed on (its most similar
      ones). The cost is this many episodes per candidate, plus one baseline episode per question.
    max_candidates: screen at most this many candidates (in the HEK's order); the rest are kept unscreened.
    reward_key: the reward compared.
    keep: ``helps`` keeps a candidate whose effect is above 0; ``not-hurts`` also keeps one at 0. A candidate
      below 0 is always evicted.
    case_placement: how a case candidate is shown (``replace`` the fixed example, or ``beside`` it); None:
      what the HEK's manifest recommends (``cases.placement``, as ``hiexp build --cases-only`` writes it), else
      ``replace``, so a candidate is screened the way evaluation will show it.
    """

    questions_per_candidate: int = 4
    max_candidates: int | None = None
    reward_key: str = "cem"
    keep: str = "helps"
    case_placement: str | None = None


def contested_questions(records: Iterable[Any], reward_key: str = "cem", threshold: float = 1.0) -> list[Example]:
    """Questions whose rollouts include a success and a failure, as examples (first-seen order)."""
    outcomes: dict[str, set[bool]] = {}
    examples: dict[str, Example] = {}
    for record in records:
        get = record.get if isinstance(record, dict) else lambda k, d=None: getattr(record, k, d)
        rewards = get("rewards") or {}
        value = rewards.get(reward_key) if isinstance(rewards, dict) else None
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            continue
        qid = str(get("question_id"))
        outcomes.setdefault(qid, set()).add(value >= threshold)
        if qid not in examples:
            metadata = get("metadata") or {}
            examples[qid] = Example(qid, str(get("question", "")), list(get("golden_answers") or []),
                                    {"dataset": metadata.get("dataset"), "task": metadata.get("task", "qa")})
    return [examples[q] for q, seen in outcomes.items() if seen == {True, False}]


class SingleEntryHook:
    """An experience hook that shows one candidate in every episode: a case as the worked example, an
    E2/E3 entry in the system prompt, an E1 lesson with every search."""

    def __init__(self, entry: Entry, version: str, case_placement: str = "replace"):
        self.entry = entry
        self.version = f"{version}+{entry.id}"
        self.case_placement = case_placement

    def for_questions(self, questions: list[str]) -> list[Injection]:
        meta = {"stage": "curation", "entry_ids": [self.entry.id]}
        if self.entry.case is not None and (self.entry.is_case_only or self.entry.level == "E1"):
            return [Injection(cases=[self.entry.case.model_dump(mode="json")], cases_meta=dict(meta),
                              replace_example=self.case_placement == "replace") for _ in questions]
        if self.entry.level in ("E2", "E3"):
            text = start_entry_text(self.entry.title, self.entry.description)
            return [Injection(text=text, meta=dict(meta)) for _ in questions]
        return [Injection() for _ in questions]

    def for_queries(self, queries: list[str], questions: list[str] | None = None) -> list[Injection]:
        if self.entry.level == "E1" and not self.entry.is_case_only and self.entry.case is None:
            return [Injection(text=self.entry.description, meta={"stage": "curation", "entry_ids": [self.entry.id]})
                    for _ in queries]
        return [Injection() for _ in queries]


def _reward(trajectory: Any, key: str) -> float:
    value = (trajectory.rewards or {}).get(key)
    return float(value) if isinstance(value, (int, float)) else 0.0


def _candidate_vectors(hek: HEK, embedder: Any, candidates: list[Entry]) -> np.ndarray:
    """Where each candidate would be injected: a case by its question, an entry by its title."""
    texts = [c.case.question if c.case is not None else c.title for c in candidates]
    return unit_rows(np.asarray(embedder.encode_passages(texts), dtype=np.float32))


def plan_screen(hek: HEK, embedder: Any, contested: Sequence[Example],
                config: CurationConfig) -> list[tuple[Entry, list[Example]]]:
    """Each candidate with the contested questions it is replayed on: its most similar ones, never a question
    it came from."""
    candidates = [e for e in hek.entries if e.case is not None or e.level in ("E2", "E3") or e.description]
    if config.max_candidates is not None:
        candidates = candidates[: config.max_candidates]
    if not candidates or not contested:
        return [(c, []) for c in candidates]
    provenance = question_provenance(hek.entries)
    question_vectors = unit_rows(np.asarray(embedder.encode_queries([q.question for q in contested]), dtype=np.float32))
    cosines = _candidate_vectors(hek, embedder, candidates) @ question_vectors.T
    plan = []
    for row, candidate in enumerate(candidates):
        own = provenance.get(candidate.id, set())
        if candidate.case is not None:
            own = own | {question_key(candidate.case.question)}
        order = np.argsort(-cosines[row], kind="stable")
        chosen = [contested[i] for i in order if question_key(contested[i].question) not in own]
        plan.append((candidate, chosen[: config.questions_per_candidate]))
    return plan


def _done(log: Path) -> dict[str, dict[str, float]]:
    """arm ("baseline" or an entry id) -> question id -> reward, from an earlier run's log."""
    done: dict[str, dict[str, float]] = {}
    if log.exists():
        for record in iter_jsonl(log, skip_bad=True):
            if isinstance(record, dict) and isinstance(record.get("reward"), (int, float)):
                done.setdefault(str(record.get("arm")), {})[str(record.get("question_id"))] = float(record["reward"])
    return done


def case_placement(hek: HEK, config: CurationConfig) -> str:
    """Where a case candidate is shown: the configured placement, else the HEK's recommended one, else
    ``replace``."""
    if config.case_placement is None:
        return recommended_case_placement(hek.manifest)
    check_case_placement(config.case_placement)
    return config.case_placement


def curate(
    hek: HEK,
    embedder: Any,
    make_agent: Callable[[Any], Any],
    contested: Sequence[Example],
    work_dir: str | Path,
    config: CurationConfig | None = None,
    progress: Callable[[str], None] | None = None,
) -> tuple[Usefulness, list[str], list[str]]:
    """Screen the HEK's candidates. ``make_agent(hook)`` gives a ``SearchAgent`` (greedy) with that hook (None:
    no experience). Returns the usefulness table of the screened candidates, the ids kept and the ids evicted;
    every episode is logged to ``work_dir/curation.jsonl`` (resumable)."""
    config = config or CurationConfig()
    if config.keep not in KEEP_RULES:
        raise HiexpError(f"keep rule {config.keep!r}; choose from {', '.join(KEEP_RULES)}")
    if config.questions_per_candidate < 1:
        raise HiexpError("questions_per_candidate must be at least 1")
    if not contested:
        raise HiexpError("no contested training question (some rollouts right, some wrong) to replay on")
    placement = case_placement(hek, config)
    log = Path(work_dir) / LOG
    log.parent.mkdir(parents=True, exist_ok=True)
    done = _done(log)
    plan = plan_screen(hek, embedder, contested, config)
    needed = {q.id: q for _, questions in plan for q in questions}

    def run(arm: str, hook: Any, examples: list[Example]) -> dict[str, float]:
        have = done.setdefault(arm, {})
        todo = [e for e in examples if e.id not in have]
        if todo:
            for trajectory in make_agent(hook).run(todo):
                reward = _reward(trajectory, config.reward_key)
                have[trajectory.question_id] = reward
                append_jsonl(log, {"arm": arm, "question_id": trajectory.question_id, "reward": reward,
                                   "answer": trajectory.answer, "searches": trajectory.num_searches,
                                   "hek_version": hek.version})
        return {e.id: have[e.id] for e in examples}

    if progress:
        progress(f"baseline on {len(needed)} contested questions")
    baseline = run("baseline", None, list(needed.values()))
    table = Usefulness(reward_key=config.reward_key, hek_version=hek.version,
                       sources=[{"curation": str(log), "questions_per_candidate": config.questions_per_candidate,
                                     "case_placement": placement}])
    kept: list[str] = []
    evicted: list[str] = []
    for n, (candidate, questions) in enumerate(plan, start=1):
        if not questions:
            kept.append(candidate.id)
            continue
        if progress:
            progress(f"candidate {n}/{len(plan)}: {candidate.id}")
        hook = SingleEntryHook(candidate, hek.version or "hek", placement)
        with_it = run(candidate.id, hook, questions)
        diffs = [with_it[q.id] - baseline[q.id] for q in questions]
        stats = EntryUsefulness(episodes=len(diffs), injections=len(diffs),
                                reward_with=float(np.mean([with_it[q.id] for q in questions])),
                                reward_without=float(np.mean([baseline[q.id] for q in questions])),
                                paired=len(diffs), helpful=int(sum(d > 0 for d in diffs)),
                                harmful=int(sum(d < 0 for d in diffs)), effect=float(np.mean(diffs)))
        table.entries[candidate.id] = stats
        helps = stats.effect > 0 or (config.keep == "not-hurts" and stats.effect == 0)
        (kept if helps else evicted).append(candidate.id)
    table.episodes = sum(u.episodes for u in table.entries.values())
    table.questions = len(needed)
    return table, kept, evicted


@dataclass
class ScreenSpread:
    """How the screened candidates' net flips (episodes above their baseline minus episodes below it) spread,
    beside the spread expected if every candidate had the same effect: the pooled rates of going up and down.

    A screen that tells candidates apart shows more of them in the tails than expected; ``ratio`` is the seen
    variance of the net flips over the expected one (about 1 when the candidates look alike).
    """

    seen: dict[int, int]
    expected: dict[int, float]
    up: int
    down: int
    episodes: int
    ratio: float | None

    def render(self) -> str:
        keys = sorted(set(self.seen) | {k for k, v in self.expected.items() if v >= 0.05})
        label = [f"{k:+d}" if k else "0" for k in keys]
        seen = "  ".join(f"{name}: {self.seen.get(k, 0)}" for name, k in zip(label, keys))
        alike = "  ".join(f"{name}: {self.expected.get(k, 0.0):.1f}" for name, k in zip(label, keys))
        ratio = "n/a" if self.ratio is None else f"{self.ratio:.2f}"
        return (f"net flips per screened candidate (episodes above minus below the baseline)\n"
                f"  seen:   {seen}\n"
                f"  alike:  {alike}   (every candidate with the pooled effect: {self.up} up, {self.down} down "
                f"in {self.episodes} episodes)\n"
                f"  spread ratio {ratio} (seen / alike variance; near 1 the screen cannot tell candidates apart)")


def screen_spread(table: Usefulness) -> ScreenSpread:
    """The net flips of the screened candidates against what alike candidates would show (``ScreenSpread``)."""
    stats = [u for u in table.entries.values() if u.paired]
    up, down, episodes = sum(u.helpful for u in stats), sum(u.harmful for u in stats), sum(u.paired for u in stats)
    seen: dict[int, int] = {}
    expected: dict[int, float] = {}
    if not episodes:
        return ScreenSpread(seen, expected, up, down, episodes, None)
    p_up, p_down = up / episodes, down / episodes
    step = np.array([p_down, 1.0 - p_up - p_down, p_up])  # net -1, 0, +1 in one episode
    expected_variance = 0.0
    nets = [u.helpful - u.harmful for u in stats]
    for net in nets:
        seen[net] = seen.get(net, 0) + 1
    for u in stats:
        distribution = np.array([1.0])
        for _ in range(u.paired):
            distribution = np.convolve(distribution, step)
        for offset, probability in enumerate(distribution):
            expected[offset - u.paired] = expected.get(offset - u.paired, 0.0) + float(probability)
        expected_variance += u.paired * (p_up + p_down - (p_up - p_down) ** 2)
    ratio = float(np.var(nets) / (expected_variance / len(stats))) if expected_variance > 0 else None
    return ScreenSpread(dict(sorted(seen.items())), dict(sorted(expected.items())), up, down, episodes, ratio)


def without(hek: HEK, evicted: Iterable[str], description: str = "") -> HEK:
    """The HEK without the evicted entries (and without them in any entry's children)."""
    gone = set(evicted)
    rows = [i for i, e in enumerate(hek.entries) if e.id not in gone]
    entries = [hek.entries[i].model_copy(update={"children": [c for c in hek.entries[i].children if c not in gone]})
               for i in rows]
    manifest = dict(hek.manifest or {})
    manifest["curated_from"] = {"hek_version": hek.version, "evicted": sorted(gone), "kept": len(entries),
                                "fingerprint": stable_hash(sorted(gone), 12)}
    if description:
        manifest["description"] = description
    return HEK(entries, hek.embeddings[rows] if rows else hek.embeddings[:0], manifest)


__all__ = ["KEEP_RULES", "CurationConfig", "ScreenSpread", "SingleEntryHook", "case_placement", "contested_questions",
           "curate", "plan_screen", "screen_spread", "without"]
