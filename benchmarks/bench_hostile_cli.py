"""The commands added last, used as a hostile user would: each case run on the code before the hardening
(issue 33) and on this tree, in one run, counted by class.

Every case runs the real CLI in a fresh copy of small fixtures (a HEK on the hashing embedder, trajectories,
a data file and a corpus of a few passages, a tiny random Qwen2 for ``train``), with a scripted model standing
in for the LLM (``tests/fakes.py``: test infrastructure, so the commands run in seconds). A case is *good*
when the command does the right thing: refuses in one line without a traceback and changes nothing, or
succeeds with the right result; *bad* otherwise (a traceback, exit 0 on failure, data lost, a hang past the
case's time limit). Math grading cases time the grader itself on ~10 KB adversarial answers (goal: under 1 s
each, a file of 1,000 under 60 s). The retriever's abuse latencies are ``bench_server_abuse.py``'s.

Run: ``python benchmarks/bench_hostile_cli.py --before 87effbc`` (about 10 minutes on 2 cores; the before
tree is checked out with ``git worktree`` and removed afterwards). ``--only CLASS`` runs one class.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import http.server
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

DRIVER = r'''
import json, os, sys, time
tree = os.environ["HOSTILE_TREE"]
sys.path[:0] = [os.path.join(tree, "src"), tree]
os.environ.setdefault("HF_HUB_OFFLINE", "1")
from tests.fakes import ScriptedGenerator

REFLECTION = json.dumps([{"title": "Search the bridge entity before the last hop", "tags": ["bridge"],
                          "description": "Find the linking entity first, then ask about it.",
                          "thinking": "The success searched the link."}])
SUMMARY = json.dumps({"title": "Quote names", "tags": [], "description": "d", "thinking": "t"})


def reply(prompt, params):
    time.sleep(float(os.environ.get("HOSTILE_DELAY", "0")))
    role = os.environ.get("HOSTILE_ROLE", "agent")
    if role == "garbage":
        return ""
    if role == "agent":
        return "<think>ok</think>\n<answer>Paris</answer>"
    return REFLECTION if "Question:" in prompt else SUMMARY


import hiexp.llm

real_load_generator = hiexp.llm.load_generator


def load_generator(spec="default", backend="auto", **kw):
    if str(spec).startswith("http") or os.path.isdir(str(spec)):  # a server URL or the tiny model: the real thing
        return real_load_generator(spec, backend, **kw)
    return ScriptedGenerator(reply, model_id=os.environ.get("HOSTILE_MODEL", "scripted"))


hiexp.llm.load_generator = load_generator

if sys.argv[1] == "--grade":
    from hiexp.scoring.metrics import score_answer
    pairs = json.load(open(sys.argv[2]))
    worst, start = 0.0, time.perf_counter()
    for prediction, gold in pairs:
        t = time.perf_counter()
        score_answer(prediction, [gold], task="math")
        worst = max(worst, time.perf_counter() - t)
    print(json.dumps({"worst": worst, "total": time.perf_counter() - start}))
    sys.exit(0)
sys.argv = ["hiexp"] + sys.argv[1:]
from hiexp.cli import main
main()
'''


@dataclass
class Result:
    rc: int | None  # None: killed at the time limit
    out: str
    err: str
    seconds: float

    @property
    def traceback(self) -> bool:
        return "Traceback (most recent call last)" in self.err

    @property
    def refused(self) -> bool:
        """Stopped with a message and no traceback (exit 2 is hiexp's refusal; typer's usage errors too)."""
        return self.rc not in (0, None) and not self.traceback and bool(self.err.strip())


class Tree:
    """One checkout of hiexp and a way to run its CLI (through the scripted model) in a folder."""

    def __init__(self, path: Path, work: Path):
        self.path, self.work = path, work
        self.driver = work / "driver.py"
        self.driver.write_text(DRIVER)

    def start(self, args: list[str], cwd: Path, role: str = "agent", delay: float = 0.0,
              model: str = "scripted") -> subprocess.Popen:
        env = {**os.environ, "HOSTILE_TREE": str(self.path), "HOSTILE_ROLE": role, "HOSTILE_DELAY": str(delay),
               "HOSTILE_MODEL": model, "COLUMNS": "200", "PYTHONPATH": "",
               "HIEXP_CACHE": str(cwd / ".hiexp-cache")}  # replies cached by one case never answer another
        return subprocess.Popen([sys.executable, str(self.driver), *map(str, args)], cwd=cwd, env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)

    def run(self, args: list[str], cwd: Path, timeout: float = 90, **kw) -> Result:
        start = time.perf_counter()
        proc = self.start(args, cwd, **kw)
        try:
            out, err = proc.communicate(timeout=timeout)
            rc = proc.returncode
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            out, err = proc.communicate()
            rc = None
        return Result(rc, out, err, time.perf_counter() - start)


def snapshot(root: Path) -> dict[str, str]:
    if not root.exists():
        return {}
    files = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file())
    return {str(p.relative_to(root.parent)): hashlib.sha256(p.read_bytes()).hexdigest() for p in files}


def lines(path: Path) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


# ---------------------------------------------------------------------------------------------- fixtures

def trajectory(question_id: str, sample: int, success: bool, golden: str = "Paris") -> dict:
    answer = golden if success else "Lyon"
    query = f"{question_id} {'exact name' if success else 'vague'}"
    score = 1.0 if success else 0.0
    return {
        "id": f"{question_id}#{sample}", "question_id": question_id, "sample": sample, "format": "search_r1",
        "model": "test-model", "question": f"What is the answer to {question_id}?", "golden_answers": [golden],
        "turns": [{"role": "prompt", "text": f"Question: {question_id}\n"},
                  {"role": "policy", "text": f"<think>step</think><search>{query}</search>"},
                  {"role": "tool", "text": "<information>Doc 1(Title: Passage 1) long text\n"
                                           "Doc 2(Title: Other 1) short text</information>"},
                  {"role": "policy", "text": f"<answer>{answer}</answer>"}],
        "queries": [query], "passage_ids": [["p1"]], "answer": answer,
        "rewards": {"em": score, "cem": score, "f1": score}, "num_searches": 1, "num_tokens": 50,
        "finish": "answer", "seed": sample,
    }


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def make_fixtures(tree: Tree, base: Path) -> None:
    """The inputs every case starts from, made by the tree's own commands."""
    base.mkdir(parents=True)
    e1 = [{"id": f"e{i}", "level": "E1", "title": f"Search the full name {i}", "tags": ["query"],
           "description": "Quote the whole name.", "thinking": "the vague query failed",
           "sources": {"question_id": f"q{i}"}, "model": "m"} for i in range(3)]
    write_jsonl(base / "e1.jsonl", e1)
    write_jsonl(base / "e1-one.jsonl", e1[:1])
    write_jsonl(base / "traj.jsonl", [trajectory(f"t{i}", s, s == 0) for i in range(3) for s in range(2)])
    write_jsonl(base / "traj2.jsonl", [trajectory(f"u{i}", s, s == 0) for i in range(2) for s in range(2)])
    (base / "empty.jsonl").write_text("")
    write_jsonl(base / "data.jsonl", [{"id": f"d{i}", "question": f"What is the capital number {i}?",
                                       "golden_answers": ["Paris" if i % 2 else "Rome"]} for i in range(4)])
    write_jsonl(base / "train.jsonl", [{"id": f"t{i}", "question": f"What is the capital number {i}?",
                                        "golden_answers": ["Paris"], "split": "train"} for i in range(4)])
    write_jsonl(base / "corpus.jsonl", [{"id": f"p{i}", "title": f"Place {i}",
                                         "contents": f"Paris is the capital of France. Fact {i}."} for i in range(8)])
    (base / "notes.txt").write_text("my notes\n")
    (base / "mine").mkdir()
    (base / "mine" / "results.csv").write_text("a,b\n1,2\n")
    steps = [
        ["build", "e1.jsonl", "--out", "hek", "--embedder", "hashing-64", "--clusters", "1,1"],
        ["build", "e1-one.jsonl", "--out", "hek1", "--embedder", "hashing-64", "--clusters", "1,1"],
        ["eval", "--data", "data.jsonl", "--split", "all", "--index", "corpus.jsonl", "--hek", "hek",
         "--threshold", "-1", "--out", "run"],
        ["eval", "--data", "data.jsonl", "--split", "all", "--index", "corpus.jsonl", "--hek", "hek1",
         "--threshold", "-1", "--out", "run1"],
        ["usefulness", "hek", "run-trajectories.jsonl"],
        ["update", "hek", "traj.jsonl", "--out", "hek-v1"],
    ]
    for args in steps:
        if args[0] == "usefulness":  # the runs' trajectory files, under a name that does not depend on the tree
            for run in ("run", "run1"):
                shutil.copy(next((base / run / "trajectories").glob("*.jsonl")), base / f"{run}-trajectories.jsonl")
        result = tree.run(args, base, role="agent" if args[0] == "eval" else "reflector")
        if result.rc != 0:
            raise SystemExit(f"fixture step {' '.join(args)} failed in {tree.path}:\n{result.err[-2000:]}")


