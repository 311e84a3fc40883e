"""``hiexp demo``: the whole inference-only HiExp loop on the shipped demo set, resumable stage by stage.

rollouts (train split, K samples per question) → contrastive distillation (E1) → HEK (E2/E3 by
clustering and summaries) → evaluation without and with experience on the disjoint test split (same
questions, same seeds, greedy) → report (``report.md``, ``report.html``, ``trajectories.html``, ``chart.png``).

A few minutes of CPU cannot distil from the thousands of rollouts the paper uses, so by default the "with"
arm uses the HEK that ships with the package (``demo``: built by hiexp's own pipeline from the train split,
see ``examples/build_demo_hek.sh``), while the HEK built live in this run is shown beside it; ``hek="live"``
evaluates the live one instead. ``full`` runs the comparison on every test question, with the ablations.

Every stage writes into ``out`` and is skipped when its output is complete; the long stages (rollouts,
distillation, evaluation) append as they go and resume inside the stage, so Ctrl-C and a re-run lose
nothing. ``demo.json`` records the configuration; re-running with different options into the same
directory is refused (use another ``--out`` or ``--restart``) rather than mixing two runs.
"""

from __future__ import annotations

import contextlib
import json
import math
import shutil
import time
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from hiexp.agent.config import AgentConfig
from hiexp.errors import HiexpError
from hiexp.io import atomic_write_json, check_output_dir, exclusive_output, iter_jsonl
from hiexp.llm import inference_backend

STATE_FILE = "demo.json"
# The HEK shipped for each task's demo set (``SHIPPED_HEKS``), the shipped HEK whose sources are the task's
# contrastive training questions, and the tokens of a math turn (the whole solution).
SHIPPED_HEK_OF_TASK = {"qa": "demo", "math": "demo-math"}
CONTRASTIVE_HEK_OF_TASK = {"qa": "demo-paper", "math": "demo-math"}
FORM_OF_TASK = {"qa": "cases", "math": "paper"}
MATH_TURN_TOKENS = 768


