"""The action formats: how a prompt is laid out, how an action is parsed, how a result is returned.

``search_r1``: the policy thinks in ``<think>``, searches with ``<search>q</search>`` and answers with
``<answer>a</answer>``; passages come back inside the same assistant message as
``<information>...</information>``. ``tool_call``: the policy calls the ``search`` tool with Qwen's
``<tool_call>{json}</tool_call>``; passages come back in a new tool turn of the chat template wrapped in
``<tool_response>``; the final answer is ``\\boxed{...}``. ``math``: no tool; the policy reasons and ends
with ``\\boxed{...}``, and a reply without a box gets a correction in a new user turn.

Every injected piece is returned as ``(role, text, meta)`` spans so that the loop can tokenise each piece
once and append it; experience text is its own ``experience`` span.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from string import Template
from typing import Any

from hiexp.agent.config import AgentConfig
from hiexp.contracts.passage import Passage, render_passages
from hiexp.errors import HiexpError
from hiexp.io import stable_hash
from hiexp.scoring.extract import last_boxed

# A marker that no template or model output contains; used to find where a slot sits in rendered text.
_SLOT = "\x00hiexp-slot\x00"
_ASSISTANT_SLOT = "\x00hiexp-assistant\x00"
_CASES_SLOT = "\x00hiexp-cases\x00"

# The plain rendering used when there is no tokenizer or the tokenizer has no chat template (ChatML, the
# layout of the Qwen family).
_CHATML_PROMPT = "<|im_start|>system\n{system}<|im_end|>\n<|im_start|>user\n{user}<|im_end|>\n<|im_start|>assistant\n"
_CHATML_TOOL_BEFORE = "<|im_end|>\n<|im_start|>user\n<tool_response>\n"
_CHATML_TOOL_AFTER = "\n</tool_response><|im_end|>\n<|im_start|>assistant\n"
_CHATML_TURN_END = "<|im_end|>"

TEMPLATE_NAMES = ("system", "user", "example", "turn_start", "observation", "experience_system",
                  "experience_tool", "rag_system", "closed_book_system")


def _read_template(relative: str) -> str:
    return resources.files("hiexp.agent").joinpath("templates", relative).read_text(encoding="utf-8")


def load_templates(config: AgentConfig) -> dict[str, str]:
    """The template texts for ``config.format``, with the overrides of ``config.templates`` applied."""
    fmt = config.format
    texts = {
        "system": _read_template(f"{fmt}/system.txt"),
        "user": _read_template(f"{fmt}/user.txt"),
        "example": _read_template(f"{fmt}/example.txt"),
        "turn_start": _read_template(f"{fmt}/turn_start.txt"),
        "observation": _read_template("search_r1/observation.txt"),
        "experience_system": _read_template("experience_system.txt"),
        "experience_tool": _read_template("experience_tool.txt"),
        "rag_system": _read_template("rag_system.txt"),
        "closed_book_system": _read_template("closed_book_system.txt"),
    }
    for name, value in (config.templates or {}).items():
        if name not in TEMPLATE_NAMES:
            raise HiexpError(f"unknown template name {name!r}; known: {', '.join(TEMPLATE_NAMES)}")
        path = Path(value)
        if "\n" not in value and len(value) < 4096 and path.suffix in (".txt", ".jinja") :
            if not path.exists():
                raise HiexpError(f"template {name}: no such file {value}")
            value = path.read_text(encoding="utf-8")
        texts[name] = value
    return texts


def _fill(template: str, name: str, **values: Any) -> str:
    try:
        return Template(template).substitute(**values)
    except (KeyError, ValueError) as exc:
        raise HiexpError(f"template {name!r}: bad or unknown placeholder ({exc}); use ${{name}} placeholders") from None


@dataclass
class Action:
    """What the policy asked for in one turn.

    ``kind`` is ``search``, ``answer`` or ``malformed``; ``error`` names the problem of a malformed action
    (``no_tag``, ``empty_query``, ``long_query``, ``unclosed_tag``, ``bad_json``, ``empty_answer``).
    """

    kind: str
    query: str | None = None
    answer: str | None = None
    error: str | None = None


@dataclass
class Span:
    """A piece of injected or prompt text: role ``prompt`` | ``tool`` | ``experience``."""

    role: str
    text: str
    meta: dict[str, Any] = field(default_factory=dict)


CORRECTIONS = {
    "no_tag": "I found no action in your reply. Search with {search} or give the final answer as {answer}.",
    "empty_query": "Your search query was empty. Write a short query, for example {search}.",
    "long_query": "Your search query was too long ({n} characters; at most {limit}). Ask for one fact in a few words.",
    "unclosed_tag": "Your reply stopped before the tag was closed. Write a complete {search} or {answer}.",
    "bad_json": "The tool call was not valid JSON of the form {search}. Try again.",
    "bad_tool": "The only tool is search, called as {search}.",
    "empty_answer": "Your answer was empty. Write the answer itself as {answer}.",
    "answer_without_search": "Search before you answer: look the facts up first with {search}.",
    "not_an_option": "Your answer \"{given}\" is neither of the two choices the question offers. Reply with "
                     "{first_answer} or with {second_answer}, whichever the question asks for.",
    "echoed_question": "Your answer \"{given}\" only repeats words of the question. Find in the passages what "
                       "the question asks for and give that as {answer}.",
    "final_answer": "No more searches or retries are left. Write your final answer now, a few words, from what "
                    "you have read.",
    "search_budget": "You have used all {limit} searches. Give your final answer now as {answer}.",
    "repeated_query": "You already searched for that and saw its results. Search for a different fact, "
                      "or give the final answer as {answer}.",
}


def _case_docs(step: dict) -> str:
    """A case step's passages as the policy read them (``Doc i(Title: ...) text``)."""
    return render_passages([Passage("", doc["title"], doc.get("text", "")) for doc in step.get("docs", [])])