def make_tiny_model(path: Path) -> None:
    sys.path.insert(0, str(ROOT))
    from tests.train.conftest import build_tiny_model, build_tiny_tokenizer

    tokenizer = build_tiny_tokenizer()
    build_tiny_model(tokenizer).save_pretrained(path)
    tokenizer.save_pretrained(path)


# ---------------------------------------------------------------------------------------------- cases

CASES: list[tuple[str, str, Callable[[Tree, Path], tuple[bool, str]]]] = []


def case(klass: str, name: str):
    def register(fn):
        CASES.append((klass, name, fn))
        return fn
    return register


def unchanged_refusal(args: list[str], watched: list[str], role: str = "reflector"):
    """The command must refuse and leave every watched path as it was."""
    def check(tree: Tree, d: Path) -> tuple[bool, str]:
        before = {w: snapshot(d / w) for w in watched}
        r = tree.run(args, d, role=role)
        changed = [w for w in watched if snapshot(d / w) != before[w]]
        return r.refused and not changed, f"rc={r.rc} changed={changed} tb={r.traceback}"
    return check


# 1. Data loss: an output pointed at something the command did not create
OUT_TARGETS = {"a user's file": "notes.txt", "a user's folder": "mine", "the HEK's entries.jsonl": "hek/entries.jsonl",
               "the HEK's manifest.json": "hek/manifest.json", "the input HEK": "hek", "a folder in the input HEK": "hek/v2"}
