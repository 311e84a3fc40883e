"""Contrastive distillation: E1 experience from successful and failed attempts at the same question.

Trajectories are grouped by question. A group with at least one success and one failure is shown to a
reflector model side by side (queries, shortened passages, answers, outcomes); the reflector names the
decisive step and the trap and writes reusable entries as JSON. What the two sides did differently is counted
from the trajectories and written into the prompt (``contrast.py``), and entries that retell the attempts
instead of advising are mended or refused (``leaks.narrates``). The default reflector is the policy itself
(self-distillation with the small embedded model), so the prompt stays compact: at most a few attempts
per side, a few searches per attempt, a sentence of each passage.

For the math task (trajectories whose ``metadata["task"]`` is ``math``) an attempt is its solution steps
instead of searches, and the step where a failed solution first writes an intermediate result that no
correct solution reaches is marked (``math_steps.py``): that is where the solutions part ways, the step the
reflector explains. Replies are asked for, retried and cached by ``structured.py``.

Output: ``e1.jsonl`` (one ``Entry`` per line), ``e1.groups.jsonl`` (one status line per group and
attempt: ok with its entry count, or failed with the reason) and ``e1.meta.json`` (inputs and their
hashes, the reflector, the options). A re-run redoes only the groups without an ``ok`` status, so an
interrupted or partly failed run is finished by running the same command again.
"""

from __future__ import annotations

import json
import re
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from hiexp.contracts.generation import Generator, SamplingParams
from hiexp.contracts.trajectory import SCHEMA_VERSION, Trajectory
from hiexp.errors import HiexpError
from hiexp.io import (
    append_jsonl,
    atomic_write_json,
    atomic_write_jsonl,
    check_own_jsonl,
    iter_jsonl,
    read_jsonl,
    sha256_file,
    stable_hash,
)
from hiexp.progress import progress_bar
from hiexp.scoring.metrics import normalize_answer

from .cases import CaseConfig, best_case
from .contrast import contrast_facts, search_steps
from .leaks import LeakFilter, drop_narration, narrates
from .lessons import FORM, TYPE_RULES, CheckedFields, FieldsParser, compose, pick_pair, rule_type
from .math_steps import parting_step, solution_steps
from .schema import Case, Entry, ReplyParseError, parse_entries
from .structured import ReplyCache, StructuredResult, load_template, structured_generate


@dataclass
class DistillConfig:
    """Options of contrastive distillation."""

    reward_key: str = "cem"
    """Which reward in ``rewards`` decides success (``em``, ``cem``, ``f1``, or ``reward``). Cover exact match
    by default: an answer that contains a gold answer succeeds, so a right but wordy answer is not a failure."""
    threshold: float = 1.0
    """A trajectory succeeds when its reward is >= this (for ``f1``, a value such as 0.5 or 0.8)."""
    include_uniform: bool = False
    """Also reflect on groups that are all successes or all failures (off by default: no contrast)."""
    max_per_side: int = 2
    """At most this many successful and this many failed attempts in one prompt."""
    max_searches: int = 4
    """At most this many searches shown per attempt."""
    passages_per_search: int = 2
    """Passages shown per search."""
    passage_chars: int = 160
    """Each passage is cut to this many characters."""
    answer_chars: int = 120
    """Answers are cut to this many characters."""
    max_steps: int = 10
    """Math: at most this many solution steps shown per attempt (around the step where it parts ways)."""
    step_chars: int = 200
    """Math: each solution step is cut to this many characters."""
    max_entries: int = 3
    """Entries asked for (and kept) per group."""
    max_new_tokens: int = 384
    """Token budget of one reflector reply."""
    temperature: float = 0.0
    """Sampling temperature of the first attempt (retries use ``retry_temperature``)."""
    retry_temperature: float = 0.7
    """Temperature of retries, so that a retry is not the same reply again."""
    max_retries: int = 2
    """Retries per group after an unreadable reply, each showing the parse error to the model."""
    batch_size: int = 4
    """Groups sent to the generator at once (concurrent requests for HTTP backends)."""
    seed: int = 0
    reject_leaks: bool = True
    """Refuse entries that name the question's gold answer or its names, or copy its passages (see ``leaks.py``);
    when every entry of a reply is refused, the reflector is asked again with the reason."""
    reject_narration: bool = True
    """Keep entries advice: drop the sentences of a description that retell the attempts ("the failed attempts
    stopped early", "search 1 found ..."), and refuse an entry whose title does or whose description is then
    empty (``leaks.narrates``)."""
    min_copy_words: int = 8
    """A run of this many words shared with a passage shown to the reflector counts as copying it."""
    rewrite_leaks: bool = True
    """Before refusing an entry, mend it (``LeakFilter.rewrite``): drop the sentences that name the answer or
    copy a passage, put placeholders for the question's names; refuse only what cannot be mended."""
    contrast_facts: bool = True
    """Write what the shown successful and failed attempts did differently (``contrast.py``: searches, a
    follow-up search, a reading or a search error, the answer's kind) into the prompt of a contrastive QA group,
    so the reflector phrases a counted difference instead of retelling the attempts."""
    form: str = "free"
    """What the reflector writes: ``free`` (title, description, thinking: the paper's form, for a strong
    reflector) or ``checked`` (a form of fields the trajectories verify, from which the entry is composed by
    rule: ``lessons.py``; for a small one). ``checked`` reflects on contrastive QA groups only."""
    use_cache: bool = True
    """Keep the reflector's replies (``ReplyCache``), so that distilling the same groups again with other
    filters re-reads them instead of asking the model again."""

    def __post_init__(self) -> None:
        if self.form not in ("free", FORM):
            raise HiexpError(f"distillation form {self.form!r}; choose free or {FORM}")


