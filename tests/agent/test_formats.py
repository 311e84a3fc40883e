"""Prompt layout and action parsing of both formats."""

from __future__ import annotations

import pytest

from hiexp.agent.config import AgentConfig
from hiexp.agent.formats import make_format
from hiexp.errors import HiexpError


def fmt(name="search_r1", tokenizer=None, **kw):
    return make_format(AgentConfig(format=name, **kw), tokenizer)


@pytest.mark.parametrize(
    "text, kind, extra",
    [
        ("<think>x</think><search> Jaws director </search>", "search", "Jaws director"),
        ("<answer> Paris </answer>", "answer", "Paris"),
        ("I think it is Paris.", "malformed", "no_tag"),
        ("<search>   </search>", "malformed", "empty_query"),
        ("<search>" + "word " * 200 + "</search>", "malformed", "long_query"),
        ("<search>Jaws director", "malformed", "unclosed_tag"),
        ("<answer>  </answer>", "malformed", "empty_answer"),
    ],
)
def test_search_r1_parse(text, kind, extra):
    action = fmt().parse(text, "stop", None)
    assert action.kind == kind
    assert (action.query if kind == "search" else action.answer if kind == "answer" else action.error) == extra


@pytest.mark.parametrize(
    "text, kind, extra",
    [
        ('<tool_call>\n{"name": "search", "arguments": {"query": "Jaws"}}\n</tool_call>', "search", "Jaws"),
        ("So the answer is \\boxed{Paris}", "answer", "Paris"),
        ('<tool_call>{"name": "search", "arguments": {"query": "Jaws"</tool_call>', "malformed", "bad_json"),
        ('<tool_call>{"name": "browse", "arguments": {"url": "x"}}</tool_call>', "malformed", "bad_tool"),
        ('<tool_call>{"name": "search", "arguments": {"query": ""}}</tool_call>', "malformed", "empty_query"),
        ('<tool_call>{"name": "search"', "malformed", "unclosed_tag"),
        ('{"name": "search", "arguments": {"query": "Jaws"}}', "malformed", "no_tag"),
        ("\\boxed{ }", "malformed", "empty_answer"),
    ],
)
def test_tool_call_parse(text, kind, extra):
    action = fmt("tool_call").parse(text, "stop", None)
    assert action.kind == kind
    assert (action.query if kind == "search" else action.answer if kind == "answer" else action.error) == extra


@pytest.mark.parametrize("name", ["search_r1", "tool_call"])
def test_no_experience_prompt_is_one_span_and_empty_injection_is_identical(name):
    f = fmt(name)
    plain = f.prompt_spans("Who?")
    empty = f.prompt_spans("Who?", "", {"entries": []})
    assert len(plain) == 1 and plain[0].role == "prompt"
    assert [s.text for s in plain] == [s.text for s in empty]
    assert "experience" not in plain[0].text


@pytest.mark.parametrize("name", ["search_r1", "tool_call"])
def test_experience_is_its_own_span_inside_the_system_prompt(name):
    f = fmt(name)
    spans = f.prompt_spans("Who?", "Look up the director first.", {"entries": ["e1"]})
    assert [s.role for s in spans] == ["prompt", "experience", "prompt"]
    assert "<experience>" in spans[1].text and "Look up the director first." in spans[1].text
    assert spans[1].meta == {"entries": ["e1"], "where": "system"}
    # the system prompt holds it: the user question comes after
    assert "Who?" in spans[2].text and "Who?" not in spans[0].text
    # removing the experience span gives back the no-experience prompt
    assert spans[0].text + spans[2].text == f.prompt_spans("Who?")[0].text


@pytest.mark.parametrize("name", ["search_r1", "tool_call"])
def test_observation_with_and_without_experience(name):
    f = fmt(name)
    plain = f.observation_spans("Doc 1(Title: A) a")
    assert [s.role for s in plain] == ["tool"]
    spans = f.observation_spans("Doc 1(Title: A) a", "Tip.", {"entries": ["x"]})
    assert [s.role for s in spans] == ["tool", "experience", "tool"]
    assert "".join(s.text for s in spans).replace(spans[1].text, "") == plain[0].text
    if name == "search_r1":
        # the next policy turn opens with the turn_start text (a <think>)
        assert plain[0].text.startswith("\n\n<information>") and plain[0].text.endswith("</information>\n\n<think>")
        final = f.observation_spans("Answer now.", final=True)[0].text
        assert final.endswith("</information>\n\n<answer>")
    else:
        assert "<tool_response>" in plain[0].text and plain[0].text.endswith("<|im_start|>assistant\n")
        assert f.observation_spans("Answer now.", final=True)[0].text.endswith("assistant\nThe answer is \\boxed{")


def test_the_baselines_hash_ignores_the_agent_only_options():
    plain = fmt(anchor_first_query=False, answer_beyond_question=False)
    assert fmt().template_hash("rag") == plain.template_hash("rag") == plain.template_hash()
    assert fmt().template_hash("closed-book") == plain.template_hash("closed-book")
    assert fmt().template_hash("agent") != fmt().template_hash("rag")


def test_few_shot_switch_and_template_override(tmp_path):
    assert "Example:" in fmt(few_shot=True).prompt_spans("Q")[0].text
    assert "Example:" not in fmt(few_shot=False).prompt_spans("Q")[0].text
    path = tmp_path / "user.txt"
    path.write_text("Q> ${question}")
    assert "Q> Who?" in fmt(templates={"user": str(path)}).prompt_spans("Who?")[0].text
    assert "Ask: Who?" in fmt(templates={"user": "Ask: ${question}\n"}).prompt_spans("Who?")[0].text
    with pytest.raises(HiexpError, match="unknown template"):
        fmt(templates={"nope": "x"})
    with pytest.raises(HiexpError, match="placeholder"):
        fmt(templates={"user": "${nothing}\n"}).prompt_spans("Q")


def test_template_hash_changes_with_templates():
    assert fmt().template_hash() == fmt().template_hash()
    assert fmt().template_hash() != fmt(few_shot=False).template_hash()
    assert fmt().template_hash() != fmt("tool_call").template_hash()


def test_the_option_rule_changes_the_hash_only_where_it_acts():
    assert fmt().template_hash() != fmt(answer_from_options=False).template_hash()
    assert fmt("math").template_hash() == fmt("math", answer_from_options=False).template_hash()


def test_the_query_anchor_changes_the_hash_only_where_it_acts():
    assert fmt().template_hash() != fmt(anchor_first_query=False).template_hash()
    assert fmt("tool_call").template_hash() != fmt("tool_call", anchor_first_query=False).template_hash()
    assert fmt("math").template_hash() == fmt("math", anchor_first_query=False).template_hash()


def test_the_echo_rule_changes_only_the_agents_hash():
    assert fmt().template_hash() != fmt(answer_beyond_question=False).template_hash()
    assert fmt().template_hash("rag") == fmt(answer_beyond_question=False).template_hash("rag")
    assert fmt("math").template_hash() == fmt("math", answer_beyond_question=False).template_hash()


def test_bad_config_is_refused():
    with pytest.raises(HiexpError, match="format"):
        AgentConfig(format="react")
    with pytest.raises(HiexpError, match="top_k"):
        AgentConfig(top_k=0)
