"""Output paths are safe (issue 12, class 1): a command replaces only what it wrote itself.

Every case points a command's output at something it did not create and checks the refusal (exit 2 through
the CLI, one line) and that nothing on disk changed; ``--overwrite`` is the one way past it.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from hiexp.cli import app
from hiexp.errors import HiexpError
from hiexp.experience.hek import HEK
from tests.experience.experience_fixtures import make_trajectory, write_trajectories


def snapshot(root: Path) -> dict[str, str]:
    """Every file under ``root`` (or ``root`` itself) with its content hash."""
    files = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file())
    return {str(p.relative_to(root.parent)): hashlib.sha256(p.read_bytes()).hexdigest() for p in files}


@pytest.fixture
def e1_file(tmp_path: Path) -> Path:
    path = tmp_path / "e1.jsonl"
    rows = [{"id": f"e{i}", "level": "E1", "title": f"Search the full name {i}", "tags": ["query"],
             "description": "Quote the whole name.", "thinking": "the vague query failed",
             "sources": {"question_id": f"q{i}"}, "model": "m"} for i in range(3)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    """Somebody's run directory: the kind of folder a mistyped --out points at."""
    run = tmp_path / "run"
    (run / "eval").mkdir(parents=True)
    (run / "e1.jsonl").write_text('{"id": "keep me"}\n')
    (run / "trajectories.jsonl").write_text('{"id": "q#0"}\n')
    (run / "eval" / "metrics.json").write_text("{}\n")
    return run


def build(e1: Path, out: Path, *extra: str):
    return CliRunner().invoke(app, ["build", str(e1), "--out", str(out), "--embedder", "hashing-64",
                                    "--clusters", "1,1", *extra])


@pytest.fixture(autouse=True)
def no_summarizer_model(monkeypatch):
    """``build`` never needs a real summariser here: every cluster is summarised by a scripted reply."""
    from tests.fakes import ScriptedGenerator

    def fake(spec="default", backend="auto", **options):
        return ScriptedGenerator(lambda prompt, params: '{"title": "Quote names", "tags": [], "description": "d", '
                                                        '"thinking": "t"}', model_id="scripted")

    import hiexp.llm

    monkeypatch.setattr(hiexp.llm, "load_generator", fake)


def test_build_refuses_a_directory_it_did_not_write_and_changes_nothing(e1_file, run_dir):
    before = snapshot(run_dir)
    result = build(e1_file, run_dir)
    assert isinstance(result.exception, HiexpError)
    message = str(result.exception)
    assert "is not a HEK directory" in message and "--overwrite" in message and "\n" not in message
    assert snapshot(run_dir) == before


def test_build_refuses_a_file(e1_file, tmp_path):
    target = tmp_path / "notes.txt"
    target.write_text("mine\n")
    result = build(e1_file, target)
    assert isinstance(result.exception, HiexpError) and "is a file" in str(result.exception)
    assert target.read_text() == "mine\n"


def test_build_replaces_an_earlier_hek_and_overwrite_replaces_anything(e1_file, tmp_path, run_dir):
    hek = tmp_path / "hek"
    assert build(e1_file, hek).exit_code == 0
    first = json.loads((hek / "manifest.json").read_text())["hek_version"]
    assert build(e1_file, hek).exit_code == 0  # its own kind: replaced whole
    assert json.loads((hek / "manifest.json").read_text())["hek_version"] == first
    assert build(e1_file, run_dir, "--overwrite").exit_code == 0
    assert sorted(p.name for p in run_dir.iterdir()) == ["embeddings.npy", "entries.jsonl", "manifest.json"]