@dataclass
class DemoConfig:
    """Options of the demo pipeline. The defaults finish in under 15 minutes on 2 CPU cores with the
    default 1.5B model (measured; see docs/results.md): a handful of questions, so the report's interval is
    wide; ``full`` compares on every test question.

    out: output directory (stages, HEK, runs and the report go here).
    task: ``qa`` (multi-hop search on the HotpotQA demo set) or ``math`` (GSM8K word problems solved in one
      turn with no search tool: the ``math`` format, the ``gsm8k-demo`` set, the shipped math HEK).
    dataset: the dataset with disjoint ``train`` and ``test`` splits (the shipped HotpotQA demo set; for
      ``task="math"`` the shipped GSM8K demo set).
    n: training questions for the live rollouts.
    train_questions: which ``n`` training questions: ``contrastive`` draws them from the questions the
      shipped paper-form HEK (``demo-paper``) was distilled from (where the default policy's rollouts both
      succeeded and failed, so a few minutes of rollouts have something to contrast; the demo set only),
      ``random`` from the whole train split.
    n_test: test questions for the with/without evaluation (ignored with ``full``).
    hek: the experience of the "with" arm: ``demo`` (the HEK shipped with hiexp: worked cases curated for the
      default policy), ``demo-paper`` (the shipped paper-form HEK), ``live`` (the one this run builds) or a
      HEK directory.
    form: what this run builds from its rollouts: ``cases`` (its verified successes, kept as worked examples;
      no reflector, seconds; the form measured best for the 1.5B policy; QA only, as a case is a search
      episode) or ``paper`` (contrastive distillation into E1, then E2/E3 by clustering and summaries). None:
      the task's own (``FORM_OF_TASK``). docs/experience.md says which form suits which policy.
    full: evaluate on every test question, and the ablations too.
    k: rollouts per training question (contrast needs both successes and failures: K >= 2).
    model: the policy (a preset, a local directory, a .gguf file or an OpenAI-compatible URL).
    backend: generator backend (``auto``, ``transformers``, ``llamacpp``, ``openai``).
    reflector: the model that distils and summarises experience; None = the policy itself.
    embedder: sentence embedder for clustering and experience retrieval.
    seed: seed of the question draw, the rollouts and the evaluation.
    rollout_temperature: sampling temperature of the training rollouts (diversity for contrast).
    rollout_top_p: nucleus mass of the training rollouts.
    success: the reward that decides which rollouts succeeded (``em``, ``cem`` or ``f1``; see
      ``success_threshold``), so which questions are contrastive.
    success_threshold: a rollout succeeds when that reward is at least this.
    eval_temperature: temperature of the evaluation (0 = greedy, so both arms are deterministic).
    agent: the agent's settings for the rollouts and the evaluation (format, passages per search, searches
      per episode, token budgets); each stage sets its own temperature, and the seed is ``seed``.
    experience_top_k: E2/E3 entries put into the system prompt.
    experience_threshold: cosine an E1 title must reach for its description to be injected; None: the one the
      HEK's manifest calibrated for its embedder (else the paper's 0.8, which suits its embedder, not ours).
    ablations: also evaluate ``no-e1`` and ``no-e2e3`` to see which component helps or hurts (skipped for a
      HEK of cases alone, which has neither component).
    resamples: bootstrap resamples of the comparison.
    """

    out: str = "runs/demo"
    task: str = "qa"
    dataset: str = "hotpotqa"
    n: int = 3
    train_questions: str = "contrastive"
    n_test: int = 6
    hek: str = "demo"
    form: str | None = None
    full: bool = False
    k: int = 4
    model: str = "default"
    backend: str = "auto"
    reflector: str | None = None
    embedder: str = "default"
    seed: int = 0
    rollout_temperature: float = 1.0
    rollout_top_p: float = 0.95
    success: str = "cem"
    success_threshold: float = 1.0
    eval_temperature: float = 0.0
    agent: AgentConfig = field(default_factory=AgentConfig)
    experience_top_k: int = 5
    experience_threshold: float | None = None
    ablations: bool = False
    resamples: int = 2000

    def __post_init__(self) -> None:
        if self.form is None:
            self.form = FORM_OF_TASK.get(self.task, "paper")
        if self.task == "math":  # the math task's own defaults, where the QA ones were left in place
            from hiexp.data.demo_set import MATH_DEMO_DATASET

            if self.dataset == "hotpotqa":
                self.dataset = MATH_DEMO_DATASET
            if self.agent.format != "math":
                self.agent = replace(self.agent, format="math", max_new_tokens=max(self.agent.max_new_tokens,
                                                                                   MATH_TURN_TOKENS))
            if self.hek == "demo":
                self.hek = SHIPPED_HEK_OF_TASK["math"]

    def validate(self) -> None:
        if self.task not in SHIPPED_HEK_OF_TASK:
            raise HiexpError(f"--task must be qa or math (got {self.task!r})")
        if self.n < 1 or self.n_test < 1:
            raise HiexpError(f"--n and --n-test must be >= 1 (got {self.n}, {self.n_test})")
        if self.k < 2:
            raise HiexpError(f"--k must be >= 2: distillation contrasts successes with failures (got {self.k})")
        for name in ("success_threshold", "rollout_temperature", "rollout_top_p", "eval_temperature",
                     "experience_threshold"):
            value = getattr(self, name)
            if value is not None and not math.isfinite(value):
                raise HiexpError(f"--{name.replace('_', '-')} must be a finite number, got {value}")
        if self.success not in ("em", "cem", "f1"):
            raise HiexpError(f"--success must be em, cem or f1 (got {self.success!r})")
        if self.form not in ("cases", "paper"):
            raise HiexpError(f"--form must be cases or paper (got {self.form!r})")
        if self.task == "math" and self.form == "cases":
            raise HiexpError("--form cases needs search episodes: the math task builds the paper form (--form paper)")
        if self.train_questions not in ("contrastive", "random"):
            raise HiexpError(f"--train-questions must be contrastive or random (got {self.train_questions!r})")

    def fingerprint(self) -> dict[str, Any]:
        """The options that decide the results (the output directory and report-only options excluded)."""
        data = asdict(self)
        for key in ("out", "resamples", "ablations", "full"):
            data.pop(key)
        if data["form"] == "paper":  # runs from before the option keep their fingerprint
            data.pop("form")
        data["n_test"] = self.test_size
        return data

    @property
    def test_size(self) -> int | None:
        """Test questions evaluated: ``n_test``, or None (all of them) with ``full``."""
        return None if self.full else self.n_test


