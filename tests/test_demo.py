"""``hiexp demo`` end to end on a few shipped questions with a scripted policy (fast), plus resumption."""

from __future__ import annotations

import json
import re
from collections import Counter
from html.parser import HTMLParser

import pytest

from hiexp.data import load_dataset
from hiexp.demo import DemoConfig, run_demo
from hiexp.errors import HiexpError
from hiexp.search.embed import load_embedder
from tests.fakes import ScriptedGenerator

QUESTION = re.compile(r"Question: (.+)")


def scripted_policy(gold: dict[str, str], rollouts_always_wrong: bool = False, lessons_retell: bool = False):
    """Searches once, then answers. Rollouts (T > 0) alternate right and wrong per question, so every
    question gives a contrastive group; evaluation (T = 0) is right only when experience is in the prompt."""
    answers_given: Counter[str] = Counter()

    def reply(prompt: str, params) -> str:
        if "attempts by a search agent" in prompt and lessons_retell:  # accounts, never advice
            return ('[{"title": "The failed attempts stopped early", "description": "The successful attempts '
                    'searched twice.", "thinking": "", "tags": []}]')
        if "attempts by a search agent" in prompt:
            return ('```json\n[{"title": "Resolve the bridge entity before the final fact", '
                    '"description": "Search the entity the question hinges on first, then its attribute.", '
                    '"thinking": "The failed attempt guessed.", "tags": ["bridge"]}]\n```')
        if "Merge them into ONE" in prompt:
            return ('{"title": "Search step by step", "description": "One fact per query.", '
                    '"thinking": "Multi-hop questions need chained lookups.", "tags": ["multi-hop"]}')
        question = QUESTION.findall(prompt)[-1].split("<|im_end|>")[0].strip()
        after = prompt.split(question, 1)[-1]
        if "<information>" not in after:
            return f"<think>I should look this up.</think><search>{question[:80]}</search>"
        right = f"<answer>{gold[question]}</answer>"
        wrong = "<answer>I do not know</answer>"
        if params.temperature > 0:
            if rollouts_always_wrong:
                return wrong
            answers_given[question] += 1
            return right if answers_given[question] % 2 == 1 else wrong
        return right if "<experience>" in prompt else wrong

    return reply


class Links(HTMLParser):
    def __init__(self):
        super().__init__()
        self.hrefs, self.ids = [], set()

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if "href" in attrs:
            self.hrefs.append(attrs["href"])
        if "id" in attrs:
            self.ids.add(attrs["id"])


def parse_html(path):
    parser = Links()
    parser.feed(path.read_text(encoding="utf-8"))
    return parser


@pytest.fixture(scope="module")
def demo_parts():
    from hiexp.data import corpus_path_for
    from hiexp.search import load_retriever

    examples = load_dataset("hotpotqa", split="train") + load_dataset("hotpotqa", split="test")
    gold = {ex.question: ex.golden_answers[0] for ex in examples}
    return {
        "gold": gold,
        "retriever": load_retriever(corpus_path_for("hotpotqa")),
        "embedder": load_embedder("hashing", cache=False),
    }


def run(tmp_path, parts, generator=None, **overrides):
    options = dict(out=str(tmp_path / "demo"), n=2, n_test=3, k=2, seed=0, hek="live", form="paper")
    options.update(overrides)
    lines: list[str] = []
    result = run_demo(
        DemoConfig(**options), echo=lines.append,
        generator=generator or ScriptedGenerator(scripted_policy(parts["gold"])),
        embedder=parts["embedder"], retriever=parts["retriever"],
    )
    return result, lines