for label, target in OUT_TARGETS.items():
    case("data loss", f"usefulness --out {label}")(
        unchanged_refusal(["usefulness", "hek", "run-trajectories.jsonl", "--out", target], ["hek", "notes.txt", "mine"]))
    if target not in ("hek", "hek/v2"):  # build replaces an earlier HEK whole, by design
        case("data loss", f"build --out {label}")(
            unchanged_refusal(["build", "e1.jsonl", "--out", target, "--embedder", "hashing-64", "--clusters", "1,1"],
                              ["hek", "notes.txt", "mine"]))
    case("data loss", f"update --out {label}")(
        unchanged_refusal(["update", "hek", "traj2.jsonl", "--out", target], ["hek", "notes.txt", "mine"]))
    case("data loss", f"browse --static {label}")(
        unchanged_refusal(["browse", "hek", "--static", target, "--no-open"], ["hek", "notes.txt", "mine"]))
    case("data loss", f"eval --out {label}")(
        unchanged_refusal(["eval", "--data", "data.jsonl", "--split", "all", "--index", "corpus.jsonl",
                           "--out", target], ["hek", "notes.txt", "mine"], role="agent"))
    case("data loss", f"distill --out {label}")(
        unchanged_refusal(["distill", "traj.jsonl", "--out", target], ["hek", "notes.txt", "mine"]))
case("data loss", "update CHILD --out its PARENT")(
    unchanged_refusal(["update", "hek-v1", "traj2.jsonl", "--out", "hek"], ["hek", "hek-v1"]))


@case("data loss", "browse --static onto a folder holding a user's index.html")
def _(tree, d):
    (d / "site").mkdir()
    (d / "site" / "index.html").write_text("<p>my site</p>")
    return unchanged_refusal(["browse", "hek", "--static", "site", "--no-open"], ["site"])(tree, d)


@case("data loss", "browse --static re-written with another HEK leaves no page of the first")
def _(tree, d):
    a = tree.run(["browse", "hek", "--static", "site", "--no-open"], d)
    b = tree.run(["browse", "hek1", "--static", "site", "--no-open"], d)
    c = tree.run(["browse", "hek1", "--static", "fresh", "--no-open"], d)
    rel = lambda root: {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()}  # noqa: E731
    same = (d / "site").exists() and rel(d / "site") == rel(d / "fresh")
    return a.rc == b.rc == c.rc == 0 and same, f"rc={a.rc},{b.rc},{c.rc} same_pages={same}"


# 2. Two writers at once and kill -9
EVAL = ["eval", "--data", "data.jsonl", "--split", "all", "--index", "corpus.jsonl", "--out", "out", "--batch-size", "1"]
ROLLOUT = ["rollout", "--data", "data.jsonl", "--split", "all", "--index", "corpus.jsonl", "--out", "out.jsonl",
           "--k", "2", "--batch-size", "1"]