@dataclass
class StageRecord:
    name: str
    status: str = "pending"  # pending | done | reused | failed
    seconds: float = 0.0
    detail: str = ""


@dataclass
class DemoResult:
    """Where things are after a run."""

    out: Path
    report_md: Path
    report_html: Path
    comparison: Any
    stages: list[StageRecord] = field(default_factory=list)
    wall_seconds: float = 0.0


class DemoPipeline:
    """The demo's five stages as methods over lazily built shared resources (a model is loaded only when a
    stage needs it). ``run`` calls them in order, skipping a stage whose output is already complete."""

    def __init__(self, config: DemoConfig, echo: Callable[[str], None], generator: Any = None, embedder: Any = None,
                 reflector: Any = None, retriever: Any = None, finished: dict[str, Any] | None = None):
        self.config = config
        self.echo = echo
        self.out = Path(config.out)
        self._generator = generator
        self._embedder = embedder
        self._reflector = reflector
        self._retriever = retriever
        self.finished = finished or {}  # stages a previous run completed, from demo.json
        self.stages: list[StageRecord] = []
        self.trajectories = self.out / "trajectories.jsonl"
        self.e1_path = self.out / "e1.jsonl"
        self.live_hek_dir = self.out / "hek"
        self.eval_dir = self.out / "eval"
        self.comparison: Any = None
        self.report_paths: dict[str, Path] = {}

    # --- resources ------------------------------------------------------------------------------------
    @property
    def generator(self):
        if self._generator is None:
            self._generator = self._load("model", self.config.model, self.config.backend)
        return self._generator

    @property
    def reflector(self):
        if self._reflector is None:
            if self.config.reflector is None:
                self._reflector = self.generator
            else:
                self._reflector = self._load("reflector", self.config.reflector, "auto")
        return self._reflector

    def _load(self, role: str, model: str, backend: str):
        from hiexp.components import make_generator

        self.echo(f"loading {role} {model} ({inference_backend(model, backend)} backend) ...")
        return make_generator(model, backend)

    @property
    def embedder(self):
        if self._embedder is None:
            from hiexp.search.embed import load_embedder

            self._embedder = load_embedder(self.config.embedder)
        return self._embedder

    @property
    def retriever(self):
        if self.config.task == "math":
            return None  # the math task has no search tool
        if self._retriever is None:
            from hiexp.components import make_retriever

            self._retriever = make_retriever(dataset=self.config.dataset)
        return self._retriever

    def agent_config(self, temperature: float, top_p: float = 1.0):
        c = self.config
        return replace(c.agent, temperature=temperature, top_p=top_p, seed=c.seed)

    def hek_dir(self) -> Path:
        """The HEK of the "with" arm."""
        if self.config.hek == "live":
            return self.live_hek_dir
        from hiexp.experience.hek import resolve_hek_dir

        return resolve_hek_dir(self.config.hek)

    def examples(self, split: str, n: int):
        from hiexp.data import load_dataset

        return load_dataset(self.config.dataset, split=split, n=n, seed=self.config.seed)

    def train_examples(self) -> tuple[list, str]:
        """The training questions of the live rollouts, and how they were chosen (for the report)."""
        c = self.config
        from hiexp.data import DEMO_DATASET
        from hiexp.data.demo_set import MATH_DEMO_DATASET
        from hiexp.experience.hek import is_shipped_name

        shipped = CONTRASTIVE_HEK_OF_TASK[c.task]
        if c.train_questions == "contrastive" and c.dataset in (DEMO_DATASET, MATH_DEMO_DATASET) \
                and is_shipped_name(shipped):
            import random

            from hiexp.data import load_dataset
            from hiexp.experience.hek import HEK

            sources = {str(e.sources.get("question_id")) for e in HEK.load(shipped).level("E1")}
            pool = [e for e in load_dataset(c.dataset, split="train") if str(e.id) in sources]
            if len(pool) >= c.n:
                chosen = sorted(random.Random(c.seed).sample(range(len(pool)), c.n))
                return [pool[i] for i in chosen], (
                    f"{c.n} of the {len(pool)} training questions the shipped {shipped} HEK was distilled from, where "
                    "the default policy's rollouts both succeeded and failed (--train-questions random draws "
                    "from the whole train split)")
        return self.examples("train", c.n), f"{c.n} training questions drawn at random"

    @property
    def arms(self) -> dict[str, str | None]:
        """Evaluation arm -> experience ablation (None = no HEK)."""
        arms: dict[str, str | None] = {"without": None, "with": "full"}
        if (self.config.ablations or self.config.full) and self._has_components():
            arms.update({"no-e1": "no-e1", "no-e2e3": "no-e2e3"})
        return arms

    def _has_components(self) -> bool:
        """Whether the with-arm's HEK has lessons or summaries to ablate (a HEK of cases alone has neither,
        and its ablations would repeat the with-arm)."""
        from hiexp.experience.hek import HEK

        return any(not entry.is_case_only for entry in HEK.load(self.hek_dir()).entries)

    # --- running --------------------------------------------------------------------------------------
    def run(self) -> None:
        """Every stage in order; each resumes or is skipped when a previous run completed it."""
        c = self.config
        self.stage("rollouts", lambda: "rollouts" in self.finished
                   and _count_lines(self.trajectories) >= c.n * c.k, self.rollouts)
        if c.form == "cases":
            self.stage("cases", lambda: "cases" in self.finished, self.cases)
        else:
            self.stage("distill", lambda: "distill" in self.finished and self.e1_path.exists(), self.distill)
            self.stage("build", lambda: "build" in self.finished
                       and (self.live_hek_dir / "manifest.json").exists(), self.build)
        for arm, ablation in self.arms.items():
            self.stage(f"eval-{arm}", lambda arm=arm: f"eval-{arm}" in self.finished
                       and _eval_complete(self.eval_dir / arm),
                       lambda arm=arm, ablation=ablation: self.evaluate(arm, ablation))
        self.stage("report", lambda: False, self.report)

    def stage(self, name: str, done: Callable[[], bool], work: Callable[[], str | None]) -> None:
        """Run ``work`` unless ``done()`` says the stage's output is already complete."""
        record = StageRecord(name)
        self.stages.append(record)
        if done():
            record.status = "reused"
            self.echo(f"[{len(self.stages)}] {name}: already done, reusing {self.out}")
            return
        self.echo(f"[{len(self.stages)}] {name} ...")
        start = time.perf_counter()
        try:
            record.detail = work() or ""
        except BaseException:
            record.status = "failed"
            record.seconds = time.perf_counter() - start
            raise
        record.seconds = time.perf_counter() - start
        record.status = "done"
        self.echo(f"[{len(self.stages)}] {name}: done in {record.seconds:.0f} s{' (' + record.detail + ')' if record.detail else ''}")
        self._save_state()

    def _save_state(self) -> None:
        state = _read_state(self.out) or {}
        state["config"] = self.config.fingerprint()
        finished = state.setdefault("stages", {})
        for record in self.stages:
            if record.status == "done":
                finished[record.name] = {"seconds": round(record.seconds, 1), "detail": record.detail}
        atomic_write_json(self.out / STATE_FILE, state)

    # --- the stages -----------------------------------------------------------------------------------
    def rollouts(self) -> str:
        """1. K sampled episodes per training question."""
        from hiexp.agent import SearchAgent
        from hiexp.agent.rollout import run_rollouts

        c = self.config
        examples, chosen = self.train_examples()
        self.echo(f"training questions: {chosen}")
        _add_note(self.out, f"Live rollouts: {chosen}.")
        agent = SearchAgent(self.generator, self.retriever, self.agent_config(c.rollout_temperature, c.rollout_top_p))
        summary = run_rollouts(examples, agent, c.k, self.trajectories, seed=c.seed)
        records = list(iter_jsonl(self.trajectories, skip_bad=True))
        wins = sum(1 for r in records if (r.get("rewards") or {}).get(c.success, 0) >= c.success_threshold)
        return f"{summary.total} trajectories, {wins} successful by {c.success}"

    def distill(self) -> str:
        """2. Contrastive distillation of the rollouts into E1 entries."""
        from hiexp.experience.distill import DistillConfig, distill

        c = self.config
        rule = dict(reward_key=c.success, threshold=c.success_threshold)
        summary = distill([self.trajectories], self.e1_path, self.reflector,
                          DistillConfig(batch_size=8, seed=c.seed, **rule))
        self.echo(summary.render())
        if summary.entries_total == 0:
            # No question had both a success and a failure (a weak policy or a small K): rather than stop,
            # reflect on the uniform groups as well, and say so in the report.
            self.echo("no contrastive group gave an entry; reflecting on all-success / all-failure groups too")
            summary = distill([self.trajectories], self.e1_path, self.reflector,
                              DistillConfig(batch_size=8, seed=c.seed, include_uniform=True, **rule))
            self.echo(summary.render())
            _add_note(self.out, "No training question had both a successful and a failed rollout that gave an "
                                "entry, so E1 was distilled from all-failure / all-success groups (no contrast).")
        return f"{summary.entries_total} E1 entries from {summary.groups_eligible} groups"

    def build(self) -> str:
        """3. The HEK: E1 clustered and summarised into E2 and E3."""
        from hiexp.experience.build import build_hek

        if _count_lines(self.e1_path) == 0:
            if self.config.hek != "live":
                # the with-arm has its own HEK: the comparison stands without a live one, and the report says why
                _add_note(self.out, "No live HEK was built: no entry distilled from this run's rollouts passed the "
                                    "rules that keep experience advice (docs/experience.md); the with-arm uses the "
                                    "given HEK.")
                return "no live HEK: distillation gave no entry"
            raise HiexpError(
                f"distillation produced no E1 entries ({self.e1_path}): no training question had both a success "
                f"and a failure among its {self.config.k} rollouts; raise --k or --n, or use a stronger --reflector"
            )
        hek = build_hek([self.e1_path], self.live_hek_dir, self.embedder, self.reflector)
        return _counts(hek)

    def cases(self) -> str:
        """2-3 (cases form). The verified successes of the rollouts, kept as worked cases: no model call."""
        from hiexp.experience.build import build_case_hek

        try:
            hek = build_case_hek([self.trajectories], self.live_hek_dir, self.embedder, overwrite=True,
                                 description=f"worked cases from this demo run's rollouts ({self.config.n} train "
                                             f"questions x {self.config.k})")
        except HiexpError as exc:
            if self.config.hek == "live":
                raise HiexpError(f"no live HEK: {exc}; raise --k or --n, or use --hek demo") from None
            _add_note(self.out, "No live HEK was built: no rollout of this run was a verified success; the "
                                "with-arm uses the given HEK.")
            return "no live HEK: no verified success"
        return _counts(hek)

    def evaluate(self, arm: str, ablation: str | None) -> str:
        """4. One arm on the test split: without the HEK, with it, or an ablation (same questions, greedy)."""
        from hiexp.eval.evaluate import run_eval

        c = self.config
        hook = None
        if ablation is not None:
            from hiexp.components import make_experience_hook

            hook = make_experience_hook(self.hek_dir(), top_k=c.experience_top_k, threshold=c.experience_threshold,
                                        ablation=ablation, embedder=self.embedder)
        metrics = run_eval({c.dataset: self.examples("test", c.test_size)}, self.generator, self.retriever, "agent",
                           self.eval_dir / arm, hook=hook, config=self.agent_config(c.eval_temperature), seed=c.seed)
        return _describe_metrics(metrics)

    def report(self) -> str:
        """5. The with-minus-without comparison with intervals, the HEK and the trajectories, as md and HTML."""
        from hiexp.eval.compare import compare_runs
        from hiexp.experience.hek import HEK
        from hiexp.report import HekSection, ReportInputs, Stage, write_report

        c = self.config
        without = self.eval_dir / "without"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            comparison = compare_runs(without, self.eval_dir / "with", resamples=c.resamples, seed=c.seed)
            ablations = {name: compare_runs(without, self.eval_dir / name, resamples=c.resamples, seed=c.seed)
                         for name in self.arms if name not in ("with", "without")}
        self.comparison = comparison
        hek = HEK.load(self.hek_dir())
        live = hek if c.hek == "live" else (HEK.load(self.live_hek_dir)
                                            if (self.live_hek_dir / "manifest.json").exists() else None)
        state_now = _read_state(self.out) or {}
        stage_rows = []
        for record in self.stages:
            seconds = record.seconds if record.status == "done" else state_now.get("stages", {}).get(
                record.name, {}).get("seconds", "")
            stage_rows.append(Stage(record.name, record.status, float(seconds) if seconds != "" else ""))
        n_test = comparison.datasets[c.dataset].n if c.dataset in comparison.datasets else c.n_test
        settings = {
            "dataset": f"{c.dataset} (train {c.n} questions x K={c.k}; test {n_test} questions)",
            "model": getattr(self._generator, "model_id", c.model) if self._generator else c.model,
            "reflector": c.reflector or "the policy itself (self-distillation)",
            "embedder": c.embedder,
            "agent": (f"math format: one solution, no search tool, {c.agent.max_new_tokens} tokens"
                      if c.task == "math" else
                      f"max {c.agent.max_turns} searches, {c.agent.top_k} passages each, "
                      f"{c.agent.max_new_tokens} tokens per turn, {c.agent.max_tokens} per episode"),
            "sampling": f"rollouts T={c.rollout_temperature}, evaluation T={c.eval_temperature}, seed {c.seed}",
            "experience": _experience_line(hek, c),
            "HEK of the with-arm": _describe_hek(c.hek, hek),
            "HEK built in this run": (f"{_counts(live)} from " if live else "none (nothing passed the rules) from ")
                                     + f"{c.n} train questions x {c.k} rollouts "
                                     + ("(cases: exact-match successes)" if c.form == "cases" else
                                        f"(success = {c.success} >= {c.success_threshold:g})"),
        }
        if c.form == "cases":
            settings["reflector"] = "none: worked cases need no reflector"
        measured = _measured_line(hek)
        if measured:
            settings["measured on held-out questions"] = measured
        extra = []
        if c.hek != "live" and live is not None:
            extra.append(HekSection("The HEK built in this run", list(live.entries), live.version,
                                    ("Kept live from this run's rollouts" if c.form == "cases" else
                                     "Distilled live from this run's rollouts")
                                    + "; shown here, not used in the comparison."))
        self.report_paths = write_report(self.out, ReportInputs(
            title=f"experience-guided {'problem solving' if c.task == 'math' else 'search'} on {c.dataset}",
            comparison=comparison,
            entries=list(hek.entries),
            trajectories=list(iter_jsonl(self.trajectories, skip_bad=True)),
            hek_version=getattr(hek, "version", None),
            hek_title="The experience used in the with-arm" if c.hek != "live" else "The experience base",
            extra_heks=extra,
            settings=settings,
            ablations=ablations,
            stages=stage_rows,
            notes=list(state_now.get("notes", [])),
            summary=_headline(comparison),
        ))
        return str(self.report_paths["html"])