def test_demo_end_to_end_writes_linked_report(tmp_path, demo_parts):
    result, lines = run(tmp_path, demo_parts)
    out = tmp_path / "demo"
    for name in ("report.md", "report.html", "trajectories.html", "chart.png", "trajectories.jsonl", "e1.jsonl",
                 "hek/manifest.json", "eval/without/predictions.jsonl", "eval/with/predictions.jsonl"):
        assert (out / name).exists(), name
    assert result.report_html == out / "report.html"
    assert [s.name for s in result.stages] == ["rollouts", "distill", "build", "eval-without", "eval-with", "report"]

    # The comparison: same questions in both arms; the scripted policy only answers right with experience.
    em = result.comparison.datasets["hotpotqa"].deltas["em"]
    assert result.comparison.datasets["hotpotqa"].n == 3
    assert (em.a, em.b, em.delta) == (0.0, 1.0, 1.0)
    md = (out / "report.md").read_text()
    assert "| hotpotqa | 3 | em | 0.0 | 100.0 | +100.0 |" in md
    assert "![scores with and without experience](chart.png)" in md

    # Every E1 entry links to the trajectories it came from, and those anchors exist.
    report = parse_html(out / "report.html")
    listing = parse_html(out / "trajectories.html")
    traj_links = [h for h in report.hrefs if h.startswith("trajectories.html#")]
    e1 = [json.loads(line) for line in (out / "e1.jsonl").read_text().splitlines()]
    assert e1 and len(traj_links) >= sum(len(e["sources"]["trajectory_ids"]) for e in e1)
    for href in traj_links:
        assert href.split("#", 1)[1] in listing.ids, href
    # ... and back from the listing to the entries.
    back = [h.split("#", 1)[1] for h in listing.hrefs if h.startswith("report.html#")]
    assert back and all(anchor in report.ids for anchor in back)
    assert 'src="data:image/png;base64,' in (out / "report.html").read_text()

    # The with-HEK trajectories recorded the experience as non-trainable turns.
    with_traj = [json.loads(line) for line in next((out / "eval/with/trajectories").glob("*.jsonl")).open()]
    roles = {t["role"] for traj in with_traj for t in traj["turns"]}
    assert "experience" in roles
    assert all(traj["hek_version"] for traj in with_traj)


def test_demo_resumes_and_refuses_other_options(tmp_path, demo_parts):
    run(tmp_path, demo_parts)

    def must_not_generate(prompt, params):
        raise AssertionError("a finished stage ran again")

    result, lines = run(tmp_path, demo_parts, generator=ScriptedGenerator(must_not_generate))
    assert [s.status for s in result.stages] == ["reused"] * 5 + ["done"]
    assert (tmp_path / "demo" / "report.html").exists()
    with pytest.raises(HiexpError, match="other options.*k"):
        run(tmp_path, demo_parts, k=3)


def test_demo_options_are_checked():
    with pytest.raises(HiexpError, match="--k"):
        DemoConfig(k=1).validate()
    with pytest.raises(HiexpError, match="--train-questions"):
        DemoConfig(train_questions="hard").validate()


def test_live_rollouts_use_questions_the_shipped_hek_found_contrastive_unless_asked_for_random(tmp_path, demo_parts):
    from hiexp.experience.hek import HEK

    sources = {e.sources["question_id"] for e in HEK.load("demo-paper").level("E1")}
    run(tmp_path / "a", demo_parts)
    asked = {json.loads(line)["question_id"] for line in (tmp_path / "a" / "demo" / "trajectories.jsonl").open()}
    assert len(asked) == 2 and asked <= sources
    assert "the shipped demo-paper HEK was distilled from" in (tmp_path / "a" / "demo" / "report.md").read_text()
    run(tmp_path / "b", demo_parts, train_questions="random")
    drawn = {json.loads(line)["question_id"] for line in (tmp_path / "b" / "demo" / "trajectories.jsonl").open()}
    assert drawn == {e.id for e in load_dataset("hotpotqa", split="train", n=2, seed=0)}


def test_demo_without_contrast_falls_back_to_uniform_groups_and_says_so(tmp_path, demo_parts):
    policy = ScriptedGenerator(scripted_policy(demo_parts["gold"], rollouts_always_wrong=True))
    result, lines = run(tmp_path, demo_parts, generator=policy)
    assert any("all-success / all-failure" in line for line in lines)
    assert (tmp_path / "demo" / "hek" / "manifest.json").exists()
    assert "no contrast" in (tmp_path / "demo" / "report.md").read_text()


def test_demo_restart_discards_the_previous_run(tmp_path, demo_parts):
    run(tmp_path, demo_parts)
    lines: list[str] = []
    result = run_demo(DemoConfig(out=str(tmp_path / "demo"), n=2, n_test=3, k=3, seed=0, hek="live", form="paper"),
                      echo=lines.append,
                      restart=True, generator=ScriptedGenerator(scripted_policy(demo_parts["gold"])),
                      embedder=demo_parts["embedder"], retriever=demo_parts["retriever"])
    assert [s.status for s in result.stages] == ["done"] * 6
    assert sum(1 for _ in (tmp_path / "demo" / "trajectories.jsonl").open()) == 2 * 3