# --------------------------------------------------------------------------------------------------------
# Reading and grouping trajectories
# --------------------------------------------------------------------------------------------------------


@dataclass
class Group:
    """All attempts at one question, split by outcome."""

    question_id: str
    question: str
    golden_answers: list[str]
    successes: list[Trajectory] = field(default_factory=list)
    failures: list[Trajectory] = field(default_factory=list)

    @property
    def task(self) -> str:
        """``math`` when the attempts are math solutions (no searches), else ``qa``."""
        attempts = self.successes + self.failures
        return "math" if attempts and all((t.metadata or {}).get("task") == "math" for t in attempts) else "qa"

    @property
    def kind(self) -> str:
        if self.successes and self.failures:
            return "contrastive"
        return "all_success" if self.successes else "all_failure"

    @property
    def trajectory_ids(self) -> list[str]:
        return sorted(t.id for t in self.successes + self.failures)

    @property
    def fingerprint(self) -> str:
        """Changes when the group's trajectories change, so that resume redoes it."""
        return stable_hash(self.trajectory_ids)


def reward_of(record: dict[str, Any], key: str) -> float | None:
    """The record's ``key`` reward as a float; None when it is missing or not a number."""
    rewards = record.get("rewards") or {}
    if not isinstance(rewards, dict):
        return None
    value = rewards.get(key)
    if value is None and key == "reward":
        value = rewards.get("em")
    try:
        return None if value is None else float(value)
    except (TypeError, ValueError):
        return None


def iter_trajectory_records(paths: Sequence[str | Path]) -> Iterator[tuple[str, dict, Trajectory]]:
    """Every record of trajectory files as (``file:line``, the raw record, its ``Trajectory``); a record of
    another schema version, or one that is no trajectory, stops the reading with its file and line."""
    for path in paths:
        for lineno, record in enumerate(iter_jsonl(path), start=1):
            where = f"{path}:{lineno}"
            version = record.get("schema_version", SCHEMA_VERSION)
            if version != SCHEMA_VERSION:
                raise HiexpError(
                    f"{where}: trajectory schema_version {version!r}; this hiexp reads version {SCHEMA_VERSION} "
                    "(re-run the rollouts with this hiexp)"
                )
            try:
                trajectory = Trajectory.from_dict(record)
            except HiexpError as exc:
                raise HiexpError(f"{where}: {exc}") from None
            except (TypeError, ValueError) as exc:
                raise HiexpError(f"{where}: not a trajectory record ({exc})") from None
            yield where, record, trajectory