def two_at_once(args, role, check, delay=0.3):
    def run(tree, d):
        p1 = tree.start(args, d, role=role, delay=delay)
        time.sleep(0.5)
        p2 = tree.start(args, d, role=role, delay=delay)
        errs = []
        for p in (p1, p2):
            try:
                _, err = p.communicate(timeout=120)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                _, err = p.communicate()
            errs.append(err)
        ok, note = check(d)
        tracebacks = sum("Traceback (most recent" in e for e in errs)
        return ok and not tracebacks, f"rc={p1.returncode},{p2.returncode} {note} tracebacks={tracebacks}"
    return run


def one_record_per_id(path_glob):
    def check(d):
        ids = [r.get("id") for p in sorted(d.glob(path_glob)) for r in lines(p)]
        return len(ids) == len(set(ids)) and len(ids) > 0, f"records={len(ids)} unique={len(set(ids))}"
    return check


case("two writers", "two eval into one --out")(two_at_once(EVAL, "agent", one_record_per_id("out/predictions.jsonl")))
case("two writers", "two rollout into one --out")(two_at_once(ROLLOUT, "agent", one_record_per_id("out.jsonl")))


def e1_count(hek: Path) -> int:
    return sum(1 for r in lines(hek / "entries.jsonl") if r.get("level") == "E1")


@case("two writers", "two update into one --out")
def _(tree, d):
    single = tree.run(["update", "hek", "traj2.jsonl", "--out", "single"], d, role="reflector")
    expected = e1_count(d / "single")
    check = lambda d: (e1_count(d / "out") == expected, f"E1={e1_count(d / 'out')} expected={expected}")  # noqa
    ok, note = two_at_once(["update", "hek", "traj2.jsonl", "--out", "out"], "reflector", check, delay=0.5)(tree, d)
    return ok and single.rc == 0, note


@case("two writers", "two usefulness into one --out")
def _(tree, d):
    def check(d):
        try:
            table = json.loads((d / "u.json").read_text())
        except Exception as exc:  # noqa: BLE001
            return False, f"unreadable table: {exc!r}"
        return bool(table), "table readable"
    return two_at_once(["usefulness", "hek", "run-trajectories.jsonl", "--out", "u.json"], "agent", check, delay=0)(tree, d)


@case("two writers", "two browse --static into one folder")
def _(tree, d):
    fresh = tree.run(["browse", "hek", "--static", "fresh", "--no-open"], d)
    rel = lambda root: {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()}  # noqa: E731
    check = lambda d: (rel(d / "site") == rel(d / "fresh"), "pages as a fresh write")  # noqa: E731
    ok, note = two_at_once(["browse", "hek", "--static", "site", "--no-open"], "agent", check, delay=0)(tree, d)
    return ok and fresh.rc == 0, note


def killed_then_resumed(args, role, check, after=2.5):
    def run(tree, d):
        p = tree.start(args, d, role=role, delay=0.4)
        time.sleep(after)
        os.killpg(p.pid, signal.SIGKILL)
        p.communicate()
        r = tree.run(args, d, role=role)
        ok, note = check(d)
        return r.rc == 0 and ok, f"rerun rc={r.rc} {note}"
    return run


def all_ids_once(path_glob, expected):
    def check(d):
        ids = [r.get("id") for p in sorted(d.glob(path_glob)) for r in lines(p)]
        return len(ids) == len(set(ids)) == expected, f"records={len(ids)} unique={len(set(ids))} expected={expected}"
    return check


case("two writers", "eval killed with -9, then resumed")(
    killed_then_resumed(EVAL, "agent", all_ids_once("out/predictions.jsonl", 4)))
case("two writers", "rollout killed with -9, then resumed")(
    killed_then_resumed(ROLLOUT, "agent", all_ids_once("out.jsonl", 8)))


@case("two writers", "update killed with -9, then resumed")
def _(tree, d):
    before = snapshot(d / "hek")
    check = lambda d: (snapshot(d / "hek") == before and e1_count(d / "out") > 0, "parent kept, new HEK readable")  # noqa
    return killed_then_resumed(["update", "hek", "traj2.jsonl", "--out", "out"], "reflector", check, after=1.5)(tree, d)