class AgentFormat:
    """Shared machinery: templates, chat rendering, tokenizer-derived turn wrappers."""

    name = ""
    stop: list[str] = []
    answer_start = ""
    search_hint = ""
    answer_hint = ""
    answer_instruction = ""
    experience_e1_at_start = False
    """Put the E1 entry that best matches the question into the system prompt (a task without searches)."""
    checks_options = True
    """Send back an answer that names neither choice a question offers (``AgentConfig.answer_from_options``)."""
    searches = True
    """The policy has a search tool (``AgentConfig.anchor_first_query`` and ``answer_beyond_question`` can act)."""

    def __init__(self, config: AgentConfig, tokenizer: Any = None):
        self.config = config
        self.tokenizer = tokenizer
        self.templates = load_templates(config)
        self._chat_ok = bool(tokenizer is not None and getattr(tokenizer, "chat_template", None))

    # --- identity -------------------------------------------------------------------------------------
    def template_hash(self, method: str = "agent") -> str:
        """Hash of every template this format renders plus the options that change the text. Options added
        later join it only when on and only for the agent (``method``), so that older runs, and the
        baselines' runs, which these options do not touch, keep their hash and can be resumed."""
        agent = method == "agent" and self.searches
        identity = {"format": self.name, "templates": self.templates, "few_shot": self.config.few_shot,
                    "max_turns": self.config.max_turns}
        if self.checks_options and self.config.answer_from_options:
            identity["answer_from_options"] = CORRECTIONS["not_an_option"]
        if agent and self.config.anchor_first_query:
            identity["anchor_first_query"] = True
        if agent and self.config.answer_beyond_question:
            identity["answer_beyond_question"] = CORRECTIONS["echoed_question"]
        if self.config.passage_words and (agent or method == "rag"):
            identity["passage_words"] = self.config.passage_words
        if agent and self.config.passages_seen != "full":
            identity["passages_seen"] = self.config.passages_seen
        return stable_hash(identity)

    # --- chat rendering -------------------------------------------------------------------------------
    def render_chat(self, system: str, user: str) -> str:
        """System + user message with the generation header, via the tokenizer's chat template if any."""
        if self._chat_ok:
            return self.tokenizer.apply_chat_template(
                [{"role": "system", "content": system}, {"role": "user", "content": user}],
                tokenize=False, add_generation_prompt=True)
        return _CHATML_PROMPT.format(system=system, user=user)

    def _turn_wrapper(self, role: str, fallback: tuple[str, str, str]) -> tuple[str, str, str]:
        """The text that closes the assistant turn, opens a ``role`` turn (``tool`` or ``user``) and reopens
        the assistant, as the tokenizer's chat template renders it; ``fallback`` (ChatML) without one."""
        if not self._chat_ok:
            return fallback
        base = [{"role": "system", "content": "s"}, {"role": "user", "content": "u"},
                {"role": "assistant", "content": _ASSISTANT_SLOT}]
        try:
            closed = self.tokenizer.apply_chat_template(base, tokenize=False)
            full = self.tokenizer.apply_chat_template(base + [{"role": role, "content": _SLOT}], tokenize=False,
                                                      add_generation_prompt=True)
        except Exception:  # noqa: BLE001 - a template without this role: ChatML
            return fallback
        tail = full.split(_ASSISTANT_SLOT, 1)[1]
        if _SLOT not in tail:
            return fallback
        before, after = tail.split(_SLOT, 1)
        return before, after, closed.split(_ASSISTANT_SLOT, 1)[1].strip() or _CHATML_TURN_END

    def prompt_spans(self, question: str, experience: str = "", experience_meta: dict | None = None,
                     open_turn: bool = True, cases: Sequence[dict] = (), cases_meta: dict | None = None,
                     replace_example: bool = True) -> list[Span]:
        """The initial prompt as spans: one ``prompt`` span, or prompt spans around the ``experience`` spans
        (worked cases where the fixed example stands; lessons after it). Without experience the text is
        exactly what the no-experience path renders. ``cases`` are rendered in this format's own tags
        (``render_case``); with ``replace_example`` they stand in place of the fixed example. With
        ``open_turn`` the prompt ends with the ``turn_start`` text that opens every policy turn."""
        shown = "".join(self.render_case(case) for case in cases)
        example = self.templates["example"] if self.config.few_shot and not (shown and replace_example) else ""
        block = _fill(self.templates["experience_system"], "experience_system", content=experience) if experience else ""
        system = _fill(self.templates["system"], "system", max_searches=self.config.max_turns,
                       example=example + (_CASES_SLOT if shown else ""), experience=_SLOT if block else "")
        user = _fill(self.templates["user"], "user", question=question)
        rendered = self.render_chat(system, user) + (self.templates["turn_start"] if open_turn else "")
        inserts = []
        if shown:
            inserts.append((_CASES_SLOT, Span("experience", shown, {**(cases_meta or {}), "where": "example"})))
        if block:
            inserts.append((_SLOT, Span("experience", block, {**(experience_meta or {}), "where": "system"})))
        if not inserts:
            return [Span("prompt", rendered)]
        spans: list[Span] = []
        rest = rendered
        for slot, span in sorted(inserts, key=lambda pair: rendered.index(pair[0])):
            before, rest = rest.split(slot, 1)
            spans += [Span("prompt", before), span]
        spans.append(Span("prompt", rest))
        return [span for span in spans if span.text]

    case_header = "Example:"
    case_thought = "{}"
    case_observation = "{}"
    case_answer = "{thought} {answer}"

    def render_case(self, case: dict) -> str:
        """A case (``experience.schema.Case`` fields) as a worked example in this format: each thought, the
        search as the policy writes it (``opening_search``), the passages, the answer; empty for a format
        without searches."""
        if not self.searches:
            return ""
        lines = ["", "", self.case_header, f"Question: {case['question']}"]
        for step in case.get("steps", []):
            lines.append(self.case_thought.format(step.get("thought") or "I will search for what I need."))
            lines.append(self.opening_search(step["query"]))
            lines.append(self.case_observation.format(_case_docs(step)))
        lines.append(self.case_answer.format(thought=case.get("final_thought") or "The passages give the answer.",
                                             answer=case["answer"]))
        return "\n".join(lines)

    def baseline_prompt(self, question: str, passages_text: str | None) -> str:
        """Prompt of the ``rag`` (with passages) and ``closed-book`` (without) baselines."""
        if passages_text is None:
            system = _fill(self.templates["closed_book_system"], "closed_book_system",
                           answer_instruction=self.answer_instruction)
        else:
            system = _fill(self.templates["rag_system"], "rag_system", answer_instruction=self.answer_instruction,
                           passages=passages_text)
        return self.render_chat(system, f"Question: {question}")

    def baseline_stop(self) -> list[str]:
        return []

    # --- actions --------------------------------------------------------------------------------------
    def parse(self, text: str, finish_reason: str, stop: str | None) -> Action:
        raise NotImplementedError

    def _check_query(self, query: str) -> Action:
        query = query.strip()
        if not query:
            return Action("malformed", query=query, error="empty_query")
        if len(query) > self.config.max_query_chars:
            return Action("malformed", query=query, error="long_query")
        return Action("search", query=query)

    def opening_search(self, query: str) -> str:
        """The text of a search action for ``query``, as the policy would write it (``first_search="question"``)."""
        raise NotImplementedError

    def correction_message(self, error: str, query: str | None = None,
                           options: tuple[str, str] | None = None) -> str:
        """The text of a correction; ``query`` is the offending query (or, for ``not_an_option``, the answer
        given) and ``options`` the two choices the question offers."""
        template = CORRECTIONS.get(error, CORRECTIONS["no_tag"])
        first, second = (self.answer_hint.replace("your answer", option) for option in options or ("", ""))
        return template.format(search=self.search_hint, answer=self.answer_hint, n=len(query or ""),
                               limit=self.config.max_query_chars if error == "long_query" else self.config.max_turns,
                               given=query or "", first_answer=first, second_answer=second)

    # --- observations ---------------------------------------------------------------------------------
    def observation_spans(self, content: str, experience: str = "", experience_meta: dict | None = None,
                          ended_turn: bool = False, final: bool = False) -> list[Span]:
        """An observation (passages or a correction, with optional experience) as injected spans, ending with
        the text that opens the next policy turn: ``turn_start``, or with ``final`` the opening of the
        answer itself (``answer_start``), so that the next turn can only complete the answer."""
        raise NotImplementedError

    def _opener(self, final: bool) -> str:
        return self.answer_start if final else self.templates["turn_start"]

    def _split_experience(self, rendered: str, block: str, meta: dict | None) -> list[Span]:
        if not block:
            return [Span("tool", rendered)]
        before, after = rendered.split(_SLOT, 1)
        meta = dict(meta or {})
        meta["where"] = "tool"
        spans = [Span("tool", before), Span("experience", block, meta), Span("tool", after)]
        return [s for s in spans if s.text]