def test_the_with_arm_can_use_a_given_hek_and_the_live_one_is_shown_beside_it(tmp_path, demo_parts):
    run(tmp_path, demo_parts)  # a first run builds a HEK to hand to the second
    given = tmp_path / "demo" / "hek"
    manifest = json.loads((given / "manifest.json").read_text())
    manifest["measured"] = {"summary": "CEM +1.0 [-2.0, +4.0] on 200 held-out questions"}
    (given / "manifest.json").write_text(json.dumps(manifest))
    result, _ = run(tmp_path, demo_parts, out=str(tmp_path / "second"), hek=str(given))
    md = (tmp_path / "second" / "report.md").read_text()
    assert "## The experience used in the with-arm" in md and "## The HEK built in this run" in md
    assert "CEM +1.0 [-2.0, +4.0] on 200 held-out questions" in md  # the given HEK's measured effect, quoted
    assert "not used in the comparison" in md
    with_traj = [json.loads(line) for line in next((tmp_path / "second" / "eval/with/trajectories").glob("*.jsonl")).open()]
    from hiexp.experience.hek import HEK

    assert {t["hek_version"] for t in with_traj} == {HEK.load(given).version}


def test_a_run_whose_distillation_gives_nothing_still_compares_with_the_given_hek(tmp_path, demo_parts):
    run(tmp_path, demo_parts)
    given = tmp_path / "demo" / "hek"
    policy = ScriptedGenerator(scripted_policy(demo_parts["gold"], lessons_retell=True), model_id="retelling")
    result, lines = run(tmp_path, demo_parts, generator=policy, out=str(tmp_path / "second"), hek=str(given))
    out = tmp_path / "second"
    assert (out / "e1.jsonl").read_text() == "" and not (out / "hek").exists()
    assert [s.status for s in result.stages] == ["done"] * 6
    md = (out / "report.md").read_text()
    assert "No live HEK was built" in md and "## The HEK built in this run" not in md
    assert result.comparison.datasets["hotpotqa"].n == 3
    with pytest.raises(HiexpError, match="distillation produced no E1 entries"):  # nothing to compare with
        run(tmp_path, demo_parts, generator=policy, out=str(tmp_path / "third"))


def test_the_headline_says_when_an_interval_includes_zero():
    from hiexp.demo import _headline
    from hiexp.eval.compare import Comparison, DatasetComparison, Delta

    def comparison(low, high):
        deltas = {m: Delta(metric=m, a=0.4, b=0.45, delta=0.05, low=low, high=high) for m in ("em", "cem", "f1")}
        return Comparison(run_a="a", run_b="b", resamples=100, seed=0, confidence=0.95,
                          datasets={"hotpotqa": DatasetComparison("hotpotqa", n=20, only_a=0, only_b=0, deltas=deltas)})

    assert "includes 0" in _headline(comparison(-0.05, 0.15))
    assert "includes 0" not in _headline(comparison(0.01, 0.1))


PROBLEM = re.compile(r"Problem: (.+)")


def scripted_solver(gold: dict[str, str]):
    """A math policy: rollouts alternate a right and a wrong solution; greedy is right only with experience."""
    given: Counter[str] = Counter()

    def reply(prompt: str, params) -> str:
        if "solutions of one math problem" in prompt:
            return ('[{"title": "Totals of several equal groups", "description": "Multiply the group size by the '
                    'number of groups first.", "thinking": "Adding them undercounts.", "tags": ["product"]}]')
        if "Merge them into ONE" in prompt:
            return ('{"title": "Count equal groups by multiplying", "description": "Multiply before adding.", '
                    '"thinking": "Order of steps.", "tags": ["product"]}')
        problem = PROBLEM.findall(prompt)[-1].split("<|im_end|>")[0].strip()
        right, wrong = f"Work it out.\n\\boxed{{{gold[problem]}}}", "A guess.\n\\boxed{-1}"
        if params.temperature > 0:
            given[problem] += 1
            return right if given[problem] % 2 == 1 else wrong
        return right if "<experience>" in prompt else wrong

    return reply