# 3. Math grading on adversarial answers (~10 KB each)
def adversarial_answers() -> dict[str, tuple[str, str]]:
    rng = random.Random(0)
    tokens = ["\\frac{", "}", "{", "\\sqrt{", "^", "_", "\\text{", "(", ")", "m", "!", "\\boxed{", "2", "x", "+", "\\left(",
              "\\right)", "\\pi", "e", "10^{", "\\cdot", ",", ".", "\\%", "$", "\\\\"]
    return {
        "1, forty m, ! (prediction)": ("1" + "m" * 40 + "!", "1"),
        "1, forty m, ! (gold)": ("1", "1" + "m" * 40 + "!"),
        "1, 5,000 m, !": ("1" + "m" * 5000 + "!", "1"),
        "nested \\text{ (10 KB)": ("\\text{" * 1700, "5"),
        "nested \\text{ (140 KB)": ("\\text{" * 23000, "5"),
        "unclosed \\boxed{ (10 KB)": ("\\boxed{" * 1400, "5"),
        "power tower of 50": ("^".join(["2"] * 50), "4"),
        "50 power towers": (" + ".join("^".join(["9"] * 6) for _ in range(50)), "4"),
        "10,000 digits": ("9" * 10000, "1"),
        "a huge factorial": ("100000000!", "1"),
        "10^{10^{10^{10}}}": ("10^{10^{10^{10}}}", "1"),
        "10,000 open parentheses": ("(" * 10000, "1"),
        "nested \\frac (10 KB)": ("\\frac{1}{" * 1100 + "}" * 1100, "1"),
        "random LaTeX tokens (10 KB)": ("".join(rng.choice(tokens) for _ in range(3000))[:10000], "\\frac{1}{2}"),
        "units after a number, 2,000 times": ("3 " + "meters " * 2000, "3"),
    }


def grade_case(pairs: list[tuple[str, str]], limit: float, per_item: float | None, timeout: float):
    def run(tree, d):
        (d / "pairs.json").write_text(json.dumps(pairs))
        r = tree.run(["--grade", "pairs.json"], d, timeout=timeout)
        if r.rc != 0:
            return False, ("killed after %.0f s" % r.seconds) if r.rc is None else f"rc={r.rc} tb={r.traceback}"
        stats = json.loads(r.out.strip().splitlines()[-1])
        ok = stats["total"] < limit and (per_item is None or stats["worst"] < per_item)
        return ok, f"worst {stats['worst']:.3f} s, total {stats['total']:.2f} s"
    return run


for label, pair in adversarial_answers().items():
    case("math grading", label)(grade_case([pair], limit=1.0, per_item=1.0, timeout=20))
case("math grading", "a file of 1,000 adversarial answers")(
    grade_case([p for _ in range(67) for p in adversarial_answers().values()][:1000], limit=60, per_item=None,
               timeout=90))


# 4. Success reported when nothing happened
case("nothing happened", "update on empty trajectories")(
    unchanged_refusal(["update", "hek", "empty.jsonl", "--out", "new"], ["hek", "new"]))
case("nothing happened", "update when every reflection fails")(
    unchanged_refusal(["update", "hek", "traj2.jsonl", "--out", "new"], ["hek", "new"], role="garbage"))
case("nothing happened", "distill when every reflection fails")(
    unchanged_refusal(["distill", "traj2.jsonl", "--out", "e.jsonl"], ["hek"], role="garbage"))


@case("nothing happened", "update again with another --reflector")
def _(tree, d):
    a = tree.run(["update", "hek", "traj2.jsonl", "--reflector", "model-a"], d, role="reflector", model="model-a")
    b = tree.run(["update", "hek", "traj2.jsonl", "--reflector", "model-b"], d, role="reflector", model="model-b")
    named = [json.loads((p / "manifest.json").read_text()) for p in sorted(d.glob("hek-*")) if p.name != "hek-v1"]
    text = json.dumps(named)
    ok = a.rc == 0 and (b.refused or (b.rc == 0 and "model-b" in text))
    return ok, f"rc={a.rc},{b.rc} model-b named={'model-b' in text}"


for label, args in {"an empty file": ["empty.jsonl"], "a data file": ["data.jsonl"],
                    "--reward-key bogus": ["run-trajectories.jsonl", "--reward-key", "bogus"],
                    "another HEK's runs": ["run1-trajectories.jsonl"]}.items():
    case("nothing happened", f"usefulness on {label}")(
        unchanged_refusal(["usefulness", "hek", *args], ["hek"]))


@case("nothing happened", "usefulness given the same file twice")
def _(tree, d):
    once = tree.run(["usefulness", "hek", "run-trajectories.jsonl", "--out", "once.json"], d)
    twice = tree.run(["usefulness", "hek", "run-trajectories.jsonl", "run-trajectories.jsonl", "--out", "twice.json"], d)
    if once.rc != 0:
        return False, f"rc={once.rc}"
    same = twice.refused or (twice.rc == 0 and json.loads((d / "once.json").read_text()).get("entries")
                             == json.loads((d / "twice.json").read_text()).get("entries"))
    return same, f"rc={once.rc},{twice.rc} counted once={same}"