def _read_state(out: Path) -> dict[str, Any] | None:
    path = out / STATE_FILE
    if not path.exists():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except ValueError:
        return None


def _count_lines(path: Path) -> int:
    if not path.exists():
        return 0
    return sum(1 for _ in iter_jsonl(path, skip_bad=True))


_RUN_OUTPUTS = ("trajectories.jsonl", "e1.jsonl", "e1.groups.jsonl", "e1.meta.json", "hek", "eval", STATE_FILE,
                "report.md", "report.html", "trajectories.html", "chart.png")


def run_demo(
    config: DemoConfig,
    echo: Callable[[str], None] = print,
    restart: bool = False,
    generator: Any = None,
    embedder: Any = None,
    reflector: Any = None,
    retriever: Any = None,
) -> DemoResult:
    """Run (or resume) the demo pipeline; returns where the report is and the with/without comparison.

    ``generator``, ``embedder``, ``reflector`` and ``retriever`` may be passed in (tests, or a caller that already holds a
    model); otherwise they are loaded from ``config`` when first needed.
    """
    config.validate()
    out = Path(config.out)
    # new, empty or an earlier demo run (its demo.json): never somebody else's folder
    check_output_dir(out, _is_demo_dir, what="hiexp demo directory", overwrite_option=None)
    with exclusive_output(out, "hiexp demo"):
        return _run_demo_in(out, config, echo, restart, generator, embedder, reflector, retriever)


