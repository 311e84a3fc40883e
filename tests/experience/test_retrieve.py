"""Experience retrieval: the right levels at the right place, the E1 threshold, ablations, and the agent's record."""

from __future__ import annotations

import numpy as np
import pytest

from hiexp.contracts.experience import Injection
from hiexp.errors import HiexpError
from hiexp.experience.index import top_k_indices
from hiexp.experience.retrieve import ABLATIONS, ExperienceRetriever

DIM = 8


def unit(i: int) -> np.ndarray:
    v = np.zeros(DIM, dtype=np.float32)
    v[i] = 1.0
    return v


def at_cosine(c: float, base: int = 0, other: int = 7) -> np.ndarray:
    """A unit vector whose cosine with ``unit(base)`` is exactly ``c``."""
    v = np.zeros(DIM, dtype=np.float32)
    v[base] = c
    v[other] = np.sqrt(1.0 - c * c)
    return v


class FakeHEK:
    def __init__(self, entries, vectors, version="hek-v1"):
        self.entries = entries
        self.embeddings = np.stack(vectors).astype(np.float32)
        self.version = version
        self.manifest = {}


class TableEmbedder:
    """Maps known texts to fixed vectors; records every batch it was asked to encode."""

    dim = DIM
    model_id = "table"

    def __init__(self, table):
        self.table = table
        self.calls = []

    def encode_queries(self, texts):
        self.calls.append(list(texts))
        return np.stack([self.table[t] for t in texts]).astype(np.float32)


def entry(eid, level, title, description):
    return {"id": eid, "level": level, "title": title, "description": description, "tags": [], "children": []}


@pytest.fixture
def hek():
    entries = [
        entry("e1-a", "E1", "find the director first", "Search the film to get its director before the birthplace."),
        entry("e1-b", "E1", "compare two dates", "Look up both dates separately, then compare."),
        entry("e2-a", "E2", "bridge questions", "Resolve the bridge entity in its own search."),
        entry("e2-b", "E2", "comparison questions", "Search each side of a comparison on its own."),
        entry("e3-a", "E3", "plan searches", "Decompose the question before searching."),
    ]
    vectors = [unit(0), unit(1), unit(2), unit(3), unit(4)]
    return FakeHEK(entries, vectors)


def embedder_for(**vectors):
    return TableEmbedder(dict(vectors))


def test_for_questions_returns_top_k_of_e2_e3_only(hek):
    q = (0.9 * unit(2) + 0.4 * unit(4) + 0.1 * unit(3) + 0.95 * unit(0)).astype(np.float32)
    emb = TableEmbedder({"who directed X?": q})
    retriever = ExperienceRetriever(hek, emb, top_k=2, start_order="score")
    [inj] = retriever.for_questions(["who directed X?"])
    # E1 is closest (unit 0) but never offered at the start: only E2/E3, best first.
    assert inj.meta["entry_ids"] == ["e2-a", "e3-a"]
    assert inj.meta["levels"] == ["E2", "E3"]
    assert inj.meta["scores"][0] > inj.meta["scores"][1]
    # the default fixed order shows the same entries, E3 first, so that equal choices share a prompt prefix
    [fixed] = ExperienceRetriever(hek, emb, top_k=2).for_questions(["who directed X?"])
    assert fixed.meta["entry_ids"] == ["e3-a", "e2-a"] and fixed.meta["scores"] == inj.meta["scores"][::-1]
    assert fixed.text.index("Decompose the question") < fixed.text.index("Resolve the bridge entity")
    assert "Resolve the bridge entity in its own search." in inj.text
    assert "Decompose the question" in inj.text
    assert "Search the film" not in inj.text
    assert retriever.version == "hek-v1"


def test_for_questions_batches_and_keeps_order(hek):
    emb = TableEmbedder({"a": unit(3), "b": unit(4), "c": unit(2)})
    retriever = ExperienceRetriever(hek, emb, top_k=1, batch_size=2)
    out = retriever.for_questions(["a", "b", "c"])
    assert [i.meta["entry_ids"] for i in out] == [["e2-b"], ["e3-a"], ["e2-a"]]
    assert emb.calls == [["a", "b"], ["c"]]  # batched embedding calls


def test_for_queries_matches_title_injects_description(hek):
    emb = TableEmbedder({"director of X": unit(0), "unrelated": unit(5)})
    retriever = ExperienceRetriever(hek, emb)
    hit, miss = retriever.for_queries(["director of X", "unrelated"])
    assert "Search the film to get its director before the birthplace." in hit.text
    assert "find the director first" not in hit.text  # matched on the title, injects the description
    assert hit.meta["entry_ids"] == ["e1-a"] and hit.meta["scores"] == [1.0]
    assert miss.text == "" and "entry_ids" not in miss.meta
    # Only E1 is matched at search time, never E2/E3 (unit 5 matches nothing, E2/E3 rows are ignored).
    emb.table["bridge"] = unit(2)
    [inj] = retriever.for_queries(["bridge"])
    assert inj.text == "" and inj.meta["best_id"].startswith("e1-")