class SearchR1Format(AgentFormat):
    """``<search>`` / ``<information>`` / ``<answer>`` tags in one assistant message."""

    name = "search_r1"
    stop = ["</search>", "</answer>"]
    answer_start = "<answer>"
    search_hint = "<search> your query </search>"
    answer_hint = "<answer> your answer </answer>"
    answer_instruction = ("Write only the answer, a few words at most, between <answer> and </answer>, "
                          "for example <answer>Paris</answer>.")
    _open = re.compile(r"<(search|answer)>")

    def baseline_stop(self) -> list[str]:
        return ["</answer>"]

    def parse(self, text: str, finish_reason: str, stop: str | None) -> Action:
        opens = list(self._open.finditer(text))
        if not opens:
            return Action("malformed", error="no_tag")
        last = opens[-1]
        tag = last.group(1)
        close = text.find(f"</{tag}>", last.end())
        if close == -1:
            return Action("malformed", error="unclosed_tag")
        inner = text[last.end():close]
        if tag == "answer":
            if not inner.strip():
                return Action("malformed", error="empty_answer")
            return Action("answer", answer=inner.strip())
        return self._check_query(inner)

    def opening_search(self, query: str) -> str:
        return f"<search>{query}</search>"

    case_thought = "<think>{}</think>"
    case_observation = "<information>{}</information>"
    case_answer = "<think>{thought}</think>\n<answer>{answer}</answer>"

    def observation_spans(self, content: str, experience: str = "", experience_meta: dict | None = None,
                          ended_turn: bool = False, final: bool = False) -> list[Span]:
        block = _fill(self.templates["experience_tool"], "experience_tool", content=experience) if experience else ""
        rendered = _fill(self.templates["observation"], "observation", content=content + (_SLOT if block else ""))
        return self._split_experience(rendered + self._opener(final), block, experience_meta)


