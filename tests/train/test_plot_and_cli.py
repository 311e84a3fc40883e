"""``hiexp plot`` on hand-written metrics files, and the ``train``/``plot`` commands' error handling."""

from __future__ import annotations

import subprocess
import sys

import pytest
from typer.testing import CliRunner

from hiexp.errors import HiexpError
from hiexp.io import append_jsonl
from hiexp.train.plot import plot_runs
from hiexp.train.telemetry import GradNormWindow, group_variances, read_metrics, telemetry_record, variance


def _write_run(directory, rewards):
    for step, reward in enumerate(rewards, start=1):
        logs = {"reward": reward, "reward_std": 0.5, "grad_norm": 1.0 + step, "completions/mean_length": 20.0,
                "frac_reward_zero_std": 0.25, "kl": 0.001 * step, "clip_ratio/region_mean": 0.0, "loss": 0.1}
        append_jsonl(directory / "metrics.jsonl", telemetry_record(step, logs, {"adv_var": 0.9, "reward_var": 0.2}))
    return directory


def test_telemetry_helpers():
    assert variance([1, 1, 1]) == 0.0 and variance([0, 1]) == 0.25 and variance([3]) == 0.0
    assert group_variances([1, 0, 1, 1], 2) == [0.25, 0.0]
    window = GradNormWindow(2)
    window.add(1.0)
    window.add(3.0)
    assert window.add(3.0) == 0.0  # only the last two count
    record = telemetry_record(3, {"reward": 0.5, "reward_std": 0.5, "grad_norm": 2.0}, {"adv_var": 1.0})
    assert record["reward_mean"] == 0.5 and record["reward_var"] == 0.25 and record["adv_var"] == 1.0


def test_plot_two_runs(tmp_path):
    a = _write_run(tmp_path / "hiexp", [0.1, 0.2, 0.3])
    b = _write_run(tmp_path / "vanilla", [0.1, 0.1])
    append_jsonl(b / "metrics.jsonl", {"step": 2, "reward_mean": 0.4})  # a rewritten step: last one wins
    out = tmp_path / "fig.png"
    summary = plot_runs([a, b], out)
    assert out.stat().st_size > 1000 and out.read_bytes()[:4] == b"\x89PNG"
    assert summary["hiexp"]["steps"] == 3 and summary["vanilla"]["steps"] == 2
    assert summary["hiexp"]["reward_mean"]["mean"] == pytest.approx(0.2)
    assert read_metrics(b)[-1]["reward_mean"] == 0.4


def test_plot_bad_input(tmp_path):
    with pytest.raises(HiexpError, match="no metrics.jsonl"):
        plot_runs([tmp_path], tmp_path / "x.png")
    run = _write_run(tmp_path / "r", [0.1])
    with pytest.raises(HiexpError, match="appear in none"):
        plot_runs([run], tmp_path / "x.png", metrics=["nonsense"])


def test_cli_plot_and_bad_config(tmp_path):
    from hiexp.cli import app

    run = _write_run(tmp_path / "r", [0.1, 0.2])
    result = CliRunner().invoke(app, ["plot", str(run), "--out", str(tmp_path / "f.png")])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "f.png").exists()
    table = [line for line in result.output.splitlines() if line.startswith("| r |")]
    # grad norms 2 and 3; searches were not logged by this fixture, so a dash
    assert table == ["| r | 2 | 0.15 | 0.2 | 0.0025 | 0.9 | 2.5 | 0.25 | 20 | - | 0.25 |"], result.output
    result = CliRunner().invoke(app, ["train", "--config", "cpu", "--algorithm", "gspo", "--print-config"])
    assert result.exit_code == 0 and "algorithm: gspo" in result.output
    bad = tmp_path / "bad.yaml"
    bad.write_text("group_size: 1\n")
    # through the real entry point: one line on stderr, exit 2, no traceback
    proc = subprocess.run([sys.executable, "-m", "hiexp.cli", "train", "--config", str(bad)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "group_size" in proc.stderr and "Traceback" not in proc.stderr