@pytest.mark.parametrize("cosine,injected", [(0.79, False), (0.7999, False), (0.8, True), (0.81, True)])
def test_threshold_just_below_and_above(hek, cosine, injected):
    emb = TableEmbedder({"q": at_cosine(cosine, base=0)})
    [inj] = ExperienceRetriever(hek, emb, threshold=0.8).for_queries(["q"])
    assert bool(inj.text) is injected
    assert inj.meta["best_id"] == "e1-a"
    assert inj.meta["best_score"] == pytest.approx(cosine, abs=1e-4)


def test_ablations(hek):
    emb = TableEmbedder({"q": unit(0), "question": (unit(2) + unit(4)).astype(np.float32)})
    no_e1 = ExperienceRetriever(hek, emb, **ABLATIONS["no-e1"])
    assert no_e1.for_queries(["q"])[0].text == ""
    assert no_e1.for_questions(["question"])[0].text

    no_start = ExperienceRetriever(hek, emb, **ABLATIONS["no-e2e3"])
    assert no_start.for_questions(["question"]) == [Injection()]
    assert no_start.for_queries(["q"])[0].text

    only_e3 = ExperienceRetriever(hek, emb, top_k=5, **ABLATIONS["only-e3"])
    [inj] = only_e3.for_questions(["question"])
    assert inj.meta["levels"] == ["E3"]
    assert only_e3.for_queries(["q"])[0].text == ""

    by_levels = ExperienceRetriever(hek, emb, levels=("E3",))
    assert by_levels.config.start_levels == ("E3",) and not by_levels.config.use_e1


def test_empty_inputs_and_empty_hek():
    emb = TableEmbedder({"q": unit(0)})
    empty = FakeHEK([], [np.zeros(DIM)])
    empty.embeddings = np.zeros((0, DIM), dtype=np.float32)
    retriever = ExperienceRetriever(empty, emb)
    assert retriever.for_questions(["q"]) == [Injection()]
    assert retriever.for_queries(["q"]) == [Injection()]
    assert retriever.for_questions([]) == [] and retriever.for_queries([]) == []


def test_bad_configuration_is_a_clear_error(hek):
    emb = TableEmbedder({})
    with pytest.raises(HiexpError, match="level"):
        ExperienceRetriever(hek, emb, levels=("E4",))
    with pytest.raises(HiexpError, match="threshold"):
        ExperienceRetriever(hek, emb, threshold=1.5)
    hek.embeddings = hek.embeddings[:3]
    with pytest.raises(HiexpError, match="entries"):
        ExperienceRetriever(hek, emb)

    class WrongDim(TableEmbedder):
        dim = 16

    with pytest.raises(HiexpError, match="dimension"):
        ExperienceRetriever(FakeHEK([entry("x", "E1", "t", "d")], [unit(0)]), WrongDim({}))


def test_top_k_indices_matches_full_sort():
    rng = np.random.default_rng(1)
    scores = rng.standard_normal((4, 1000)).astype(np.float32)
    for k in (1, 5, 1000, 2000):
        got = top_k_indices(scores, k)
        want = np.argsort(-scores, axis=1, kind="stable")[:, : min(k, 1000)]
        assert np.array_equal(got, want)


# --- with the agent (engineer D's loop) ------------------------------------------------------------------

JAWS_PASSAGES = [
    ("p1", "Jaws (film)", "Jaws is a 1975 thriller directed by Steven Spielberg."),
    ("p2", "Steven Spielberg", "Spielberg was born in Cincinnati, Ohio."),
]


class TinyRetriever:
    fingerprint = "tiny"

    def search(self, queries, k=3):
        from hiexp.contracts.passage import Passage

        return [[Passage(i, t, x, 1.0) for i, t, x in JAWS_PASSAGES[:k]] for _ in queries]


def jaws_policy(prompt, params):
    """Search once for the director, then answer."""
    part = prompt.rsplit("Question: ", 1)[-1]
    if "<information>" not in part:
        return "<think>Who directed it?</think><search>director of Jaws</search>"
    return "<answer>Cincinnati</answer>"


@pytest.fixture
def agent_parts(hek):
    from hiexp.contracts.example import Example

    question = "Where was the director of Jaws born?"
    embedder = TableEmbedder({question: (unit(2) + 0.5 * unit(4)).astype(np.float32), "director of Jaws": unit(0)})
    return [Example("q1", question, ["Cincinnati"])], embedder


