"""``hiexp models ...`` (registered on a local Typer app, as hiexp.cli does)."""

from __future__ import annotations

import pytest
import typer
from typer.testing import CliRunner

from hiexp.cli.llm import register
from hiexp.errors import HiexpError


@pytest.fixture(scope="module")
def app():
    app = typer.Typer()

    @app.callback()
    def root() -> None:
        """test root"""

    register(app)
    return app


def test_list_prepare_generate(app, tiny_generator):
    runner = CliRunner()
    listed = runner.invoke(app, ["models", "list"])
    assert listed.exit_code == 0 and "qwen2.5-coder-1.5b (= default)" in listed.output
    assert "tiny-random" in listed.output
    prepared = runner.invoke(app, ["models", "prepare", "tiny-random"])
    assert prepared.exit_code == 0 and "tiny-random-v1" in prepared.output
    generated = runner.invoke(app, ["models", "generate", "hello", "-m", "tiny-random", "--max-new-tokens", "3"])
    assert generated.exit_code == 0, generated.output


def test_unknown_model_is_a_hiexp_error(app):
    result = CliRunner().invoke(app, ["models", "prepare", "no-such-model"])
    assert isinstance(result.exception, HiexpError)
