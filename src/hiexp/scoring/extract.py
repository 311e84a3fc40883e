"""Pull the final answer out of a policy's text, for both agent formats.

- ``search_r1``: the text of the last complete ``<answer> ... </answer>`` span;
- ``tool_call``: the contents of the last ``\\boxed{...}`` (braces may nest; ``\\boxed {``, ``\\fbox{`` and
  ``\\boxed 42`` are accepted too).

Both return None when the text holds no answer, so that a missing answer can be told from an empty one
(``<answer></answer>`` gives ``""``).
"""

from __future__ import annotations

import re

from hiexp.errors import HiexpError

FORMATS = ("search_r1", "tool_call")

_OPEN_TAG = re.compile(r"<answer\s*>", re.IGNORECASE)
_CLOSE_TAG = re.compile(r"</answer\s*>", re.IGNORECASE)
_BOX_COMMAND = re.compile(r"\\(?:boxed|fbox)(?![A-Za-z])(\s*)")
_BARE_TOKEN = re.compile(r"[^\s$]+")


def last_tagged_answer(text: str) -> str | None:
    """The text between the last ``</answer>`` and the nearest ``<answer>`` before it."""
    for close in reversed(list(_CLOSE_TAG.finditer(text))):
        opens = list(_OPEN_TAG.finditer(text, 0, close.start()))
        if opens:
            return text[opens[-1].end() : close.start()].strip()
    return None


def braced_content(text: str, open_index: int) -> str | None:
    """The text inside the brace group opening at ``text[open_index] == "{"``; None if never closed.

    Escaped braces (``\\{``, ``\\}``) do not count, so ``\\boxed{\\{1, 2\\}}`` gives ``\\{1, 2\\}``.
    """
    close = _closing_braces(text[open_index:]).get(0)
    return None if close is None else text[open_index + 1 : open_index + close]


def _closing_braces(text: str) -> dict[int, int]:
    """Where each brace group closes: ``{open index: close index}``, in one pass (escaped braces skipped)."""
    pairs: dict[int, int] = {}
    opened: list[int] = []
    i = 0
    while i < len(text):
        char = text[i]
        if char == "\\":
            i += 2
            continue
        if char == "{":
            opened.append(i)
        elif char == "}" and opened:
            pairs[opened.pop()] = i
        i += 1
    return pairs


def last_boxed(text: str) -> str | None:
    """The contents of the last complete ``\\boxed{...}`` / ``\\fbox{...}`` (or ``\\boxed 42``).

    A box cut off before its closing brace (generation stopped mid-answer) is passed over in favour of the
    last complete one before it. Linear in the text: braces are matched once, not once per box.
    """
    pairs: dict[int, int] | None = None
    for match in reversed(list(_BOX_COMMAND.finditer(text))):
        start = match.end()
        if start < len(text) and text[start] == "{":
            if pairs is None:
                pairs = _closing_braces(text)
            if start in pairs:
                return text[start + 1 : pairs[start]].strip()
        elif match.group(1):  # "\boxed 42": one bare token after a space
            token = _BARE_TOKEN.match(text, start)
            if token:
                return token.group(0).rstrip(".,;")
    return None


def extract_answer(text: str | None, fmt: str) -> str | None:
    """The final answer in ``text`` for agent format ``fmt`` (``search_r1`` or ``tool_call``), or None."""
    if fmt not in FORMATS:
        raise HiexpError(f"unknown answer format {fmt!r}; expected one of {', '.join(FORMATS)}")
    if not text:
        return None
    if fmt == "search_r1":
        return last_tagged_answer(text)
    return last_boxed(text)