# 5. Settings not checked
for args in (["--embedder", "hashing-384"], ["--dedup-threshold", "5"], ["--dedup-threshold", "nan"],
             ["--recluster-fraction", "-1"], ["--recluster-fraction", "nan"], ["--threshold", "nan"],
             ["--threshold", "inf"], ["--min-episodes", "0"]):
    case("settings", f"update {' '.join(args)}")(
        unchanged_refusal(["update", "hek", "traj2.jsonl", "--out", "new", *args], ["hek", "new"]))
for args in (["--threshold", "nan"], ["--temperature", "nan"], ["--temperature", "-1"], ["--top-k", "-1"],
             ["--samples", "0"], ["--max-turns", "-2"]):
    case("settings", f"eval {' '.join(args)}")(
        unchanged_refusal(["eval", "--data", "data.jsonl", "--split", "all", "--index", "corpus.jsonl", "--out",
                           "new", *args], ["new"], role="agent"))
case("settings", "browse --threshold nan")(
    unchanged_refusal(["browse", "hek", "--static", "site", "--no-open", "--threshold", "nan"], ["site"]))

TRAIN = ["train", "--model", "tiny", "--steps", "1", "--n", "2", "--output-dir", "trainrun", "--set", "batch_size=1",
         "--set", "group_size=2", "--set", "agent.max_turns=1", "--set", "index=corpus.jsonl", "--set",
         "dataset=train.jsonl", "--set", "split=train"]


@case("settings", "train with valid settings runs its step (the control of the train cases)")
def _(tree, d):
    r = tree.run(TRAIN, d, timeout=300)
    return r.rc == 0, f"rc={r.rc} {(r.err.strip().splitlines() or [''])[-1][:80]}"


def train_refusal(named: str, *extra: str):
    """Refused in one line that names the setting, before the model loads."""
    def check(tree, d):
        r = tree.run([*TRAIN, *extra], d, timeout=300)
        loaded = (d / "trainrun" / "metrics.jsonl").exists() or "Loading weights" in r.err
        ok = r.refused and not loaded and named in r.err
        return ok, f"rc={r.rc} tb={r.traceback} named={named in r.err} model loaded={loaded}"
    return check


for named, extra in (("learning_rate", ["--set", "learning_rate=.inf"]), ("beta", ["--set", "beta=.inf"]),
                     ("learning_rate", ["--set", "learning_rate=nan"]), ("lr_scheduler", ["--set", "lr_scheduler=bogus"]),
                     ("bogus_proj", ["--set", "lora_targets=[bogus_proj]"]), ("seed", ["--seed", "-1"]),
                     ("seed", ["--seed", str(2 ** 70)]), ("vllm", ["--set", "vllm_mode=server"]),
                     ("wandb", ["--report-to", "wandb"]), ("notes.txt", ["--output-dir", "notes.txt"]),
                     ("embeddings.npy", ["--config", "hek/embeddings.npy"]), ("hek", ["--config", "hek"])):
    case("settings", f"train {' '.join(extra)}")(train_refusal(named, *extra))


# 6. Artefacts that load but hold values of the wrong kind
def edit_json(path: Path, edit) -> None:
    data = json.loads(path.read_text())
    edit(data)
    path.write_text(json.dumps(data))


def edit_jsonl(path: Path, edit) -> None:
    rows = lines(path)
    for r in rows:
        edit(r)
    write_jsonl(path, rows)
    manifest = path.parent / "manifest.json"
    if manifest.exists() and path.name in (json.loads(manifest.read_text()).get("files") or {}):
        # reseal: the HEK's checksum would otherwise refuse the edit before the field is ever read
        edit_json(manifest, lambda m: m["files"].__setitem__(path.name, hashlib.sha256(path.read_bytes()).hexdigest()))


def usefulness_string_effect(d):
    def edit(table):
        for row in (table.get("entries") or {}).values() if isinstance(table.get("entries"), dict) else []:
            row["effect"] = "large"
        if isinstance(table.get("entries"), list):
            for row in table["entries"]:
                row["effect"] = "large"
    edit_json(d / "hek" / "usefulness.json", edit)