class ToolCallFormat(AgentFormat):
    """Qwen tool calls; results in a tool turn rendered by the chat template; answer in ``\\boxed{}``."""

    name = "tool_call"
    stop = ["</tool_call>"]
    answer_start = "The answer is \\boxed{"
    search_hint = '<tool_call>\n{"name": "search", "arguments": {"query": "your query"}}\n</tool_call>'
    answer_hint = "\\boxed{your answer}"
    answer_instruction = "Write only the answer, a few words at most, as \\boxed{your answer}, for example \\boxed{Paris}."
    _call = re.compile(r"<tool_call>(.*?)</tool_call>", re.S)

    def __init__(self, config: AgentConfig, tokenizer: Any = None):
        super().__init__(config, tokenizer)
        self.tool_before, self.tool_after, self.turn_end = self._tool_wrapper()

    def _tool_wrapper(self) -> tuple[str, str, str]:
        """The chat template's tool turn, with ``<tool_response>`` added when the template has none."""
        fallback = (_CHATML_TOOL_BEFORE, _CHATML_TOOL_AFTER, _CHATML_TURN_END)
        before, after, turn_end = self._turn_wrapper("tool", fallback)
        if (before, after, turn_end) != fallback and "<tool_response>" not in before:
            before, after = before + "<tool_response>\n", "\n</tool_response>" + after
        return before, after, turn_end

    def parse(self, text: str, finish_reason: str, stop: str | None) -> Action:
        calls = list(self._call.finditer(text))
        if calls:
            raw = calls[-1].group(1).strip()
            try:
                call = json.loads(raw)
            except ValueError:
                return Action("malformed", error="bad_json")
            if not isinstance(call, dict):
                return Action("malformed", error="bad_json")
            args = call.get("arguments", call.get("parameters"))
            if isinstance(args, str):
                try:
                    args = json.loads(args)
                except ValueError:
                    return Action("malformed", error="bad_json")
            if call.get("name") != "search" or not isinstance(args, dict) or not isinstance(args.get("query"), str):
                return Action("malformed", error="bad_tool")
            return self._check_query(args["query"])
        if "<tool_call>" in text:
            return Action("malformed", error="unclosed_tag")
        if "\\boxed{" in text:
            answer = last_boxed(text)
            if answer is None:
                return Action("malformed", error="unclosed_tag")
            if not answer.strip():
                return Action("malformed", error="empty_answer")
            return Action("answer", answer=answer.strip())
        return Action("malformed", error="no_tag")

    def opening_search(self, query: str) -> str:
        call = json.dumps({"name": "search", "arguments": {"query": query}}, ensure_ascii=False)
        return f"<tool_call>\n{call}\n</tool_call>"

    case_header = "A worked example:"
    case_thought = "Assistant: {}"
    case_observation = "Tool: <tool_response>\n{}\n</tool_response>"
    case_answer = "Assistant: {thought} The answer is \\boxed{{{answer}}}"

    def observation_spans(self, content: str, experience: str = "", experience_meta: dict | None = None,
                          ended_turn: bool = False, final: bool = False) -> list[Span]:
        block = _fill(self.templates["experience_tool"], "experience_tool", content=experience) if experience else ""
        before = self.tool_before
        if ended_turn and before.startswith(self.turn_end):
            before = before[len(self.turn_end):]
        rendered = before + content + (_SLOT if block else "") + self.tool_after + self._opener(final)
        return self._split_experience(rendered, block, experience_meta)