def _is_demo_dir(directory: Path) -> bool:
    """A directory a demo run wrote: its ``demo.json`` holds a demo configuration (not just any such file)."""
    state = _read_state(directory)
    return isinstance(state, dict) and isinstance(state.get("config"), dict) and "model" in state["config"]


def _discard_run(out: Path) -> None:
    """``--restart``: remove what a demo run writes and nothing else. Run directories under ``eval/`` go only
    if ``hiexp eval`` wrote them, the HEK only if it is one; a file of the user's there is kept."""
    from hiexp.eval.evaluate import is_run_dir
    from hiexp.experience.hek import is_hek_dir

    for name in _RUN_OUTPUTS:
        path = out / name
        if name == "eval" and path.is_dir():
            for child in path.iterdir():
                if child.is_dir() and is_run_dir(child):
                    shutil.rmtree(child)
            with contextlib.suppress(OSError):
                path.rmdir()  # only when nothing of the user's is left in it
        elif name == "hek" and path.is_dir():
            if is_hek_dir(path):
                shutil.rmtree(path)
        elif path.is_file():
            path.unlink()


def _run_demo_in(out: Path, config: DemoConfig, echo: Callable[[str], None], restart: bool, generator: Any,
                 embedder: Any, reflector: Any, retriever: Any) -> DemoResult:
    started = time.perf_counter()
    state = _read_state(out)
    if restart and out.exists():
        _discard_run(out)
        state = None
    if state and state.get("config") and state["config"] != config.fingerprint():
        changed = sorted(k for k in config.fingerprint() if state["config"].get(k) != config.fingerprint()[k])
        raise HiexpError(
            f"{out} holds a demo run made with other options ({', '.join(changed)}); "
            f"use another --out, or --restart to discard it"
        )
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out / STATE_FILE, {**(state or {}), "config": config.fingerprint()})
    pipe = DemoPipeline(config, echo, generator=generator, embedder=embedder, reflector=reflector,
                        retriever=retriever, finished=(state or {}).get("stages", {}))
    pipe.run()
    return DemoResult(
        out=out,
        report_md=pipe.report_paths.get("md", out / "report.md"),
        report_html=pipe.report_paths.get("html", out / "report.html"),
        comparison=pipe.comparison,
        stages=pipe.stages,
        wall_seconds=time.perf_counter() - started,
    )