BREAKS = {
    "a string effect in usefulness.json": usefulness_string_effect,
    "a string parent in the manifest": lambda d: edit_json(d / "hek" / "manifest.json",
                                                            lambda m: m.__setitem__("parent", "v0")),
    "a string sources in the manifest": lambda d: edit_json(d / "hek" / "manifest.json",
                                                             lambda m: m.__setitem__("sources", "train.jsonl")),
    "integer entry sources": lambda d: edit_jsonl(d / "hek" / "entries.jsonl",
                                                  lambda r: r.__setitem__("sources", [1, 2])),
}
COMMANDS = {"show": ["show", "hek"], "browse --static": ["browse", "hek", "--static", "site", "--no-open"],
            "eval --usefulness filter": ["eval", "--data", "data.jsonl", "--split", "all", "--index", "corpus.jsonl",
                                         "--hek", "hek", "--usefulness", "filter", "--out", "new"],
            "update": ["update", "hek", "traj2.jsonl", "--out", "new"]}


def no_traceback(args, breaker, role="reflector"):
    def check(tree, d):
        breaker(d)
        r = tree.run(args, d, role=role)
        return (r.rc == 0 or r.refused) and not r.traceback, f"rc={r.rc} tb={r.traceback}"
    return check


for break_label, breaker in BREAKS.items():
    for command_label, args in COMMANDS.items():
        case("artefacts", f"{command_label} with {break_label}")(
            no_traceback(args, breaker, role="agent" if args[0] == "eval" else "reflector"))


def runs_with(field, value):
    def breaker(d):
        edit_jsonl(d / "run-trajectories.jsonl", lambda r: r.__setitem__(field, value))
    return breaker


for label, breaker in {"string rewards": runs_with("rewards", "high"), "string turns": runs_with("turns", "many")}.items():
    case("artefacts", f"usefulness on runs with {label}")(
        no_traceback(["usefulness", "hek", "run-trajectories.jsonl", "--out", "u.json"], breaker))
    case("artefacts", f"update on trajectories with {label}")(
        no_traceback(["update", "hek", "run-trajectories.jsonl", "--out", "new"], breaker))


@case("artefacts", "search an index whose passage lines were shuffled")
def _(tree, d):
    built = tree.run(["index", "corpus.jsonl", "--out", "idx"], d)
    passages = next((p for p in (d / "idx").rglob("*") if p.is_file() and ".jsonl" in p.name), None) \
        if (d / "idx").is_dir() else None
    if built.rc != 0 or passages is None:
        return False, f"no index to damage (rc={built.rc}) {built.err[-200:]}"
    rows = passages.read_text().splitlines(keepends=True)  # same lines, same size, another order
    while len(rows) > 1 and rows == passages.read_text().splitlines(keepends=True):
        random.Random(1).shuffle(rows)
    passages.write_text("".join(rows))
    r = tree.run(["search", "idx", "capital"], d)
    return r.refused, f"rc={r.rc} tb={r.traceback}"


# 7. Browser ids and escaping
def browse_hek_of(e1_rows: list[dict]):
    """Build a HEK from these E1 rows and write its static pages; the pages' text by file name."""
    def run(tree, d):
        write_jsonl(d / "e1x.jsonl", e1_rows)
        built = tree.run(["build", "e1x.jsonl", "--out", "hekx", "--embedder", "hashing-64", "--clusters", "1,1"], d,
                         role="reflector")
        r = tree.run(["browse", "hekx", "--static", "site", "--no-open"], d)
        pages = {str(p.relative_to(d / "site")): p.read_text() for p in (d / "site").rglob("*.html")} \
            if (d / "site").exists() else {}
        return built.rc, r, pages
    return run


def e1_row(id_: str, title: str) -> dict:
    return {"id": id_, "level": "E1", "title": title, "tags": ["query"], "description": "Quote the whole name.",
            "thinking": "t", "sources": {"question_id": f"q-{id_}"}, "model": "m"}


@case("browser", "ids E1-x/y and E1-x_y get pages of their own")
def _(tree, d):
    built, r, pages = browse_hek_of([e1_row("E1-x/y", "Slash entry"), e1_row("E1-x_y", "Underscore entry"),
                                     e1_row("E1-z", "Third entry")])(tree, d)
    e1_pages = sorted(name for name in pages if name.startswith("entry/E1"))
    return r.rc == 0 and len(e1_pages) == 3, f"rc={built},{r.rc} E1 pages={e1_pages}"


@case("browser", "a title holding <!--<script> keeps the saved search page working")
def _(tree, d):
    built, r, pages = browse_hek_of([e1_row("e0", "Quote names <!--<script>"), e1_row("e1", "Search twice"),
                                     e1_row("e2", "Read the passage")])(tree, d)
    raw = [name for name, text in pages.items() if "<!--<script>" in text]  # escaped everywhere, or a script breaks
    return r.rc == 0 and bool(pages) and not raw, f"rc={built},{r.rc} unescaped in={raw}"


