"""Cluster summaries: one higher-level entry (E2 from E1, E3 from E2) per cluster of entries.

Singletons are promoted, not summarised: a cluster of one entry becomes a copy of that entry one level up
(new id, ``children`` = the one member, ``meta.promoted = True``, no model call). Every entry therefore has
exactly one parent at the next level, and the start-of-episode lookup over E2/E3 also sees experience that
nothing else resembles. A summary the model cannot write in readable JSON after retries falls back to the
cluster's most central member (``meta.fallback`` holds the reason), unless ``strict`` asks for an error. A
summary that retells attempts instead of advising (``leaks.narrates``) counts as unreadable and is asked again.

The summariser's replies are kept (``ReplyCache`` in ``hiexp.io.cache_dir("summaries")``), so rebuilding a
HEK (other thresholds, an interrupted build) only asks for the clusters that changed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from hiexp.contracts.generation import Generator, SamplingParams
from hiexp.errors import HiexpError
from hiexp.io import stable_hash
from hiexp.progress import progress_bar

from .leaks import narrates
from .schema import Entry, ReplyParseError, parse_entries
from .structured import ReplyCache, load_template, structured_generate


@dataclass
class SummarizeConfig:
    """Options of cluster summaries."""

    max_members: int = 8
    """Members shown in one prompt (the most central ones when a cluster is larger)."""
    member_chars: int = 300
    """Each member's text is cut to this many characters."""
    max_new_tokens: int = 256
    """Token budget of one summary."""
    temperature: float = 0.0
    max_retries: int = 2
    retry_temperature: float = 0.7
    batch_size: int = 4
    """Clusters sent to the generator at once."""
    strict: bool = False
    """Fail the build when a summary cannot be read, instead of falling back to the central member."""
    use_cache: bool = True
    seed: int = 0


def _central_order(indices: list[int], vectors: np.ndarray) -> list[int]:
    """Members sorted by closeness to the cluster mean (most central first)."""
    if len(indices) <= 1:
        return list(indices)
    members = vectors[indices]
    centre = members.mean(axis=0)
    order = np.argsort(-(members @ centre), kind="stable")
    return [indices[i] for i in order]


def build_summary_prompt(members: Sequence[Entry], config: SummarizeConfig) -> str:
    blocks = []
    for number, entry in enumerate(members[: config.max_members], start=1):
        text = entry.text_for_prompt()
        if len(text) > config.member_chars:
            text = text[: config.member_chars - 1].rstrip() + "…"
        blocks.append(f"[{number}]\n{text}")
    # experience of math solutions is summarised in a solver's words, not a search agent's
    math = all((entry.sources or {}).get("task") == "math" for entry in members)
    name = "summarize_math.txt" if math else "summarize.txt"
    return load_template(name).substitute(count=str(len(blocks)), members="\n\n".join(blocks))


def _parse_one(text: str):
    entries, _ = parse_entries(text)
    entry = entries[0]
    if narrates(entry.title) or narrates(entry.description):
        raise ReplyParseError("the summary tells what some attempts did; write the shared advice as an instruction "
                              "that begins with a verb, with no mention of attempts or searches by number")
    return entry


def _union_sources(members: Sequence[Entry]) -> dict:
    questions: list[str] = []
    for member in members:
        ids = member.sources.get("question_ids") or [member.sources.get("question_id")]
        questions.extend(str(q) for q in ids if q)
    return {"question_ids": sorted(set(questions))}