def _add_note(out: Path, note: str) -> None:
    state = _read_state(out) or {}
    notes = state.setdefault("notes", [])
    if note not in notes:
        notes.append(note)
    atomic_write_json(out / STATE_FILE, state)


def _eval_complete(arm_dir: Path) -> bool:
    return (arm_dir / "metrics.json").exists() and (arm_dir / "predictions.jsonl").exists()


def _describe_metrics(metrics: Any) -> str:
    if not isinstance(metrics, dict):
        return ""
    parts = []
    for dataset, m in metrics.items():
        if isinstance(m, dict) and m.get("task") == "math":
            parts.append(f"{dataset}: pass@1 {100 * m['em']:.1f}")
        elif isinstance(m, dict) and "em" in m:
            parts.append(f"{dataset}: EM {100 * m['em']:.1f}, F1 {100 * m.get('f1', 0):.1f}")
    return "; ".join(parts)


def _counts(hek: Any) -> str:
    counts = hek.counts()
    cases = sum(1 for e in hek.entries if getattr(e, "case", None) is not None)
    if cases and all(e.is_case_only for e in hek.entries):
        return f"{cases} worked cases"
    text = ", ".join(f"{counts[level]} {level}" for level in ("E1", "E2", "E3"))
    return text + (f", {cases} cases" if cases else "")