_CHATML_USER_BEFORE = "<|im_end|>\n<|im_start|>user\n"
_CHATML_USER_AFTER = "<|im_end|>\n<|im_start|>assistant\n"


class MathFormat(AgentFormat):
    """``math``: no tool. The policy reasons and ends with its answer in ``\\boxed{}``; a reply without one is
    answered by a correction in a new user turn. Experience goes into the system prompt only: the E2/E3
    entries closest to the problem and, since there is no search for an E1 entry to join, the E1 entry whose
    title best matches the problem itself (``experience_e1_at_start``)."""

    name = "math"
    answer_start = "The final answer is \\boxed{"
    answer_hint = "\\boxed{your answer}"
    answer_instruction = "End with the final answer alone in \\boxed{}."
    experience_e1_at_start = True
    checks_options = False
    searches = False

    def __init__(self, config: AgentConfig, tokenizer: Any = None):
        super().__init__(config, tokenizer)
        self.user_before, self.user_after, self.turn_end = self._user_wrapper()

    def _user_wrapper(self) -> tuple[str, str, str]:
        """The chat template's user turn (a correction comes from the user, there being no tool)."""
        return self._turn_wrapper("user", (_CHATML_USER_BEFORE, _CHATML_USER_AFTER, _CHATML_TURN_END))

    def baseline_stop(self) -> list[str]:
        return []

    def parse(self, text: str, finish_reason: str, stop: str | None) -> Action:
        if "\\boxed" not in text and "\\fbox" not in text:
            return Action("malformed", error="no_answer" if finish_reason != "length" else "unclosed_tag")
        answer = last_boxed(text)
        if answer is None:
            return Action("malformed", error="unclosed_tag")
        if not answer.strip():
            return Action("malformed", error="empty_answer")
        return Action("answer", answer=answer.strip())

    def correction_message(self, error: str, query: str | None = None,
                           options: tuple[str, str] | None = None) -> str:
        if error in ("final_answer", "search_budget"):
            return "Write your final answer now as \\boxed{your answer}."
        if error == "empty_answer":
            return "The box was empty. Write the final answer itself in \\boxed{}."
        return "End your solution with the final answer in \\boxed{}, for example \\boxed{42}."

    def opening_search(self, query: str) -> str:
        raise HiexpError("the math format has no search tool")

    def observation_spans(self, content: str, experience: str = "", experience_meta: dict | None = None,
                          ended_turn: bool = False, final: bool = False) -> list[Span]:
        before = self.user_before
        if ended_turn and before.startswith(self.turn_end):
            before = before[len(self.turn_end):]
        return [Span("tool", before + content + self.user_after + (self.answer_start if final else ""))]


FORMAT_CLASSES = {"search_r1": SearchR1Format, "tool_call": ToolCallFormat, "math": MathFormat}


def make_format(config: AgentConfig, tokenizer: Any = None) -> AgentFormat:
    """The format object named by ``config.format``."""
    return FORMAT_CLASSES[config.format](config, tokenizer)