def summarize_clusters(
    entries: Sequence[Entry],
    vectors: np.ndarray,
    clusters: Sequence[Sequence[int]],
    level: str,
    generator: Generator | None,
    config: SummarizeConfig | None = None,
    show_progress: bool = True,
) -> tuple[list[Entry], list[str]]:
    """One ``level`` entry per cluster (lists of indices into ``entries``). Returns ``(entries, warnings)``.

    ``generator`` may be None only when every cluster is a singleton.
    """
    config = config or SummarizeConfig()
    out: list[Entry | None] = [None] * len(clusters)
    jobs: list[tuple[int, list[int], str]] = []  # (cluster index, members by centrality, prompt)
    for position, indices in enumerate(clusters):
        indices = list(indices)
        if len(indices) == 1:
            out[position] = _promoted(entries[indices[0]], level)
            continue
        ordered = _central_order(indices, vectors)
        jobs.append((position, ordered, build_summary_prompt([entries[i] for i in ordered], config)))
    if jobs and generator is None:
        raise HiexpError(f"{len(jobs)} {level} clusters need a summariser model, but none was given")
    summaries, warnings = _summarize_jobs(jobs, entries, level, generator, config, show_progress)
    for position, entry in summaries.items():
        out[position] = entry
    return [e for e in out if e is not None], warnings


def _promoted(member: Entry, level: str) -> Entry:
    """A singleton's entry: its one member copied one level up, so that it too has a parent (no model call)."""
    return Entry(
        id=f"{level}-" + stable_hash([level, member.id], 12), level=level, title=member.title,
        tags=member.tags, description=member.description, thinking=member.thinking,
        children=[member.id], sources=_union_sources([member]), model=None, meta={"promoted": True},
    )


def _summarize_jobs(
    jobs: list[tuple[int, list[int], str]], entries: Sequence[Entry], level: str, generator: Generator | None,
    config: SummarizeConfig, show_progress: bool,
) -> tuple[dict[int, Entry], list[str]]:
    """The summaries of the clusters of several members, by cluster index, and the warnings of those that
    fell back to their central member; batched, and cached so that a rebuild re-asks only changed clusters."""
    model_id = getattr(generator, "model_id", "none") if generator is not None else "none"
    cache = ReplyCache(model_id, "summaries", enabled=config.use_cache)
    params = SamplingParams(max_new_tokens=config.max_new_tokens, temperature=config.temperature, seed=config.seed)
    made: dict[int, Entry] = {}
    warnings: list[str] = []
    with progress_bar() as progress:
        task = progress.add_task(f"summarising {level}", total=len(jobs), visible=show_progress and bool(jobs))
        for start in range(0, len(jobs), max(1, config.batch_size)):
            batch = jobs[start : start + config.batch_size]
            results = structured_generate(generator, [job[2] for job in batch], _parse_one, params,
                                          config.max_retries, config.retry_temperature, cache)
            for (position, ordered, _), result in zip(batch, results):
                members = [entries[i] for i in ordered]
                if result.ok:
                    made[position] = _summary_entry(members, level, model_id, result.value.model_dump())
                else:
                    if config.strict:
                        raise HiexpError(
                            f"{level} summary of {len(ordered)} entries failed after {result.attempts} attempts: "
                            f"{result.reason} (finished summaries are cached; re-run to resume)"
                        )
                    warnings.append(f"{level} cluster of {len(ordered)}: {result.reason}; used its central member")
                    made[position] = _summary_entry(members, level, model_id, None, result.reason)
                progress.advance(task)
    return made, warnings


def _summary_entry(members: list[Entry], level: str, model_id: str, fields: dict | None, reason: str = "") -> Entry:
    """A summarised cluster's entry; without ``fields`` (the summary failed) the most central member's text,
    with the reason in ``meta.fallback`` and no model named, since no model wrote it."""
    children = sorted(m.id for m in members)
    meta: dict = {"size": len(members)}
    if fields is None:
        central = members[0]
        fields = {"title": central.title, "tags": central.tags, "description": central.description,
                  "thinking": central.thinking}
        meta["fallback"] = f"summary failed: {reason}; used the most central member {central.id}"
    return Entry(
        id=f"{level}-" + stable_hash([level, children], 12), level=level, children=children,
        sources=_union_sources(members), model=model_id if "fallback" not in meta else None, meta=meta,
        **fields,
    )

__all__ = ["SummarizeConfig", "summarize_clusters", "build_summary_prompt"]