def test_an_empty_directory_is_fine(e1_file, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    assert build(e1_file, empty).exit_code == 0


def test_index_refuses_a_folder_that_is_not_an_index(run_dir, tmp_path):
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text(json.dumps({"id": "p1", "title": "Paris", "text": "Paris is the capital of France."}) + "\n")
    before = snapshot(run_dir)
    result = CliRunner().invoke(app, ["index", str(corpus), "--out", str(run_dir)])
    assert isinstance(result.exception, HiexpError) and "is not a hiexp index" in str(result.exception)
    assert snapshot(run_dir) == before
    again = CliRunner().invoke(app, ["index", str(corpus), "--out", str(tmp_path / "idx")])
    assert again.exit_code == 0
    assert CliRunner().invoke(app, ["index", str(corpus), "--out", str(tmp_path / "idx")]).exit_code == 0


@pytest.mark.parametrize("content", [
    '{"id": "u1", "name": "a user record"}\n{"id": "u2", "name": "torn',  # ids, and a last line without newline
    "plain text, not JSON\n",
    "[1, 2, 3]\n",
])
def test_rollouts_never_append_to_or_repair_a_file_they_did_not_write(tmp_path, content):
    from hiexp.agent.rollout import load_done_ids

    target = tmp_path / "users.jsonl"
    target.write_text(content)
    with pytest.raises(HiexpError, match="not a hiexp trajectory file") as info:
        load_done_ids(target)
    assert "\n" not in str(info.value)
    assert target.read_text() == content  # the torn-looking last line was not cut


def test_rollouts_resume_their_own_file_and_repair_its_torn_tail(tmp_path):
    from hiexp.agent.rollout import load_done_ids

    path = write_trajectories(tmp_path / "t.jsonl", [make_trajectory("q1", 0, True), make_trajectory("q1", 1, False)])
    with path.open("a") as handle:
        handle.write('{"id": "q2#0", "question_id": "q2"')  # a write cut short
    with pytest.warns(UserWarning, match="torn"):
        assert load_done_ids(path) == {"q1#0", "q1#1"}


def test_eval_writes_only_into_a_new_empty_or_earlier_run_directory(tmp_path, run_dir):
    from hiexp.data import load_dataset
    from hiexp.eval.evaluate import run_eval
    from tests.fakes import ScriptedGenerator

    examples = {"hotpotqa": load_dataset("hotpotqa", split="test", n=2, seed=0)}
    model = ScriptedGenerator(lambda prompt, params: "Paris</answer>", model_id="scripted")
    before = snapshot(run_dir)
    with pytest.raises(HiexpError, match="not a hiexp eval run directory") as info:
        run_eval(examples, model, None, "closed-book", run_dir, progress=False)
    assert "--overwrite" not in str(info.value)  # eval has no such option: the message does not invent one
    assert snapshot(run_dir) == before
    a_file = tmp_path / "notes.txt"
    a_file.write_text("mine\n")
    with pytest.raises(HiexpError, match="is a file"):
        run_eval(examples, model, None, "closed-book", a_file, progress=False)
    assert a_file.read_text() == "mine\n"
    run_eval(examples, model, None, "closed-book", tmp_path / "run-a", progress=False)
    run_eval(examples, model, None, "closed-book", tmp_path / "run-a", progress=False)  # resumes its own


def test_demo_refuses_a_folder_that_is_not_a_demo_run(tmp_path, run_dir):
    from hiexp.demo import DemoConfig, run_demo

    before = snapshot(run_dir)
    with pytest.raises(HiexpError, match="not a hiexp demo directory"):
        run_demo(DemoConfig(out=str(run_dir)), echo=lambda text: None)
    assert snapshot(run_dir) == before
    a_file = tmp_path / "notes.txt"
    a_file.write_text("mine\n")
    with pytest.raises(HiexpError, match="is a file"):
        run_demo(DemoConfig(out=str(a_file)), echo=lambda text: None)


@pytest.mark.parametrize("content", ['{"name": "my web demo"}', '{"config": "x"}', "not json"])
def test_demo_refuses_a_folder_whose_demo_json_is_someone_elses(tmp_path, content):
    from hiexp.demo import DemoConfig, run_demo

    folder = tmp_path / "site"
    folder.mkdir()
    (folder / "demo.json").write_text(content)
    (folder / "report.md").write_text("my report")
    before = snapshot(folder)
    with pytest.raises(HiexpError, match="not a hiexp demo directory"):
        run_demo(DemoConfig(out=str(folder)), echo=lambda text: None)
    assert snapshot(folder) == before


def test_demo_restart_removes_only_what_a_demo_wrote(tmp_path):
    from hiexp.demo import STATE_FILE, DemoConfig, _discard_run
    from hiexp.eval.evaluate import run_eval
    from tests.fakes import ScriptedGenerator

    out = tmp_path / "demo"
    (out / "eval").mkdir(parents=True)
    (out / STATE_FILE).write_text(json.dumps({"config": DemoConfig().fingerprint()}))
    (out / "eval" / "my-notes.txt").write_text("mine")
    (out / "hek").mkdir()
    (out / "hek" / "draft.txt").write_text("mine too")  # not a HEK: kept
    (out / "mine.txt").write_text("kept")
    from hiexp.data import load_dataset

    examples = {"hotpotqa": load_dataset("hotpotqa", split="test", n=1, seed=0)}
    run_eval(examples, ScriptedGenerator(lambda p, s: "x"), None, "closed-book", out / "eval" / "without",
             progress=False)
    _discard_run(out)
    assert not (out / "eval" / "without").exists() and not (out / STATE_FILE).exists()
    assert (out / "eval" / "my-notes.txt").read_text() == "mine"
    assert (out / "hek" / "draft.txt").read_text() == "mine too" and (out / "mine.txt").read_text() == "kept"


def test_plot_replaces_only_a_png(tmp_path):
    from hiexp.io import check_output_file

    document = tmp_path / "thesis.png"
    document.write_text("not an image, but named like one\n")
    with pytest.raises(HiexpError, match="is not a PNG image"):
        check_output_file(document, magic=b"\x89PNG", what="PNG image")
    with pytest.raises(HiexpError, match="is a directory"):
        check_output_file(tmp_path, magic=b"\x89PNG", what="PNG image")
    picture = tmp_path / "old.png"
    picture.write_bytes(b"\x89PNG\r\n\x1a\n...")
    assert check_output_file(picture, magic=b"\x89PNG") == picture


def test_data_corpus_copies_only_over_the_same_corpus(tmp_path):
    mine = tmp_path / "notes.jsonl"
    mine.write_text('{"id": "mine"}\n')
    result = CliRunner().invoke(app, ["data", "corpus", "hotpotqa", "--out", str(mine)])
    assert isinstance(result.exception, HiexpError) and "holds something else" in str(result.exception)
    assert mine.read_text() == '{"id": "mine"}\n'
    copy = tmp_path / "corpus.jsonl"
    assert CliRunner().invoke(app, ["data", "corpus", "hotpotqa", "--out", str(copy)]).exit_code == 0
    assert CliRunner().invoke(app, ["data", "corpus", "hotpotqa", "--out", str(copy)]).exit_code == 0
    assert CliRunner().invoke(app, ["data", "corpus", "hotpotqa", "--out", str(mine), "--overwrite"]).exit_code == 0


# ---- the place rule (issue 33): never on or inside an input, never inside a HEK -----------------------------

def agent_reply_model(monkeypatch):
    import hiexp.llm
    from tests.fakes import ScriptedGenerator

    monkeypatch.setattr(hiexp.llm, "load_generator", lambda spec="default", backend="auto", **options:
                        ScriptedGenerator(lambda prompt, params: "<think>ok</think>\n<answer>Paris</answer>"))


@pytest.fixture
def hek_and_runs(e1_file, tmp_path):
    assert build(e1_file, tmp_path / "hek").exit_code == 0
    data = tmp_path / "data.jsonl"
    data.write_text("".join(json.dumps({"id": f"d{i}", "question": f"Capital number {i}?",
                                        "golden_answers": ["Paris"]}) + "\n" for i in range(2)))
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text("".join(json.dumps({"id": f"p{i}", "title": f"P{i}", "contents": "Paris is a capital."}) + "\n"
                              for i in range(4)))
    trajectories = write_trajectories(tmp_path / "traj.jsonl", [make_trajectory("q1", 0, True),
                                                                make_trajectory("q1", 1, False)])
    return tmp_path / "hek", data, corpus, trajectories


COMMANDS_WRITING = {
    "usefulness": lambda hek, data, corpus, traj, out: ["usefulness", str(hek), str(traj), "--out", out],
    "distill": lambda hek, data, corpus, traj, out: ["distill", str(traj), "--out", out],
    "eval": lambda hek, data, corpus, traj, out: ["eval", "--data", str(data), "--split", "all", "--index",
                                                  str(corpus), "--out", out],
    "rollout": lambda hek, data, corpus, traj, out: ["rollout", "--data", str(data), "--split", "all", "--index",
                                                     str(corpus), "--k", "1", "--out", out],
    "browse --static": lambda hek, data, corpus, traj, out: ["browse", str(hek), "--static", out, "--no-open"],
    "build": lambda hek, data, corpus, traj, out: ["build", str(traj), "--cases-only", "--out", out,
                                                   "--embedder", "hashing-64"],
}


@pytest.mark.parametrize("inside", ["v2", "v2/deeper", "entries.jsonl", "manifest.json", "embeddings.npy",
                                    "new.jsonl"])
@pytest.mark.parametrize("command", sorted(COMMANDS_WRITING))
def test_no_command_writes_inside_a_hek(monkeypatch, hek_and_runs, command, inside):
    agent_reply_model(monkeypatch)
    hek, data, corpus, traj = hek_and_runs
    before = snapshot(hek)
    result = CliRunner().invoke(app, COMMANDS_WRITING[command](hek, data, corpus, traj, str(hek / inside)))
    assert isinstance(result.exception, HiexpError), result.output
    assert "inside the HEK" in str(result.exception)
    assert snapshot(hek) == before  # not even a lock file
    HEK.load(hek)


def test_usefulness_may_keep_its_table_inside_the_hek_it_reads(monkeypatch, hek_and_runs):
    hek, data, corpus, traj = hek_and_runs
    result = CliRunner().invoke(app, ["usefulness", str(hek), str(traj), "--out", str(hek / "usefulness.json")])
    assert not isinstance(result.exception, HiexpError) or "inside the HEK" not in str(result.exception)


@pytest.mark.parametrize("relation", ["the input itself", "inside an input folder"])
def test_an_output_never_lands_on_or_inside_an_input(tmp_path, relation):
    from hiexp.io import check_output_place, exclusive_output

    folder = tmp_path / "inputs"
    folder.mkdir()
    (folder / "data.jsonl").write_text("{}\n")
    target = folder / "data.jsonl" if relation == "the input itself" else folder / "sub" / "out.jsonl"
    source = folder / "data.jsonl" if relation == "the input itself" else folder
    with pytest.raises(HiexpError, match="the input"):
        check_output_place(target, [source])
    with pytest.raises(HiexpError, match="the input"), exclusive_output(target, "x", inputs=[source]):
        pass
    assert sorted(p.name for p in folder.rglob("*")) == ["data.jsonl"]  # no lock file left


def test_an_input_that_is_not_on_disk_is_no_place_to_refuse(tmp_path, monkeypatch):
    """A shipped HEK's name, a dataset name or a URL names nothing here that an output could overwrite."""
    from hiexp.io import check_output_place

    monkeypatch.chdir(tmp_path)
    assert check_output_place(Path("demo") / "site", ["demo", "hotpotqa", "http://host:8000/retrieve"])


def test_a_refused_usefulness_run_leaves_the_hek_byte_identical(hek_and_runs, tmp_path):
    hek, data, corpus, traj = hek_and_runs
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    before = snapshot(hek)
    result = CliRunner().invoke(app, ["usefulness", str(hek), str(empty)])  # the default --out: inside the HEK
    assert isinstance(result.exception, HiexpError)
    assert snapshot(hek) == before  # its lock lies beside the HEK, not in it


@pytest.mark.parametrize("args", [["eval", "--data", "x.jsonl", "--out", "o", "--threshold", "nan"],
                                  ["eval", "--data", "x.jsonl", "--out", "o", "--threshold", "1.5"],
                                  ["browse", "hek", "--threshold", "nan"],
                                  ["distill", "t.jsonl", "--out", "o.jsonl", "--threshold", "nan"],
                                  ["update", "hek", "t.jsonl", "--threshold", "inf"]])
def test_a_nan_or_out_of_range_threshold_is_refused_at_parse_time(args):
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2 and "--threshold" in result.output
