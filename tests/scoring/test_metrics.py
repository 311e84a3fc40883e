"""EM / CEM / F1 against values worked out by hand with the official HotpotQA rules, and math equivalence."""

from __future__ import annotations

import pytest

from hiexp.errors import HiexpError
from hiexp.scoring.metrics import (
    cover_exact_match,
    exact_match,
    f1,
    math_equal,
    mean_scores,
    normalize_answer,
    normalize_math_answer,
    score_answer,
)


@pytest.mark.parametrize(
    "raw, expected",
    [
        ("The Cat", "cat"),  # case and a leading article
        ("  A  big   dog. ", "big dog"),  # whitespace collapsed, final period gone
        ("an apple", "apple"),
        ("theatre", "theatre"),  # an article inside a word stays
        ("A. Smith", "smith"),  # punctuation goes first, so "A." becomes the article "a" and goes too
        ("the-end", "theend"),  # punctuation removed before articles: no word boundary left
        ("Rock-'n'-Roll!", "rocknroll"),
        ("U.S.A.", "usa"),
        ("don't", "dont"),
        ("Éclair", "éclair"),  # non-ASCII letters are lower-cased and kept
        ("“Hi”", "“hi”"),  # non-ASCII punctuation is not in string.punctuation: kept
        ("caf\u00e9 \u2013 bar", "café – bar"),  # en dash kept as a token
        ("\u00a0foo\tbar\n", "foo bar"),  # unicode whitespace splits too
        ("1,000.5", "10005"),
        ("", ""),
        ("the a an", ""),
        (None, ""),
    ],
)
def test_normalize_answer_matches_official_rules(raw, expected):
    assert normalize_answer(raw) == expected


def test_exact_match_basic_and_aliases():
    assert exact_match("The Beatles", ["beatles"]) == 1.0
    assert exact_match("Beatles!", "the beatles") == 1.0  # a single gold string is accepted
    assert exact_match("Café", ["Cafe"]) == 0.0  # no accent folding, as in the official script
    assert exact_match("Obama", ["Barack Obama", "Obama"]) == 1.0
    assert exact_match("Obama", ["Barack Obama"]) == 0.0
    assert exact_match("anything", []) == 0.0


def test_f1_hand_computed():
    # pred tokens [big, red, dog], gold [big, dog]: overlap 2, P = 2/3, R = 1, F1 = 0.8
    assert f1("the big red dog", ["a big dog"]) == pytest.approx(0.8)
    # repeated tokens count once per match: overlap 1, P = 1/2, R = 1 -> 2/3
    assert f1("dog dog", ["dog"]) == pytest.approx(2 / 3)
    # best alias wins: vs "Obama" P=1/2 R=1 -> 2/3; vs "Barack Obama" P=1/2 R=1/2 -> 1/2
    assert f1("President Obama", ["Barack Obama", "Obama"]) == pytest.approx(2 / 3)
    assert f1("Paris", ["London"]) == 0.0
    assert f1("Paris", []) == 0.0


def test_f1_yes_no_special_case():
    # plain token overlap would give 0.5; the official script gives 0 when a side is yes/no and they differ
    assert f1("yes it is", ["yes"]) == 0.0
    assert f1("yes", ["yes it is"]) == 0.0
    assert f1("no way", ["no"]) == 0.0
    assert f1("Yes.", ["yes"]) == 1.0
    assert exact_match("Yes.", ["yes"]) == 1.0
    assert f1("noanswer", ["no answer"]) == 0.0
    assert f1("no", ["yes"]) == 0.0


def test_empty_and_none_predictions():
    assert score_answer("", ["dog"]) == {"em": 0.0, "cem": 0.0, "f1": 0.0}
    assert score_answer(None, ["dog"]) == {"em": 0.0, "cem": 0.0, "f1": 0.0}
    assert score_answer(None, ["yes"], task="math") == {"em": 0.0, "cem": 0.0, "f1": 0.0}
    # both sides normalise to "": the official script calls that an exact match with F1 0 (no tokens)
    assert exact_match("the", ["a"]) == 1.0
    assert f1("the", ["a"]) == 0.0
    assert cover_exact_match("the", ["a"]) == 1.0
    # an empty gold is not a substring match of everything
    assert cover_exact_match("Paris", ["the"]) == 0.0