def load_trajectories(paths: Sequence[str | Path], reward_key: str = "cem") -> list[Trajectory]:
    """Read trajectory files, checking the schema version and that every record carries the reward.

    Errors name the file and line; all records missing a reward are listed (the first five) before
    anything is distilled, so that no group is reflected on with half its outcomes unknown.
    """
    trajectories: list[Trajectory] = []
    missing: list[str] = []
    seen: dict[str, str] = {}
    for where, record, trajectory in iter_trajectory_records([Path(p) for p in paths]):
        if reward_of(record, reward_key) is None:
            missing.append(f"{where} ({trajectory.id})")
        if trajectory.id in seen:
            raise HiexpError(f"{where}: trajectory id {trajectory.id!r} already appeared at {seen[trajectory.id]}")
        seen[trajectory.id] = where
        trajectories.append(trajectory)
    if missing:
        shown = "; ".join(missing[:5]) + (f"; and {len(missing) - 5} more" if len(missing) > 5 else "")
        raise HiexpError(
            f"{len(missing)} trajectories have no '{reward_key}' reward, so their groups cannot be split into "
            f"successes and failures: {shown}. Score them first (hiexp score) or pick --reward-key."
        )
    return trajectories


def group_trajectories(trajectories: Sequence[Trajectory], config: DistillConfig) -> list[Group]:
    """Groups by question id, in order of first appearance."""
    groups: dict[str, Group] = {}
    for trajectory in trajectories:
        group = groups.get(trajectory.question_id)
        if group is None:
            group = groups[trajectory.question_id] = Group(
                trajectory.question_id, trajectory.question, list(trajectory.golden_answers)
            )
        group.question = group.question or trajectory.question
        group.golden_answers = group.golden_answers or list(trajectory.golden_answers)
        reward = float((trajectory.rewards or {}).get(config.reward_key, trajectory.reward))
        (group.successes if reward >= config.threshold else group.failures).append(trajectory)
    return list(groups.values())


# --------------------------------------------------------------------------------------------------------
# Prompt building
# --------------------------------------------------------------------------------------------------------

def _shorten(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: max(0, limit - 1)].rstrip() + "…"


def format_attempt(trajectory: Trajectory, label: str, success: bool, config: DistillConfig) -> str:
    """One attempt as a few compact lines: outcome, searches with shortened passages, answer."""
    answer = trajectory.answer if trajectory.answer else f"(no answer; stopped: {trajectory.finish})"
    outcome = "SUCCESS" if success else "FAILURE"
    lines = [f"{label} [{outcome}] answer: {_shorten(answer, config.answer_chars)}"]
    steps = search_steps(trajectory)
    if not steps:
        lines.append("  (no search)")
    for number, (query, passages) in enumerate(steps[: config.max_searches], start=1):
        lines.append(f"  search {number}: {_shorten(query, 120)}")
        for title, text in passages[: config.passages_per_search]:
            lines.append(f"    - {_shorten(title, 60)}: {_shorten(text, config.passage_chars)}")
    if len(steps) > config.max_searches:
        lines.append(f"  ... {len(steps) - config.max_searches} more searches")
    return "\n".join(lines)


def format_math_attempt(trajectory: Trajectory, label: str, success: bool, config: DistillConfig,
                        parting: int | None = None) -> str:
    """One math attempt as numbered steps; the step where it parts ways with the correct ones is marked."""
    answer = trajectory.answer if trajectory.answer else f"(no answer; stopped: {trajectory.finish})"
    lines = [f"{label} [{'CORRECT' if success else 'WRONG'}] final answer: {_shorten(answer, config.answer_chars)}"]
    steps = solution_steps(trajectory)
    start = 0
    if parting is not None and parting >= config.max_steps:  # keep the marked step in view
        start = parting - config.max_steps // 2
    if start:
        lines.append(f"  ... {start} earlier steps")
    for index in range(start, min(len(steps), start + config.max_steps)):
        mark = ">>" if index == parting else "  "
        lines.append(f"{mark} step {index + 1}: {_shorten(steps[index], config.step_chars)}")
    if len(steps) > start + config.max_steps:
        lines.append(f"  ... {len(steps) - start - config.max_steps} more steps")
    if parting is not None:
        lines.append(f"  (step {parting + 1} is the first to reach a result that no correct solution reaches)")
    return "\n".join(lines)


