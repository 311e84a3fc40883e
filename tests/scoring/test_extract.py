"""Answer extraction for both agent formats."""

from __future__ import annotations

import pytest

from hiexp.errors import HiexpError
from hiexp.scoring.extract import braced_content, extract_answer


@pytest.mark.parametrize(
    "text, expected",
    [
        ("<think>x</think><answer> Paris </answer>", "Paris"),
        ("<answer>first</answer> more text <answer>second</answer>", "second"),
        ("<answer>a\nb</answer>", "a\nb"),
        ("<ANSWER>caps</Answer>", "caps"),
        ("<answer></answer>", ""),
        ("<answer>done</answer> then <answer>cut off", "done"),  # the unclosed one does not count
        ("<answer> <answer>inner</answer>", "inner"),
        ("no tags at all", None),
        ("<answer>never closed", None),
        ("</answer> close before open", None),
        ("", None),
        (None, None),
    ],
)
def test_search_r1_last_answer_tag(text, expected):
    assert extract_answer(text, "search_r1") == expected


@pytest.mark.parametrize(
    "text, expected",
    [
        ("The answer is \\boxed{42}.", "42"),
        ("\\boxed{1} then \\boxed{2}", "2"),
        ("\\boxed{\\frac{1}{2}}", "\\frac{1}{2}"),
        ("\\boxed{a{b{c}}d}", "a{b{c}}d"),
        ("\\boxed {spaced}", "spaced"),
        ("\\fbox{boxed by fbox}", "boxed by fbox"),
        ("\\boxed{\\{1, 2\\}}", "\\{1, 2\\}"),  # escaped braces do not nest
        ("$\\boxed 7$.", "7"),
        ("\\boxed{ok} and then \\boxed{cut", "ok"),  # an unfinished last box falls back to the one before
        ("\\boxed{never closed", None),
        ("no box here", None),
        ("\\boxedx{1}", None),
        ("<answer>x</answer>", None),
    ],
)
def test_tool_call_last_boxed(text, expected):
    assert extract_answer(text, "tool_call") == expected


def test_unknown_format_is_an_error():
    with pytest.raises(HiexpError, match="search_r1, tool_call"):
        extract_answer("x", "xml")


def test_braced_content():
    assert braced_content("{a{b}c}rest", 0) == "a{b}c"
    assert braced_content("{a{b}c", 0) is None