def test_cem_differs_from_em():
    pred, golds = "The answer is Paris, France", ["Paris"]
    assert exact_match(pred, golds) == 0.0
    assert cover_exact_match(pred, golds) == 1.0
    # normalised pred "answer is paris france" (4 tokens), overlap 1: P = 1/4, R = 1, F1 = 0.4
    assert f1(pred, golds) == pytest.approx(0.4)
    # CEM is a character substring test on the normalised strings
    assert cover_exact_match("in the 1990s", ["1990"]) == 1.0
    assert cover_exact_match("Paris", ["Paris, France"]) == 0.0  # gold longer than prediction
    assert cover_exact_match("Obama was president", ["Barack Obama", "Obama"]) == 1.0


def test_cem_never_below_em():
    cases = [("the", "a"), ("Dog", "dog"), ("x y", "y x"), ("", "")]
    for pred, gold in cases:
        assert cover_exact_match(pred, [gold]) >= exact_match(pred, [gold])


def test_score_answer_and_means():
    assert score_answer("Chief of Protocol", ["Chief of Protocol"]) == {"em": 1.0, "cem": 1.0, "f1": 1.0}
    s = [score_answer("a dog", ["dog"]), score_answer("red dog", ["dog"])]
    means = mean_scores(s)
    assert means["n"] == 2
    assert means["em"] == pytest.approx(0.5)
    assert means["cem"] == pytest.approx(1.0)
    assert means["f1"] == pytest.approx((1.0 + 2 / 3) / 2)
    assert mean_scores([]) == {"em": 0.0, "cem": 0.0, "f1": 0.0, "n": 0}
    with pytest.raises(HiexpError, match="unknown task"):
        score_answer("x", ["x"], task="poetry")


@pytest.mark.parametrize(
    "pred, gold",
    [
        ("\\boxed{\\dfrac{1}{2}}", "\\frac12"),
        ("0.5", "\\frac{1}{2}"),
        ("1/2", "\\tfrac{1}{2}"),
        ("-\\frac{3}{4}", "-0.75"),
        ("1,000", "1000"),
        ("1{,}000", "1000"),
        ("336", "336^\\circ"),
        ("336^{\\circ}", "336"),
        ("18.0", "18"),
        ("$18$", "18"),
        ("18.", "18"),
        ("10 \\text{ cm}", "10"),
        ("5 dollars", "5"),
        ("50\\%", "50"),
        ("x = 5", "5"),
        ("\\text{(B)}", "B"),
        ("\\left( 3, \\frac{\\pi}{2} \\right)", "(3,\\frac{\\pi}{2})"),
        ("\\frac{\\sqrt{3}}{2}", "\\dfrac{\\sqrt3}{2}"),
        ("\\boxed {42}", "42"),
        ("\\fbox{7}", "7"),
        # forms only mathematical equivalence (math-verify) can tell apart from strings
        ("\\sqrt{2}/2", "\\frac{\\sqrt{2}}{2}"),
        ("\\frac{2\\pi}{3}", "2\\pi/3"),
        ("2\\sqrt{3}", "\\sqrt{12}"),
        ("x(x+2)", "x^2+2x"),
        ("(-\\infty, 3]", "(-\\infty,3]"),
        ("\\{1, 2\\}", "\\{2, 1\\}"),
        ("1.5", "\\frac{3}{2}"),
    ],
)
def test_math_equal_positive(pred, gold):
    assert math_equal(pred, gold)
    assert score_answer(pred, [gold], task="math") == {"em": 1.0, "cem": 1.0, "f1": 1.0}


@pytest.mark.parametrize(
    "pred, gold",
    [
        ("0.33", "\\frac{1}{3}"),
        ("2", "3"),
        ("3 and 4", "3"),
        ("(1,2)", "(2,1)"),
        ("[1,2)", "[1,2]"),
        ("\\frac{1}{0}", "0"),
        ("", "0"),
        (None, "0"),
        ("12", ""),
        ("x+1", "x-1"),
        ("\\sqrt{2}", "2"),
        ("(1,3)", "[1,3]"),
        ("\\frac{1}{2}", "2"),
        ("2\\pi", "\\pi"),
        ("A", "B"),
    ],
)
def test_math_equal_negative(pred, gold):
    assert not math_equal(pred, gold)


def test_normalize_math_answer():
    assert normalize_math_answer("$\\dfrac{1}{2}$") == "\\frac{1}{2}"
    assert normalize_math_answer("\\boxed{1,234}") == "1234"
    assert normalize_math_answer(None) == ""


