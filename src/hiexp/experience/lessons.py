"""Checked lessons: the reflector fills a form whose every field the trajectories can check.

A 1.5B reflector asked for free advice writes narration and one question's facts (docs/experience.md). Asked
instead to fill three fields about one successful and one failed attempt, its answers can be verified (the
successful attempt's queries are read off its record: asked to copy them, a quarter of the 1.5B's replies
got them wrong):

- ``type``: bridge, comparison, yes/no or other; the question's wording decides yes/no (an auxiliary verb
  first) and comparison (two offered choices), and the reflector only tells a bridge question from another;
- ``bridge_entity`` (bridge questions): the name the passages gave that leads to the answer; it must be in a
  passage the successful attempt read, not in the question, and not the answer;
- ``trap``: what the failed attempt did first that the successful one did not: ``stopped early`` (fewer
  searches), ``wrong search`` (its first search went elsewhere), ``misread`` (it read a passage with the
  answer and answered otherwise), ``no answer``; each is checked against that attempt's record.

A reply whose fields do not check is refused with the reason, which the reflector sees on its retry. The
entry's text is then composed from the checked fields, by rule, and anonymised (``leaks.py``): the model
decides what happened, it does not write the advice. ``type_plans`` turns the entries of one question type
into the E2 search plan of that type, and the plans into one E3 entry.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from hiexp.scoring.kinds import answer_kind
from hiexp.scoring.metrics import normalize_answer

from .contrast import attempt_features, has_words, search_steps
from .leaks import LeakFilter
from .schema import Entry, ReplyParseError, parse_object

QUESTION_TYPES = ("bridge", "comparison", "yes/no", "other")
TRAPS = ("stopped early", "wrong search", "misread", "no answer")
FORM = "checked"

TRAP_ADVICE = {
    "stopped early": "Do not answer after the first search when the question needs a second fact.",
    "wrong search": "Keep each search to what the question names or what the passages gave; a search that "
                    "drifts elsewhere finds nothing useful.",
    "misread": "Before searching again, read the passages already found: the answer may be in them.",
    "no answer": "Always end with an answer taken from the passages, even when unsure.",
}
PLANS = {
    "bridge": "The question describes something without naming it. 1. Search what the question does name. "
              "2. Take from the passages the name it leads to. 3. Search that name with the fact the question "
              "asks for. 4. Answer with the words of that passage.",
    "comparison": "The question compares two named things. 1. Search the first name with the fact compared. "
                  "2. Search the second name with the same fact. 3. Compare the two facts and answer with one of "
                  "the two names.",
    "yes/no": "The question is answered yes or no. 1. Search the fact for each thing it names, one search each. "
              "2. Check the claim against both facts. 3. Answer yes or no, never a name.",
    "other": "1. Search the question's key words. 2. If the passages do not hold the answer, search the one fact "
             "still missing. 3. Answer with the words of the passage.",
}


def _tokens(text: str) -> set[str]:
    return set(normalize_answer(text).split())


def same_query(written: str, searched: str) -> bool:
    """Whether a query the reflector wrote is the one searched (word overlap at least 0.6)."""
    a, b = _tokens(written), _tokens(searched)
    return bool(a and b) and len(a & b) / len(a | b) >= 0.6


@dataclass
class CheckedFields:
    """The form, after every field was checked against the attempts."""

    type: str
    first_query: str
    second_query: str
    bridge_entity: str
    trap: str


def pick_pair(group: Any) -> tuple[Any, Any]:
    """The attempts the form is about: the success with most searches up to three (a search to copy),
    and the first failure."""
    success = sorted(group.successes, key=lambda t: (not 2 <= len(t.queries) <= 3, -len(t.queries), t.id))[0]
    return success, group.failures[0]


TYPE_RULES = {
    "yes/no": '"yes/no" (the question opens with is / are / did ..., so it is answered yes or no).',
    "comparison": '"comparison" (the question offers two named choices).',
    "open": '"bridge" if the question describes something without naming it, so that a name must be found first '
            'and then looked up, or "other".',
}


def rule_type(question: str) -> str:
    """What the question's wording decides: ``yes/no``, ``comparison``, or ``open`` (bridge or other: the
    reflector's call)."""
    kind = answer_kind(question)
    return {"yes/no": "yes/no", "choice": "comparison"}.get(kind, "open")