def _experience_line(hek: Any, config: DemoConfig) -> str:
    """What the with-arm's HEK puts into an episode, for the report."""
    from hiexp.experience.retrieve import manifest_threshold

    recommended = (getattr(hek, "manifest", None) or {}).get("cases") or {}
    parts = []
    if recommended.get("per_episode"):
        where = "in place of" if recommended.get("placement", "replace") == "replace" else "beside"
        parts.append(f"{recommended['per_episode']} worked cases per episode (verified successes of the most "
                     f"similar training questions, never its own), {where} the fixed example")
    counts = hek.counts()
    if counts["E2"] or counts["E3"]:
        parts.append(f"top-{config.experience_top_k} E2/E3 at the start")
    if any(e.level == "E1" and not e.is_case_only for e in hek.entries):
        where = "matched on the problem, at the start" if config.task == "math" else "at search time"
        threshold = config.experience_threshold
        parts.append(f"E1 {where} if cos >= {manifest_threshold(hek.manifest) if threshold is None else threshold:g}")
    return "; ".join(parts) or "none"


def _measured_line(hek: Any) -> str | None:
    """The HEK's effect on held-out questions, as its manifest records it (``measured``)."""
    measured = (getattr(hek, "manifest", None) or {}).get("measured")
    if not isinstance(measured, dict) or not measured.get("summary"):
        return None
    return str(measured["summary"])