def _attempt_blocks(group: Group, config: DistillConfig) -> list[str]:
    successes = group.successes[: config.max_per_side]
    failures = group.failures[: config.max_per_side]
    if group.task == "math":
        blocks = [format_math_attempt(t, f"Solution {i}", True, config) for i, t in enumerate(successes, start=1)]
        for i, t in enumerate(failures, start=len(blocks) + 1):
            parting = parting_step(t, successes, group.question) if successes else None
            blocks.append(format_math_attempt(t, f"Solution {i}", False, config, parting))
        return blocks
    blocks = [format_attempt(t, f"Attempt {i}", True, config) for i, t in enumerate(successes, start=1)]
    blocks += [
        format_attempt(t, f"Attempt {i}", False, config) for i, t in enumerate(failures, start=len(blocks) + 1)
    ]
    return blocks


def _facts_block(group: Group, config: DistillConfig) -> str:
    """The counted differences of a contrastive QA group, as lines for ``$facts`` (empty when off or none)."""
    if not config.contrast_facts or group.kind != "contrastive" or group.task == "math":
        return ""
    successes = group.successes[: config.max_per_side]
    facts = contrast_facts(group.question, group.golden_answers, successes, group.failures[: config.max_per_side],
                           first_failure_number=len(successes) + 1)
    if not facts:
        return ""
    return "What differs between them (counted from the attempts):\n" + "\n".join(f"- {f}" for f in facts) + "\n\n"


def prompt_name(group: Group) -> str:
    """The reflector prompt file of a group: contrast or uniform, search or math."""
    suffix = "_math" if group.task == "math" else ""
    return f"distill_{'contrast' if group.kind == 'contrastive' else 'uniform'}{suffix}.txt"


@cache
def prompt_examples(name: str) -> frozenset[str]:
    """The quoted phrases of a prompt file ("a film's director", ...), normalised: a small reflector readily
    hands an example back as a lesson's title, which then says nothing of the question it came from."""
    text = load_template(name).template
    return frozenset(normalize_answer(q) for q in re.findall(r'"([^"$]{3,80})"', text)) - {""}


def build_prompt(group: Group, config: DistillConfig) -> str:
    """The reflector prompt for one group (contrastive, or uniform when enabled); math groups get the
    prompts that contrast solution steps (``distill_*_math.txt``)."""
    blocks = _attempt_blocks(group, config)
    fields = {
        "question": _shorten(group.question or group.question_id, 400),
        "golden": " / ".join(group.golden_answers[:3]) or "(unknown)",
        "attempts": "\n\n".join(blocks),
        "max_entries": str(config.max_entries),
        "facts": _facts_block(group, config),
    }
    if group.kind == "all_success":
        fields.update(outcome_line="All of them got the right answer.", verb="repeat")
    elif group.kind == "all_failure":
        fields.update(outcome_line="None of them got the right answer.", verb="avoid")
    return load_template(prompt_name(group)).substitute(fields)


def shown_passages(group: Group, config: DistillConfig) -> list[tuple[str, str]]:
    """The (title, text) of the passages that ``build_prompt`` shows (what the reflector could copy)."""
    shown = []
    for trajectory in group.successes[: config.max_per_side] + group.failures[: config.max_per_side]:
        for _, passages in search_steps(trajectory)[: config.max_searches]:
            shown.extend(passages[: config.passages_per_search])
    return shown


