"""``hiexp compare``: paired bootstrap deltas on synthetic runs, refusal and warnings."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from hiexp.errors import HiexpError
from hiexp.eval.compare import compare_runs, paired_bootstrap
from hiexp.io import atomic_write_json, atomic_write_jsonl


def write_run(path, rows, manifest=None):
    path.mkdir(parents=True, exist_ok=True)
    atomic_write_jsonl(path / "predictions.jsonl", rows)
    atomic_write_json(path / "manifest.json", manifest or {"model": "m", "seed": 0, "top_k": 3, "hek": None})
    return path


def synthetic_rows(ids, em, searches, dataset="hotpotqa"):
    return [
        {"question_id": q, "dataset": dataset, "rewards": {"em": float(e), "cem": float(e), "f1": float(e)},
         "num_searches": int(s), "num_tokens": 100 + int(s) * 10}
        for q, e, s in zip(ids, em, searches)
    ]


def test_identical_runs_give_zero_with_zero_width(tmp_path):
    ids = [f"q{i}" for i in range(40)]
    rng = np.random.default_rng(0)
    rows = synthetic_rows(ids, rng.integers(0, 2, 40), rng.integers(0, 4, 40))
    a = write_run(tmp_path / "a", rows)
    b = write_run(tmp_path / "b", list(reversed(rows)))  # order must not matter: pairing is by id
    result = compare_runs(a, b, resamples=1000)
    for d in result.datasets["hotpotqa"].deltas.values():
        assert d.delta == 0.0 and d.low == 0.0 and d.high == 0.0
    assert result.warnings == []


def test_known_delta_inside_interval(tmp_path):
    rng = np.random.default_rng(1)
    n = 300
    ids = [f"q{i}" for i in range(n)]
    em_a = rng.random(n) < 0.3
    # B fixes a random 20% of A's failures: true delta ~ 0.7 * 0.2 = 0.14.
    em_b = em_a | (rng.random(n) < 0.2)
    searches_a = rng.integers(0, 3, n)
    a = write_run(tmp_path / "a", synthetic_rows(ids, em_a, searches_a))
    b = write_run(tmp_path / "b", synthetic_rows(ids, em_b, searches_a + 1))
    result = compare_runs(a, b, resamples=2000, seed=3)
    em = result.datasets["hotpotqa"].deltas["em"]
    assert em.delta == pytest.approx(em_b.mean() - em_a.mean())
    assert em.low < 0.14 < em.high and em.low > 0
    searches = result.datasets["hotpotqa"].deltas["searches"]
    assert searches.delta == 1.0 and searches.low == 1.0 and searches.high == 1.0
    # Seeded: the same call gives the same interval.
    again = compare_runs(a, b, resamples=2000, seed=3).datasets["hotpotqa"].deltas["em"]
    assert (again.low, again.high) == (em.low, em.high)


def test_bootstrap_coverage_is_about_95_percent():
    rng = np.random.default_rng(7)
    hits = 0
    for trial in range(200):
        a = rng.normal(0, 1, 60)
        b = a + 0.5 + rng.normal(0, 1, 60)
        _, low, high = paired_bootstrap(a, b, resamples=1000, seed=trial)
        hits += low <= 0.5 <= high
    assert 0.88 <= hits / 200 <= 0.99


def test_pairs_only_shared_questions_and_refuses_disjoint_runs(tmp_path):
    a = write_run(tmp_path / "a", synthetic_rows(["q1", "q2", "q3"], [1, 0, 1], [1, 1, 1]))
    b = write_run(tmp_path / "b", synthetic_rows(["q2", "q3", "q4"], [1, 1, 0], [1, 1, 1]))
    with pytest.warns(UserWarning, match="shared"):
        result = compare_runs(a, b, resamples=500)
    dc = result.datasets["hotpotqa"]
    assert (dc.n, dc.only_a, dc.only_b) == (2, 1, 1)
    assert dc.deltas["em"].delta == pytest.approx(0.5)
    c = write_run(tmp_path / "c", synthetic_rows(["x1", "x2"], [1, 0], [0, 0]))
    with pytest.raises(HiexpError, match="share no questions"):
        compare_runs(a, c)


def test_warns_when_manifests_differ_beyond_hek(tmp_path):
    rows = synthetic_rows(["q1", "q2"], [1, 0], [1, 2])
    a = write_run(tmp_path / "a", rows, {"model": "m", "seed": 0, "top_k": 3, "hek": None})
    b = write_run(tmp_path / "b", rows, {"model": "m", "seed": 0, "top_k": 3, "hek": {"hek_version": "abc"}})
    with warnings_as_list() as caught:
        compare_runs(a, b, resamples=200)
    assert not caught  # only the HEK differs: no warning
    c = write_run(tmp_path / "c", rows, {"model": "other", "seed": 1, "top_k": 3, "hek": "x"})
    with pytest.warns(UserWarning, match="model.*seed|seed.*model"):
        compare_runs(a, c, resamples=200)


def test_bad_run_directories_are_clear(tmp_path):
    with pytest.raises(HiexpError, match="not a run directory"):
        compare_runs(tmp_path / "missing", tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(HiexpError, match="predictions.jsonl"):
        compare_runs(tmp_path / "empty", tmp_path / "empty")
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "predictions.jsonl").write_text('{"question_id": "q1", "dataset": "d"}\n')
    with pytest.raises(HiexpError, match="predictions.jsonl:1"):
        compare_runs(bad, bad)


def test_cli_table_and_json(tmp_path):
    from hiexp.cli import app

    ids = [f"q{i}" for i in range(10)]
    a = write_run(tmp_path / "a", synthetic_rows(ids, [0] * 10, [1] * 10))
    b = write_run(tmp_path / "b", synthetic_rows(ids, [1] * 5 + [0] * 5, [2] * 10))
    runner = CliRunner()
    out = runner.invoke(app, ["compare", str(a), str(b)])
    assert out.exit_code == 0, out.output
    assert "| hotpotqa | 10 | em | 0.0 | 50.0 | +50.0 |" in out.output
    out = runner.invoke(app, ["compare", str(a), str(b), "--json"])
    data = json.loads(out.output)
    assert data["datasets"]["hotpotqa"]["deltas"]["searches"]["delta"] == 1.0


class warnings_as_list:
    def __enter__(self):
        import warnings

        self._ctx = warnings.catch_warnings(record=True)
        caught = self._ctx.__enter__()
        warnings.simplefilter("always")
        return caught

    def __exit__(self, *exc):
        return self._ctx.__exit__(*exc)


def test_runs_of_several_datasets_get_a_pooled_row_over_every_shared_question(tmp_path):
    rng = np.random.default_rng(2)
    runs = {"a": [], "b": []}
    em = {}
    for dataset, n in (("hotpotqa", 50), ("2wiki", 30), ("musique", 20)):
        ids = [f"{dataset}-{i}" for i in range(n)]
        em_a = rng.random(n) < 0.4
        em_b = em_a | (rng.random(n) < 0.3)
        em[dataset] = (em_a, em_b)
        runs["a"].append(write_run(tmp_path / "a" / dataset, synthetic_rows(ids, em_a, [1] * n, dataset)))
        runs["b"].append(write_run(tmp_path / "b" / dataset, synthetic_rows(ids, em_b, [2] * n, dataset)))
    result = compare_runs(runs["a"], runs["b"], resamples=1000)
    pooled = result.datasets["pooled"]
    all_a = np.concatenate([a for a, _ in em.values()])
    all_b = np.concatenate([b for _, b in em.values()])
    assert pooled.n == 100 and pooled.deltas["em"].delta == pytest.approx(all_b.mean() - all_a.mean())
    assert pooled.deltas["em"].low <= pooled.deltas["em"].delta <= pooled.deltas["em"].high
    assert pooled.deltas["searches"].delta == 1.0
    assert set(result.datasets) == {"hotpotqa", "2wiki", "musique", "pooled"}
    single = compare_runs(runs["a"][0], runs["b"][0], resamples=1000)
    assert "pooled" not in single.datasets  # one dataset: nothing to pool
    with pytest.raises(HiexpError, match="as many runs"):
        compare_runs(runs["a"], runs["b"][:2])
    with pytest.raises(HiexpError, match="also in another run"):
        compare_runs([runs["a"][0], runs["a"][0]], [runs["b"][0], runs["b"][1]])
    from hiexp.cli import app

    shown = CliRunner().invoke(app, ["compare", ",".join(map(str, runs["a"])), ",".join(map(str, runs["b"]))])
    assert shown.exit_code == 0 and "| pooled | 100 | em |" in shown.output


def test_by_kind_compares_yes_no_choice_and_open_questions_apart(tmp_path):
    questions = {"y": "Are A and B both poets?", "c": "Who was born first, Ann Lee or Bo Li?", "o": "Where is X?"}
    ids = [f"{kind}{i}" for kind in questions for i in range(10)]
    em_a = [1 if q[0] == "y" else 0 for q in ids]  # the experience loses every yes/no answer, wins every choice
    em_b = [1 if q[0] == "c" else 0 for q in ids]
    rows = {name: synthetic_rows(ids, em, [1] * 30) for name, em in (("a", em_a), ("b", em_b))}
    for name in rows:
        for row in rows[name]:
            row["question"] = questions[row["question_id"][0]]
    a, b = write_run(tmp_path / "a", rows["a"]), write_run(tmp_path / "b", rows["b"])
    result = compare_runs(a, b, resamples=500, by_kind=True)
    assert set(result.datasets) == {"hotpotqa yes/no", "hotpotqa choice", "hotpotqa open", "pooled"}
    assert result.datasets["hotpotqa yes/no"].deltas["em"].delta == -1.0
    assert result.datasets["hotpotqa choice"].deltas["em"].delta == 1.0
    assert result.datasets["hotpotqa open"].deltas["em"].delta == 0.0
    assert result.datasets["pooled"].n == 30 and result.datasets["pooled"].deltas["em"].delta == 0.0
    assert set(compare_runs(a, b, resamples=500).datasets) == {"hotpotqa"}  # by dataset unless asked
    from hiexp.cli import app

    shown = CliRunner().invoke(app, ["compare", str(a), str(b), "--by-kind"])
    assert shown.exit_code == 0 and "| hotpotqa yes/no | 10 | em | 100.0 | 0.0 | -100.0 |" in shown.output