def check_fields(record: dict[str, Any], group: Any, success: Any, failure: Any) -> CheckedFields:
    """The checked form, or ``ReplyParseError`` naming the first field that does not match. The successful
    attempt's queries are read off its record, not asked for (a 1.5B reflector copies them wrong)."""
    fields = {k: (" ".join(str(v).split()) if v is not None else "") for k, v in record.items()}
    kind = fields.get("type", "").lower().replace("yes-no", "yes/no").replace("yes or no", "yes/no")
    if kind not in QUESTION_TYPES:
        raise ReplyParseError(f'"type" must be one of {", ".join(QUESTION_TYPES)}; got {kind!r}')
    decided = rule_type(group.question)
    if decided != "open" and kind != decided:
        raise ReplyParseError(f'"type" of this question is "{decided}" (its wording says so); got {kind!r}')
    if decided == "open" and kind not in ("bridge", "other"):
        raise ReplyParseError(f'"type": this question is "bridge" or "other", not {kind!r}')
    queries = list(success.queries)
    if not queries:
        raise ReplyParseError("the successful attempt made no search: nothing to learn from")
    bridge = fields.get("bridge_entity", "") if kind == "bridge" else ""
    if kind == "bridge":
        read = " ".join(f"{t} {x}" for _, passages in search_steps(success) for t, x in passages)
        if not bridge:
            raise ReplyParseError('"bridge_entity": a bridge question needs the name the passages gave')
        if not has_words(read, bridge):
            raise ReplyParseError(f'"bridge_entity" {bridge!r} is in no passage the successful attempt read')
        if has_words(group.question, bridge) or any(has_words(g, bridge) or has_words(bridge, g)
                                                     for g in group.golden_answers):
            raise ReplyParseError(f'"bridge_entity" {bridge!r} must be a new name, not the question\'s or the answer')
    trap = fields.get("trap", "").lower()
    if trap not in TRAPS:
        raise ReplyParseError(f'"trap" must be one of {", ".join(TRAPS)}; got {trap!r}')
    truth = trap_of(failure, success, group)
    if trap not in truth:
        raise ReplyParseError(f'"trap" {trap!r} does not match the failed attempt; it fits {" or ".join(truth)}')
    return CheckedFields(kind, queries[0], queries[1] if len(queries) >= 2 else "", bridge, trap)


def trap_of(failure: Any, success: Any, group: Any) -> list[str]:
    """The traps the failed attempt's record supports (one or more)."""
    bad = attempt_features(failure, group.question, group.golden_answers)
    traps = []
    if not bad["answered"]:
        traps.append("no answer")
    if bad["answer_read"]:
        traps.append("misread")
    if bad["searches"] < len(success.queries):
        traps.append("stopped early")
    if failure.queries and success.queries and not same_query(failure.queries[0], success.queries[0]):
        traps.append("wrong search")
    return traps or ["wrong search"]


class FieldsParser:
    """Reads and checks one group's form (``structured_generate`` shows its error on a retry)."""

    def __init__(self, group: Any):
        self.group = group
        self.success, self.failure = pick_pair(group)
        self.rejected: list[dict[str, str]] = []
        self.rewritten: list[dict[str, str]] = []

    def __call__(self, text: str) -> tuple[CheckedFields, list[str]]:
        value = parse_object(text)
        try:
            return check_fields(value, self.group, self.success, self.failure), []
        except ReplyParseError as exc:
            self.rejected.append({"title": "", "reason": f"check: {exc}"[:200]})
            raise