def _describe_hek(name: str, hek: Any) -> str:
    version = getattr(hek, "version", None) or "?"
    if name == "live":
        return f"built in this run ({_counts(hek)}; version {version})"
    manifest = getattr(hek, "manifest", {}) or {}
    note = manifest.get("description", "")
    from hiexp.experience.hek import is_shipped_name

    where = f"shipped with hiexp ({name})" if is_shipped_name(name) else str(name)
    return f"{where} ({_counts(hek)}; version {version}){': ' + note if note else ''}"


def _headline(comparison: Any) -> str:
    """One paragraph: the effect of experience per metric with its interval, and whether it is clear of 0."""
    for dataset, dc in comparison.datasets.items():
        parts, unclear = [], []
        for metric in (("accuracy",) if dc.task == "math" else ("em", "cem", "f1")):
            d = dc.deltas.get(metric)
            if d is None:
                continue
            name = dc.accuracy_name if metric == "accuracy" else metric.upper()
            parts.append(
                f"{name} {100 * d.a:.1f} → {100 * d.b:.1f} ({100 * d.delta:+.1f} points, "
                f"{int(round(comparison.confidence * 100))}% interval [{100 * d.low:+.1f}, {100 * d.high:+.1f}])"
            )
            if d.low <= 0 <= d.high:
                unclear.append(name)
        text = f"On {dc.n} {dataset} test questions, with the HEK: " + "; ".join(parts) + "."
        if unclear:
            text += (f" The interval of {', '.join(unclear)} includes 0: on this many questions the run cannot tell "
                     "whether experience helps; `hiexp demo --full` compares on every test question.")
        return text
    return ""