def test_agent_injects_levels_at_the_right_place_and_masks_them(hek, agent_parts):
    from hiexp.agent import SearchAgent
    from hiexp.agent.config import AgentConfig
    from tests.fakes import ScriptedGenerator

    examples, embedder = agent_parts
    hook = ExperienceRetriever(hek, embedder, top_k=2)
    [traj] = SearchAgent(ScriptedGenerator(jaws_policy), TinyRetriever(), AgentConfig(), hook=hook).run(examples)
    experience = [t for t in traj.turns if t.role == "experience"]
    assert len(experience) == 2
    system, tool = experience
    # E2/E3 in the system prompt, before the first policy turn; E1 in the tool response after the search.
    first_policy = next(i for i, t in enumerate(traj.turns) if t.role == "policy")
    assert traj.turns.index(system) < first_policy < traj.turns.index(tool)
    assert system.meta["entry_ids"] == ["e3-a", "e2-a"] and set(system.meta["levels"]) <= {"E2", "E3"}
    assert "Resolve the bridge entity" in system.text
    assert tool.meta["entry_ids"] == ["e1-a"] and tool.meta["scores"] == [1.0]
    assert "Search the film to get its director" in tool.text
    assert not system.trainable and not tool.trainable
    assert traj.hek_version == "hek-v1"
    assert traj.finish == "answer" and traj.rewards["em"] == 1.0


class TokenScripted:
    """A token-in/token-out generator that follows ``jaws_policy`` using a real tokenizer, so that the
    episode surely searches (the tiny random model would only by chance)."""

    def __init__(self, tokenizer):
        self.tokenizer = tokenizer
        self.model_id = "token-scripted"

    def generate(self, prompts, params):
        from hiexp.contracts.generation import Generation

        out = []
        for ids in prompts:
            reply = jaws_policy(self.tokenizer.decode(ids, skip_special_tokens=False), params)
            reply_ids = self.tokenizer.encode(reply, add_special_tokens=False)
            out.append(Generation(reply, reply_ids, [0.0] * len(reply_ids), "stop", None))
        return out


def test_injected_experience_tokens_are_masked_with_a_tokenizer(hek, agent_parts, tiny_generator):
    """Token mode: E2/E3 text sits in the prompt; after it every experience token has mask 0 and every
    policy token mask 1."""
    from hiexp.agent import SearchAgent
    from hiexp.agent.config import AgentConfig

    examples, embedder = agent_parts
    hook = ExperienceRetriever(hek, embedder, top_k=2)
    config = AgentConfig(max_tokens=2000)
    [traj] = SearchAgent(TokenScripted(tiny_generator.tokenizer), TinyRetriever(), config, hook=hook).run(examples)
    assert traj.num_searches == 1 and traj.finish == "answer"
    experience = [t for t in traj.turns if t.role == "experience"]
    assert len(experience) == 2 and all(t.token_ids for t in experience)
    first_policy = next(i for i, t in enumerate(traj.turns) if t.role == "policy")
    assert traj.turns.index(experience[0]) < first_policy < traj.turns.index(experience[1])
    assert len(traj.prompt_ids()) == sum(len(t.token_ids) for t in traj.turns[:first_policy])
    ids, mask = traj.completion_ids_and_mask()
    position = 0
    for turn in traj.turns[first_policy:]:
        n = len(turn.token_ids)
        assert mask[position : position + n] == [1 if turn.role == "policy" else 0] * n, turn.role
        position += n
    assert position == len(ids)
    start = sum(len(t.token_ids) for t in traj.turns[first_policy : traj.turns.index(experience[1])])
    assert mask[start : start + len(experience[1].token_ids)] == [0] * len(experience[1].token_ids)
    assert experience[1].meta["entry_ids"] == ["e1-a"]


def test_eval_without_hek_prompts_are_byte_identical_to_the_plain_agent(hek, agent_parts, tmp_path):
    """``hiexp eval`` without --hek (run_eval with hook=None) sends exactly the prompts of the bare agent,
    and so does a HEK whose injections are all empty (no E2/E3, E1 threshold unreachable)."""
    from hiexp.agent import SearchAgent
    from hiexp.agent.config import AgentConfig
    from hiexp.eval.evaluate import run_eval
    from tests.fakes import ScriptedGenerator

    examples, embedder = agent_parts
    bare, via_eval, empty_hek = (ScriptedGenerator(jaws_policy) for _ in range(3))
    SearchAgent(bare, TinyRetriever(), AgentConfig()).run(examples, seed=0)
    run_eval({"toy": examples}, via_eval, TinyRetriever(), "agent", tmp_path / "run", config=AgentConfig(),
             seed=0, progress=False)
    silent = ExperienceRetriever(hek, embedder, start_levels=(), threshold=1.0)
    embedder.table["director of Jaws"] = at_cosine(0.99)
    SearchAgent(empty_hek, TinyRetriever(), AgentConfig(), hook=silent).run(examples, seed=0)
    assert bare.prompts and via_eval.prompts == bare.prompts
    assert empty_hek.prompts == bare.prompts