class EntryParser:
    """Reads one group's reply into entries, refusing those that carry the question's own facts.

    Entries that carry those facts are mended when ``rewrite_leaks`` allows (recorded in ``rewritten``),
    else refused. Refusals accumulate over the retries of the group in ``rejected`` (title, reason); a reply
    whose every entry is refused raises ``ReplyParseError`` so that the reflector is asked again with the reason.
    """

    def __init__(self, group: Group, config: DistillConfig):
        self.config = config
        shown = shown_passages(group, config)
        self.leaks = (LeakFilter(group.golden_answers, [text for _, text in shown], config.min_copy_words,
                                 question=group.question, titles=[title for title, _ in shown])
                      if config.reject_leaks else None)
        self.rejected: list[dict[str, str]] = []
        self.rewritten: list[dict[str, str]] = []
        self.examples = prompt_examples(prompt_name(group)) if config.reject_narration else frozenset()

    def __call__(self, text: str):
        items, problems = parse_entries(text)
        kept = []
        for item in items:
            reason = self.leaks.reason([item.title, item.description, item.thinking, *item.tags]) if self.leaks else None
            if reason is None:
                kept.append(item)
                continue
            mended = self.leaks.rewrite(item.title, item.description, item.thinking, item.tags) \
                if self.config.rewrite_leaks else None
            if mended is None:
                self.rejected.append({"title": item.title[:200], "reason": reason})
                continue
            title, description, thinking, tags = mended
            self.rewritten.append({"title": item.title[:200], "reason": reason, "as": title[:200]})
            kept.append(item.model_copy(update={"title": title, "description": description, "thinking": thinking,
                                                "tags": tags}))
        if self.config.reject_narration:
            kept = [advice for advice in map(self._advice, kept) if advice is not None]
        if not kept:
            raise ReplyParseError(
                "each lesson named this question's answer, people, works or numbers, copied its passages, or told "
                "what the attempts did. Write the same lessons again as advice for other questions, with every "
                "name, title, date and number replaced by its kind (\"a film director\", \"the year a band "
                "formed\"), each description an instruction that begins with a verb")
        if len(kept) > self.config.max_entries:
            problems.append(f"{len(kept) - self.config.max_entries} entries beyond the limit of "
                            f"{self.config.max_entries} were cut")
            kept = kept[: self.config.max_entries]
        return kept, problems

    def _advice(self, item):
        """The entry without sentences that narrate, or None (refused) when its title narrates or only
        repeats one of the prompt's quoted examples (``echo``), or nothing of its description is left."""
        if normalize_answer(item.title) in self.examples:
            self.rejected.append({"title": item.title[:200], "reason": "echo"})
            return None
        if not narrates(item.title) and not narrates(item.description):
            return item
        description = drop_narration(item.description)
        if narrates(item.title) or len(description.split()) < 3:
            self.rejected.append({"title": item.title[:200], "reason": "narration"})
            return None
        self.rewritten.append({"title": item.title[:200], "reason": "narration", "as": item.title[:200]})
        return item.model_copy(update={"description": description})


def group_case(group: Group, config: DistillConfig) -> Case | None:
    """The worked case the group's entries keep: its best exact-match success, else its best success by
    the distillation's own rule."""
    return (best_case(group.successes, CaseConfig())
            or best_case(group.successes, CaseConfig(reward_key=config.reward_key, threshold=config.threshold)))


def make_entries(group: Group, parsed, reflector: str, config: DistillConfig) -> list[Entry]:
    entries = []
    case = group_case(group, config) if group.task != "math" else None
    seen: set[tuple[str, str]] = set()
    for index, item in enumerate(parsed):
        key = (" ".join(item.title.lower().split()), " ".join(item.description.lower().split()))
        if key in seen:  # the same lesson written twice in one reply is one lesson
            continue
        seen.add(key)
        entry_id = "E1-" + stable_hash([group.question_id, group.fingerprint, index, item.title], 12)
        entries.append(Entry(
            id=entry_id, level="E1", title=item.title, tags=item.tags, description=item.description,
            thinking=item.thinking, model=reflector,
            sources={
                "question_id": group.question_id,
                "question": group.question,
                "trajectory_ids": group.trajectory_ids,
                "success_ids": sorted(t.id for t in group.successes),
                "failure_ids": sorted(t.id for t in group.failures),
                "kind": group.kind,
                "task": group.task,
            },
            case=case,
        ))
    return entries