def _placeholder(query: str, name: str, word: str) -> str:
    """``query`` with ``name`` (as whole words, any case) replaced by ``word``."""
    if not name:
        return query
    return re.sub(rf"(?i)\b{re.escape(name)}\b", word, query)


def compose(fields: CheckedFields, group: Any, success: Any) -> tuple[str, str] | None:
    """The entry's title and description from checked fields, with the question's names as placeholders;
    None when what remains would still name one of its facts."""
    q1 = fields.first_query
    q2 = _placeholder(fields.second_query, fields.bridge_entity, "Z")
    if fields.type == "bridge":
        title = f"{q1}, then the name it gives"
        body = (f"Search first what the question names (as in \"{q1}\"); the passages give a new name (Z); "
                "search that name with the fact asked" + (f" (as in \"{q2}\")." if q2 else "."))
    elif fields.type == "comparison":
        title = f"compare two named things: {q1}"
        body = (f"Search each named thing on its own (as in \"{q1}\"" + (f", then \"{q2}\"" if q2 else "")
                + "), read the same fact for both, then compare them.")
    elif fields.type == "yes/no":
        title = f"yes or no: {q1}"
        body = (f"Look up the fact for each named thing (as in \"{q1}\"" + (f", then \"{q2}\"" if q2 else "")
                + "), check the claim against both, and answer yes or no.")
    else:
        title = q1
        body = f"Search the key words (as in \"{q1}\")" + (f", then the missing fact (\"{q2}\")." if q2 else ".")
    body += " " + TRAP_ADVICE[fields.trap]
    steps = search_steps(success)
    shown = [p for _, passages in steps for p in passages]
    leaks = LeakFilter(group.golden_answers, [t for _, t in shown], question=group.question,
                       titles=[t for t, _ in shown if normalize_answer(t) != normalize_answer(fields.bridge_entity)])
    mended = leaks.rewrite(title, body)
    return None if mended is None else (mended[0], mended[1])


def type_plans(entries: Sequence[Entry]) -> tuple[list[Entry], list[Entry]]:
    """E2: one search plan per question type of the checked entries (with how often each trap was seen);
    E3: one entry that tells the agent to pick the plan of its question's type."""
    by_type: dict[str, list[Entry]] = {}
    for entry in entries:
        kind = (entry.meta.get("fields") or {}).get("type", "other")
        by_type.setdefault(kind, []).append(entry)
    e2 = []
    for kind in QUESTION_TYPES:
        members = by_type.get(kind)
        if not members:
            continue
        traps = Counter((e.meta.get("fields") or {}).get("trap") for e in members)
        trap, count = traps.most_common(1)[0]
        description = (f"{PLANS[kind]} Most common trap ({count} of {len(members)} training questions): "
                       f"{TRAP_ADVICE.get(trap, '')}")
        questions = sorted({str(e.sources.get("question_id")) for e in members if e.sources.get("question_id")})
        e2.append(Entry(id=f"E2-plan-{kind.replace('/', '-')}", level="E2", title=f"Search plan for {kind} questions",
                        tags=[kind], description=description, children=[e.id for e in members],
                        sources={"question_ids": questions}, meta={"form": FORM, "type": kind}))
    if not e2:
        return [], []
    kinds = ", ".join(e.meta["type"] for e in e2)
    e3 = Entry(id="E3-plan", level="E3", title="Decide the question's type, then follow its search plan",
               description=(f"Before the first search, decide whether the question is {kinds}, and follow that "
                            "type's plan: a bridge question needs a second search for the name the first one "
                            "gives; a comparison or yes/no question needs one search per named thing."),
               children=[e.id for e in e2], meta={"form": FORM},
               sources={"question_ids": sorted({q for e in e2 for q in e.sources.get("question_ids", [])})})
    return e2, [e3]