def test_load_experience_hook_from_a_built_hek(tmp_path):
    """The path of ``hiexp eval --hek DIR``: a HEK directory in, a retriever with the HEK's embedder out."""
    from hiexp.experience.build import build_hek
    from hiexp.experience.retrieve import load_experience_hook
    from hiexp.experience.schema import Entry
    from hiexp.search.embed import load_embedder
    from tests.fakes import ScriptedGenerator

    titles = ["find the director first", "director of the film", "compare the birth dates", "compare two ages"]
    entries = [Entry(id=f"E1-{i}", level="E1", title=t, description=f"advice {i}",
                     sources={"question_id": f"q{i}", "trajectory_ids": [f"q{i}#0"]}) for i, t in enumerate(titles)]
    summarizer = ScriptedGenerator(lambda prompt, params: '{"title": "general", "description": "general advice"}')
    built = build_hek(entries, tmp_path / "hek", load_embedder("hashing", cache=False), summarizer,
                      show_progress=False)
    hook = load_experience_hook(tmp_path / "hek")
    assert hook.version == built.version
    [hit] = hook.for_queries(["find the director first"])
    assert hit.text == "advice 0" and hit.meta["entry_ids"] == ["E1-0"]
    assert all(level in ("E2", "E3") for level in hook.for_questions(["who directed it?"])[0].meta["levels"])
    only_e3 = load_experience_hook(tmp_path / "hek", ablation="only-e3")
    assert set(only_e3.for_questions(["q"])[0].meta["levels"]) == {"E3"}
    assert only_e3.for_queries(["find the director first"])[0].text == ""
    with pytest.raises(HiexpError, match="ablation"):
        load_experience_hook(tmp_path / "hek", ablation="no-such")


def _with_provenance():
    """E1 a from question A, E1 b from question B; E2 a groups a (by children), E2 b names B by id; E3 over both."""
    entries = [
        entry("e1-a", "E1", "find the director first", "The director of X is Jane Roe."),
        entry("e1-b", "E1", "compare two dates", "Look up both dates separately, then compare."),
        entry("e2-a", "E2", "bridge questions", "Resolve the bridge entity in its own search."),
        entry("e2-b", "E2", "comparison questions", "Search each side of a comparison on its own."),
        entry("e3-a", "E3", "plan searches", "Decompose the question before searching."),
    ]
    entries[0]["sources"] = {"question_id": "qa", "question": "Who directed  X?"}
    entries[1]["sources"] = {"question_id": "qb", "question": "Which came first, Y or Z?"}
    entries[2]["children"] = ["e1-a"]
    entries[3]["sources"] = {"question_ids": ["qb"]}
    entries[4]["children"] = ["e2-a", "e2-b"]
    return FakeHEK(entries, [unit(0), unit(1), unit(2), unit(3), unit(4)])


def test_question_provenance_follows_children_and_ids():
    from hiexp.experience.retrieve import question_provenance

    provenance = question_provenance(_with_provenance().entries)
    a, b = "who directed x?", "which came first, y or z?"
    assert provenance == {"e1-a": {a}, "e1-b": {b}, "e2-a": {a}, "e2-b": {b}, "e3-a": {a, b}}


def test_exclude_own_question_hides_entries_distilled_from_it():
    hek = _with_provenance()
    question = "who directed X?"  # the same question, typed differently: case and spacing do not matter
    start = (0.9 * unit(2) + 0.5 * unit(4) + 0.2 * unit(3)).astype(np.float32)
    emb = TableEmbedder({question: start, "other question": start, "director of X": unit(0)})
    plain = ExperienceRetriever(hek, emb, top_k=3)
    [inj] = plain.for_questions([question])
    assert inj.meta["entry_ids"] == ["e3-a", "e2-a", "e2-b"]

    own = ExperienceRetriever(hek, emb, top_k=3, exclude_own_question=True)
    [inj] = own.for_questions([question])
    assert inj.meta["entry_ids"] == ["e2-b"]  # e2-a and e3-a descend from this question's E1 entry
    [other] = own.for_questions(["other question"])
    assert other.meta["entry_ids"] == ["e3-a", "e2-a", "e2-b"]

    # E1: the matching entry is the question's own, so nothing is injected for that episode
    [hit] = plain.for_queries(["director of X"], questions=[question])
    assert "Jane Roe" in hit.text
    [hidden, shown] = own.for_queries(["director of X", "director of X"], questions=[question, "other question"])
    assert "Jane Roe" not in hidden.text and "Jane Roe" in shown.text
    assert hidden.meta["best_id"] != "e1-a"
    # without the episode's question there is nothing to exclude
    assert "Jane Roe" in own.for_queries(["director of X"])[0].text