def lesson_prompt(group: Group, config: DistillConfig) -> str:
    """The form the reflector fills about one success and one failure of a group (``lessons.py``)."""
    success, failure = pick_pair(group)
    return load_template("lesson_fields.txt").substitute(
        type_rule=TYPE_RULES[rule_type(group.question)],
        question=_shorten(group.question or group.question_id, 400),
        golden=" / ".join(group.golden_answers[:3]) or "(unknown)",
        success=format_attempt(success, "Successful attempt", True, config),
        failure=format_attempt(failure, "Failed attempt", False, config))


def checked_entries(group: Group, fields: CheckedFields, reflector: str, config: DistillConfig) -> list[Entry]:
    """The E1 entry composed from a group's checked form (none when it cannot be anonymised)."""
    success, failure = pick_pair(group)
    composed = compose(fields, group, success)
    if composed is None:
        return []
    title, description = composed
    return [Entry(
        id="E1-" + stable_hash([group.question_id, group.fingerprint, FORM, title], 12), level="E1", title=title,
        tags=[fields.type, fields.trap], description=description, model=reflector,
        sources={"question_id": group.question_id, "question": group.question,
                 "trajectory_ids": group.trajectory_ids, "success_ids": [success.id], "failure_ids": [failure.id],
                 "kind": group.kind, "task": group.task},
        meta={"form": FORM, "fields": asdict(fields)},
        case=group_case(group, config),
    )]


# --------------------------------------------------------------------------------------------------------
# The job
# --------------------------------------------------------------------------------------------------------


@dataclass
class DistillSummary:
    """What a run did. ``entries_per_group`` maps an entry count to how many groups gave that many."""

    groups_total: int = 0
    groups_by_kind: dict[str, int] = field(default_factory=dict)
    groups_eligible: int = 0
    groups_skipped_uniform: int = 0
    groups_done_before: int = 0
    groups_ok: int = 0
    groups_failed: int = 0
    entries_written: int = 0
    entries_total: int = 0
    entries_per_group: dict[int, int] = field(default_factory=dict)
    entries_rejected: dict[str, int] = field(default_factory=dict)
    entries_rewritten: dict[str, int] = field(default_factory=dict)
    failures: list[tuple[str, str]] = field(default_factory=list)

    @property
    def all_failed(self) -> bool:
        """Every group tried failed and none had been done before: the run wrote nothing."""
        return bool(self.groups_failed) and not self.groups_ok and not self.groups_done_before

    def render(self) -> str:
        spread = ", ".join(f"{n} entries: {c} groups" for n, c in sorted(self.entries_per_group.items()))
        kinds = self.groups_by_kind
        lines = [
            f"groups: {self.groups_total} questions: {kinds.get('contrastive', 0)} contrastive (a success and a "
            f"failure), {kinds.get('all_success', 0)} all-success, {kinds.get('all_failure', 0)} all-failure",
            f"{self.groups_eligible} to reflect on ({self.groups_skipped_uniform} without contrast skipped), "
            f"{self.groups_done_before} done before",
            f"this run: {self.groups_ok} ok, {self.groups_failed} failed; {self.entries_written} new entries "
            f"({self.entries_total} in the file)",
        ]
        if spread:
            lines.append(f"entries per group: {spread}")
        if self.entries_rejected:
            reasons = ", ".join(f"{reason.replace('_', ' ')} {n}" for reason, n in sorted(self.entries_rejected.items()))
            lines.append(f"refused {sum(self.entries_rejected.values())} entries that carried their question's facts "
                         f"or retold the attempts ({reasons})")
        if self.entries_rewritten:
            reasons = ", ".join(f"{reason.replace('_', ' ')} {n}" for reason, n in sorted(self.entries_rewritten.items()))
            lines.append(f"mended {sum(self.entries_rewritten.values())} entries by taking those facts or retellings out "
                         f"({reasons})")
        for question_id, reason in self.failures[:5]:
            lines.append(f"failed {question_id}: {reason}")
        return "\n".join(lines)


def sidecar_paths(out_path: str | Path) -> tuple[Path, Path]:
    """``(groups status file, meta file)`` next to the E1 file."""
    out_path = Path(out_path)
    stem = out_path.name[: -len(".jsonl")] if out_path.name.endswith(".jsonl") else out_path.name
    return out_path.with_name(stem + ".groups.jsonl"), out_path.with_name(stem + ".meta.json")


