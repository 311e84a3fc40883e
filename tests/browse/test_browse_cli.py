"""``hiexp browse``: arguments checked before any work, ``--static`` writes pages and refuses what it did not write."""

from __future__ import annotations

from typer.testing import CliRunner

from hiexp.cli import app
from hiexp.errors import HiexpError


def test_static_pages_and_bad_arguments(browse_fixture, tmp_path):
    runner = CliRunner()
    one = runner.invoke(app, ["browse", str(browse_fixture["hek"]), str(browse_fixture["runs"][0]), "--static",
                              str(tmp_path / "site")])
    assert isinstance(one.exception, HiexpError) and "two run directories" in str(one.exception)
    missing = runner.invoke(app, ["browse", str(tmp_path / "nope"), "--static", str(tmp_path / "site")])
    assert isinstance(missing.exception, HiexpError) and "no such HEK directory" in str(missing.exception)
    ok = runner.invoke(app, ["browse", str(browse_fixture["hek"]), *map(str, browse_fixture["runs"]),
                             "--static", str(tmp_path / "site"), "--trajectories", str(browse_fixture["trajectories"])])
    assert ok.exit_code == 0, ok.output
    assert (tmp_path / "site" / "provenance" / "E1-00.html").exists() and (tmp_path / "site" / "runs.html").exists()
    again = runner.invoke(app, ["browse", str(browse_fixture["hek"]), "--static", str(tmp_path / "site")])
    assert again.exit_code == 0  # its own earlier output may be written again
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("mine")
    refused = runner.invoke(app, ["browse", str(browse_fixture["hek"]), "--static", str(tmp_path / "other")])
    assert isinstance(refused.exception, HiexpError) and (tmp_path / "other" / "notes.txt").read_text() == "mine"