def test_math_golds_equal_themselves(shared_data):
    from hiexp.data import load_dataset

    for name in ("gsm8k", "math500", "aime2024", "aime2025"):
        for ex in load_dataset(name):
            gold = ex.golden_answers[0]
            assert math_equal(gold, gold), (name, gold)
            assert math_equal(f"so the answer is \\boxed{{{gold}}}.", gold), (name, gold)


def test_math500_solutions_agree_with_their_answers(shared_data):
    """Every MATH-500 record: the boxed answer of its own solution grades equal to its gold answer."""
    import json

    from hiexp.scoring.extract import last_boxed

    path = shared_data / "math" / "math500_test.jsonl"
    records = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    assert len(records) == 500
    disagree = [r["answer"] for r in records if not math_equal(last_boxed(r["solution"]), r["answer"])]
    assert disagree == []


def test_gsm8k_final_answers_are_read_from_their_solutions(shared_data):
    """Every GSM8K test record: the gold answer is the number after the solution's last ``####``."""
    import json

    from hiexp.data import load_dataset

    path = shared_data / "math" / "gsm8k_test.jsonl"
    raw = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    examples = load_dataset("gsm8k")
    assert len(raw) == len(examples) == 1319
    for record, example in zip(raw, examples, strict=True):
        final = record["answer"].rsplit("####", 1)[1].strip()
        assert math_equal(final, example.golden_answers[0]), (final, example.golden_answers)
        assert math_equal(f"The answer is $\\boxed{{{final}}}$.", example.golden_answers[0])


def test_a_pathological_expression_is_not_equal_and_returns():
    assert not math_equal("9^{9^{9^{9^{9}}}}", "1")


# --- adversarial math answers: every step bounded ------------------------------------------------------

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

ADVERSARIAL = {
    "unit letters": "1" + "m" * 5000 + "!",
    "nested text": "\\text{" * 1700 + "1",
    "unclosed boxes": "\\boxed{" * 1400,
    "power tower": "2^" * 3000 + "2",
    "nested fractions": "\\frac{" * 1600,
    "short tower": "9^9^9^9^9",
    "braced tower": "2^{3^{4^{5}}}",
    "big factorial": "100000!",
    "huge exponent": "10^{100000}",
}


@pytest.mark.parametrize("name", sorted(ADVERSARIAL))
def test_adversarial_answers_are_graded_without_math_verify(name, monkeypatch):
    from hiexp.scoring import metrics

    def refuse(*_):
        raise AssertionError("math-verify was asked to compare an adversarial answer")

    monkeypatch.setattr(metrics, "_verify", refuse)
    text = ADVERSARIAL[name]
    assert metrics.math_equal(text, "42") is False
    assert metrics.math_equal("42", text) is False
    assert metrics.math_equal(text, text) is True  # the same string is still the same answer


def test_units_are_still_stripped_after_the_linear_rewrite():
    from hiexp.scoring.metrics import normalize_math_answer

    for text, want in [("5 mph", "5"), ("12 cm^2", "12"), ("3 minutes.", "3"), ("7 km 2 m", "7km2"),
                       ("1mmm!", "1mmm!"), ("4 feet", "4"), ("2 square feet", "2")]:
        assert normalize_math_answer(text) == want, text


@settings(max_examples=150, deadline=None)
@given(st.text(alphabet="m1!^{}\\boxedtxfrac 2s", max_size=300))
def test_any_short_soup_of_latex_grades_to_a_bool(text):
    from hiexp.scoring.metrics import math_equal

    assert math_equal(text, "42") in (True, False)


def test_a_grading_budget_skips_math_verify_once_spent(monkeypatch):
    from hiexp.scoring import metrics

    calls = []
    monkeypatch.setattr("math_verify.parse", lambda *a, **k: calls.append(a) or [1])
    monkeypatch.setattr("math_verify.verify", lambda *a, **k: True)
    with metrics.grading_budget(0) as budget:
        assert metrics.math_equal("\\sqrt{2}/2", "\\frac{\\sqrt{2}}{2}") is False
        assert metrics.math_equal("3", "3.0") is True  # numbers need no math-verify
    assert budget.skipped == 1 and not calls
    assert metrics.math_equal("\\sqrt{2}/2", "\\frac{\\sqrt{2}}{2}") is True  # outside the block: no limit