def _finished_groups(status_path: Path) -> dict[str, str]:
    """question id -> fingerprint of groups whose latest status is ok."""
    done: dict[str, str] = {}
    if status_path.exists():
        for record in iter_jsonl(status_path, skip_bad=True):
            qid = str(record.get("question_id"))
            if record.get("status") == "ok":
                done[qid] = str(record.get("fingerprint"))
            else:
                done.pop(qid, None)
    return done


def distill(
    trajectory_paths: Sequence[str | Path],
    out_path: str | Path,
    generator: Generator,
    config: DistillConfig | None = None,
    show_progress: bool = True,
) -> DistillSummary:
    """Distil E1 entries from trajectory files into ``out_path`` (JSONL), resuming a previous run.

    Returns the run's summary. Groups that fail after retries are recorded as failed in
    ``<out>.groups.jsonl`` with the reason and the last reply; running again retries them.
    """
    config = config or DistillConfig()
    out_path = Path(out_path)
    # refuse an --out this command did not write: it is resumed, rewritten and appended to
    check_own_jsonl(out_path, ("title", "level", "description"), "an E1 file of hiexp distill")
    status_path, meta_path = sidecar_paths(out_path)
    paths = [Path(p) for p in trajectory_paths]
    groups = _read_groups(paths, config)
    summary = DistillSummary(groups_total=len(groups), groups_by_kind=dict(Counter(g.kind for g in groups)))
    eligible = [g for g in groups if g.kind == "contrastive" or config.include_uniform]
    summary.groups_eligible = len(eligible)
    summary.groups_skipped_uniform = len(groups) - len(eligible)
    reflector = getattr(generator, "model_id", type(generator).__name__)
    todo = _resume(out_path, status_path, groups, eligible)
    summary.groups_done_before = len(eligible) - len(todo)
    _write_meta(meta_path, paths, reflector, config)
    run = _Run(out_path, status_path, reflector, config, summary)
    _reflect(todo, generator, run, show_progress)
    return run.finish()


def _read_groups(paths: list[Path], config: DistillConfig) -> list[Group]:
    """The trajectories' groups, refusing an empty input: a run with nothing to read is a mistaken path."""
    if not paths:
        raise HiexpError("no trajectory files given")
    trajectories = load_trajectories(paths, config.reward_key)
    if not trajectories:
        raise HiexpError(f"no trajectories in {', '.join(map(str, paths))}")
    groups = group_trajectories(trajectories, config)
    if config.form == FORM:  # a form about one success and one failure of a search episode
        groups = [g for g in groups if g.kind == "contrastive" and g.task == "qa"]
    return groups


def _resume(out_path: Path, status_path: Path, groups: list[Group], eligible: list[Group]) -> list[Group]:
    """The eligible groups still to reflect on. Keeps the entries only of groups finished with the same
    trajectories and drops the orphans of a crash, so that running again finishes an interrupted run."""
    done = _finished_groups(status_path)
    current = {g.question_id: g.fingerprint for g in groups}
    done = {qid: fp for qid, fp in done.items() if current.get(qid) == fp}
    if out_path.exists():
        kept = [r for r in read_jsonl(out_path, skip_bad=True)
                if str((r.get("sources") or {}).get("question_id")) in done]
        if len(kept) != sum(1 for _ in iter_jsonl(out_path, skip_bad=True)):
            atomic_write_jsonl(out_path, kept)
    else:
        out_path.parent.mkdir(parents=True, exist_ok=True)
        out_path.touch()
    return [g for g in eligible if g.question_id not in done]


def _write_meta(meta_path: Path, paths: list[Path], reflector: str, config: DistillConfig) -> None:
    """Record the inputs, their hashes and the options; ``reflectors`` keeps every model that wrote into
    the file over resumed runs, so a mixed file says so."""
    previous: list[str] = []
    if meta_path.exists():
        try:
            previous = list(json.loads(meta_path.read_text(encoding="utf-8")).get("reflectors", []))
        except ValueError:
            previous = []
    atomic_write_json(meta_path, {
        "trajectory_files": [{"path": str(p), "sha256": sha256_file(p)} for p in paths],
        "reflector": reflector,
        "reflectors": sorted(set(previous) | {reflector}),
        "config": asdict(config),
        "created": time.time(),
    })