# 8. Messages
@contextlib.contextmanager
def failing_model_server():
    """An OpenAI-compatible server that lists a model and answers every completion with 500."""
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            body = json.dumps({"object": "list", "data": [{"id": "broken", "object": "model"}]}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_POST(self):  # noqa: N802
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            self.send_response(500)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    finally:
        server.shutdown()


@case("messages", "eval where every episode fails names the failures")
def _(tree, d):
    with failing_model_server() as url:
        r = tree.run(["eval", "--data", "data.jsonl", "--split", "all", "--index", "corpus.jsonl", "--out", "new",
                      "--model", url], d, timeout=180)
    return r.refused and "fail" in r.err and "no such file" not in r.err, r.err.strip().splitlines()[-1][:120] if r.err.strip() else "no message"


@case("messages", "train --from-checkpoint MISSING says --from-checkpoint")
def _(tree, d):
    r = tree.run([*TRAIN, "--from-checkpoint", "nowhere"], d, timeout=300)
    return r.refused and "--from-checkpoint" in r.err, (r.err.strip().splitlines() or ["no message"])[-1][:120]


@case("messages", "eval --usefulness bogus names the modes")
def _(tree, d):
    r = tree.run(["eval", "--data", "data.jsonl", "--split", "all", "--index", "corpus.jsonl", "--hek", "hek",
                  "--usefulness", "bogus", "--out", "new"], d)
    return r.refused and "filter" in r.err, (r.err.strip().splitlines() or ["no message"])[-1][:120]


@case("messages", "eval --data FILE without --split")
def _(tree, d):
    r = tree.run(["eval", "--data", "data.jsonl", "--index", "corpus.jsonl", "--out", "new"], d)
    return r.rc == 0 or (r.refused and "splits: none" not in r.err), (r.err.strip().splitlines() or ["ok"])[-1][:120]


# ---------------------------------------------------------------------------------------------- run

def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--before", default="87effbc", help="commit before the hardening")
    parser.add_argument("--only", help="run one class")
    parser.add_argument("--json", type=Path, help="also write every case's outcome here")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="hostile-"))
    before_path = work / "before-tree"
    subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(before_path), args.before],
                   check=True, capture_output=True)
    try:
        make_tiny_model(work / "tiny")
        (work / "b").mkdir()
        (work / "a").mkdir()
        trees = {"before": Tree(before_path, work / "b"), "after": Tree(ROOT, work / "a")}
        for tree in trees.values():
            make_fixtures(tree, tree.work / "base")
            shutil.copytree(work / "tiny", tree.work / "base" / "tiny")
        outcomes: dict[str, dict[str, tuple[bool, str]]] = defaultdict(dict)
        cases = [c for c in CASES if not args.only or c[0] == args.only]
        for number, (klass, name, fn) in enumerate(cases):
            for label, tree in trees.items():
                d = tree.work / f"case{number}"
                shutil.copytree(tree.work / "base", d, symlinks=True)
                try:
                    outcomes[label][f"{klass}: {name}"] = fn(tree, d)
                except Exception as exc:  # noqa: BLE001 - a harness error counts against the case, visibly
                    outcomes[label][f"{klass}: {name}"] = (False, f"harness: {exc!r}")
                shutil.rmtree(d, ignore_errors=True)
            print(f"{klass:17} {name[:60]:60} before {'good' if outcomes['before'][f'{klass}: {name}'][0] else 'BAD ':4}"
                  f"  after {'good' if outcomes['after'][f'{klass}: {name}'][0] else 'BAD ':4}"
                  f"  ({outcomes['after'][f'{klass}: {name}'][1][:70]})", flush=True)
        if args.json:
            args.json.write_text(json.dumps(outcomes, indent=1))
        print("\n| class | cases | good before | bad before | good after | bad after |\n| --- | ---: | ---: | ---: | ---: | ---: |")
        by_class = defaultdict(lambda: [0, 0, 0])
        for key in outcomes["after"]:
            klass = key.split(":")[0]
            by_class[klass][0] += 1
            by_class[klass][1] += outcomes["before"][key][0]
            by_class[klass][2] += outcomes["after"][key][0]
        for klass, (n, good_before, good_after) in by_class.items():
            print(f"| {klass} | {n} | {good_before} | {n - good_before} | {good_after} | {n - good_after} |")
        total = sum(v[0] for v in by_class.values())
        bad_after = sum(v[0] - v[2] for v in by_class.values())
        bad_before = sum(v[0] - v[1] for v in by_class.values())
        print(f"\nbad_before: {bad_before} of {total}")
        print(f"bad_after: {bad_after} of {total}")
    finally:
        subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(before_path)], capture_output=True)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