def test_math_demo_runs_without_a_retriever_and_reports_pass_at_1(tmp_path, demo_parts):
    from hiexp.data.demo_set import MATH_DEMO_DATASET

    problems = load_dataset(MATH_DEMO_DATASET, split="train") + load_dataset(MATH_DEMO_DATASET, split="test")
    gold = {ex.question: ex.golden_answers[0] for ex in problems}
    policy = ScriptedGenerator(scripted_solver(gold))
    lines: list[str] = []
    result = run_demo(DemoConfig(out=str(tmp_path / "demo"), task="math", n=2, n_test=3, k=2, hek="live"),
                      echo=lines.append, generator=policy, embedder=demo_parts["embedder"])
    dc = result.comparison.datasets[MATH_DEMO_DATASET]
    assert dc.task == "math" and dc.accuracy_name == "pass@1" and set(dc.deltas) == {"accuracy", "tokens"}
    assert (dc.deltas["accuracy"].a, dc.deltas["accuracy"].b) == (0.0, 1.0)
    md = (tmp_path / "demo" / "report.md").read_text()
    assert f"| {MATH_DEMO_DATASET} | 3 | pass@1 | 0.0 | 100.0 | +100.0 |" in md
    assert "pass@1 0.0 → 100.0" in md
    entries = [json.loads(line) for line in (tmp_path / "demo" / "e1.jsonl").read_text().splitlines()]
    assert entries and all(e["sources"]["task"] == "math" for e in entries)
    assert not any("<search>" in p or "<information>" in p for p in policy.prompts)  # no search tool
    trajectories = [json.loads(line) for line in (tmp_path / "demo" / "trajectories.jsonl").read_text().splitlines()]
    assert {t["format"] for t in trajectories} == {"math"}


def test_the_cases_form_keeps_the_live_successes_as_cases_without_a_reflector(tmp_path, demo_parts):
    result, lines = run(tmp_path, demo_parts, form="cases")
    out = tmp_path / "demo"
    assert [s.name for s in result.stages] == ["rollouts", "cases", "eval-without", "eval-with", "report"]
    assert not (out / "e1.jsonl").exists()  # no distillation
    from hiexp.experience.hek import HEK

    live = HEK.load(out / "hek")
    assert live.entries and all(e.is_case_only for e in live.entries)
    with_arm = [json.loads(line) for line in (out / "eval" / "with" / "trajectories" / "hotpotqa.jsonl").read_text().splitlines()]
    shown = [t for traj in with_arm for t in traj["turns"] if t["role"] == "experience"]
    assert shown and all(t["meta"]["where"] == "example" for t in shown)
    report = (out / "report.md").read_text()
    assert "worked cases" in report and "no reflector" in report


def test_the_e1_threshold_is_the_one_the_hek_calibrated_unless_given():
    from types import SimpleNamespace

    from hiexp.demo import _experience_line
    from hiexp.experience.schema import Entry

    entry = Entry(id="E1-0", level="E1", title="Search the film first", description="advice")
    hek = SimpleNamespace(entries=[entry], counts=lambda: {"E1": 1, "E2": 0, "E3": 0},
                          manifest={"e1_threshold": {"value": 0.55}})
    assert "E1 at search time if cos >= 0.55" in _experience_line(hek, DemoConfig())
    assert "if cos >= 0.7" in _experience_line(hek, DemoConfig(experience_threshold=0.7))
    hek.manifest = {}  # no calibration recorded: the paper's value
    assert "if cos >= 0.8" in _experience_line(hek, DemoConfig())


def test_by_default_the_demo_shows_the_shipped_cases_and_builds_cases_live():
    config = DemoConfig()
    assert (config.hek, config.form) == ("demo", "cases")
    assert (DemoConfig(task="math").hek, DemoConfig(task="math").form) == ("demo-math", "paper")
    with pytest.raises(HiexpError, match="--form cases needs search episodes"):
        DemoConfig(task="math", form="cases").validate()


def test_ablations_run_only_for_a_hek_with_lessons_or_summaries_to_ablate(tmp_path):
    from hiexp.demo import DemoPipeline

    def arms(hek):
        config = DemoConfig(out=str(tmp_path), hek=hek, ablations=True)
        return list(DemoPipeline(config, echo=print).arms)

    assert arms("demo") == ["without", "with"]  # cases alone: no E1 lesson, no E2/E3
    assert arms("demo-paper") == ["without", "with", "no-e1", "no-e2e3"]