def _requests(batch: list[Group], config: DistillConfig) -> tuple[list[str], list[Any]]:
    """Each group's prompt and reply parser: the checked form (``lessons.py``) or free entries."""
    if config.form == FORM:
        return [lesson_prompt(g, config) for g in batch], [FieldsParser(g) for g in batch]
    return [build_prompt(g, config) for g in batch], [EntryParser(g, config) for g in batch]


def _reflect(todo: list[Group], generator: Generator, run: _Run, show_progress: bool) -> None:
    """Ask the reflector about the groups batch by batch and record each batch as it returns, so that an
    interrupted run keeps every group it finished."""
    config = run.config
    params = SamplingParams(max_new_tokens=config.max_new_tokens, temperature=config.temperature,
                            seed=config.seed)
    cache = ReplyCache(run.reflector, "replies", enabled=config.use_cache)
    with progress_bar() as progress:
        task = progress.add_task("distilling", total=len(todo), visible=show_progress and bool(todo))
        for start in range(0, len(todo), max(1, config.batch_size)):
            batch = todo[start : start + config.batch_size]
            prompts, parsers = _requests(batch, config)
            results = structured_generate(generator, prompts, parsers, params, config.max_retries,
                                          config.retry_temperature, cache)
            for group, result, parser in zip(batch, results, parsers):
                run.record(group, result, parser)
                progress.advance(task)


@dataclass
class _Run:
    """Where one run writes each group's outcome, and the counts its summary reports."""

    out_path: Path
    status_path: Path
    reflector: str
    config: DistillConfig
    summary: DistillSummary
    per_group: Counter[int] = field(default_factory=Counter)
    rejected: Counter[str] = field(default_factory=Counter)
    rewritten: Counter[str] = field(default_factory=Counter)

    def record(self, group: Group, result: StructuredResult, parser: Any) -> None:
        """Append the group's entries and an ok status line, or a failed status line with the reason and the
        last reply (what a re-run retries)."""
        self.rejected.update(r["reason"] for r in parser.rejected)
        self.rewritten.update(r["reason"] for r in parser.rewritten)
        status = {
            "question_id": group.question_id, "fingerprint": group.fingerprint, "kind": group.kind,
            "successes": len(group.successes), "failures": len(group.failures),
            "attempts": result.attempts, "reflector": self.reflector, "created": time.time(),
            "rejected": parser.rejected, "rewritten": parser.rewritten,
        }
        if not result.ok:
            append_jsonl(self.status_path, {**status, "status": "failed", "entries": 0,
                                             "reason": result.reason, "last_reply": result.last_reply[:2000]})
            self.summary.groups_failed += 1
            self.summary.failures.append((group.question_id, result.reason))
            return
        parsed, problems = result.value
        entries = (checked_entries(group, parsed, self.reflector, self.config) if self.config.form == FORM
                   else make_entries(group, parsed, self.reflector, self.config))
        append_jsonl(self.out_path, [e.to_dict() for e in entries])
        append_jsonl(self.status_path, {**status, "status": "ok", "entries": len(entries), "problems": problems})
        self.summary.groups_ok += 1
        self.summary.entries_written += len(entries)
        self.per_group[len(entries)] += 1

    def finish(self) -> DistillSummary:
        """The summary with the run's counts and the size of the whole E1 file (earlier runs included)."""
        self.summary.entries_per_group = dict(self.per_group)
        self.summary.entries_rejected = dict(self.rejected)
        self.summary.entries_rewritten = dict(self.rewritten)
        self.summary.entries_total = sum(1 for _ in iter_jsonl(self.out_path, skip_bad=True))
        return self.summary


__all__ = [
    "DistillConfig", "DistillSummary", "EntryParser", "Group", "build_prompt", "distill", "format_attempt",
    "group_trajectories", "iter_trajectory_records", "load_trajectories",
]
