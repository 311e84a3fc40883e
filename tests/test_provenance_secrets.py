"""Provenance without secrets (issue 12, class 8): a model given as a URL is recorded by the name its server
serves, and the user:password of a URL reaches the server as basic auth but nothing that is written."""

from __future__ import annotations

import base64
import json

import pytest

from hiexp.contracts.generation import SamplingParams
from hiexp.io import public_url, split_url_credentials
from tests.llm.test_openai_backend import FakeServer


@pytest.fixture(autouse=True)
def no_default_key(monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)


@pytest.mark.parametrize("url, public, auth", [
    ("http://user:pw@host:8000/v1", "http://host:8000/v1", ("user", "pw")),
    ("https://tok%40en:p%3Ass@h/v1?x=1", "https://h/v1?x=1", ("tok@en", "p:ss")),
    ("http://only-user@h:1/", "http://h:1/", ("only-user", "")),
    ("http://h:1/v1", "http://h:1/v1", None),
])
def test_credentials_are_split_from_urls(url, public, auth):
    assert split_url_credentials(url) == (public, auth)
    assert public_url(url) == public
    assert public_url("runs/hek") == "runs/hek"


def test_a_url_model_is_recorded_by_its_served_name_without_credentials(tmp_path):
    from hiexp.components import make_generator, make_retriever
    from hiexp.eval.evaluate import run_eval

    with FakeServer() as server:
        secret_url = server.url.replace("http://", "http://alice:s3cret@")
        gen = make_generator(secret_url)
        assert gen.model_id == f"fake-model@{server.url}"  # asked from /v1/models, not '?'
        gen.generate(["hi"], SamplingParams(max_new_tokens=2))
        sent = server.requests[-1]["headers"]
        assert sent["Authorization"] == "Basic " + base64.b64encode(b"alice:s3cret").decode()
        from hiexp.data import load_dataset

        examples = load_dataset("hotpotqa", split="test", n=2, seed=0)
        run_eval({"hotpotqa": examples}, gen, None, "closed-book", tmp_path / "run", progress=False,
                 index="http://bob:hunter2@127.0.0.1:9/retrieve")
    written = "".join(p.read_text() for p in (tmp_path / "run").rglob("*") if p.is_file())
    assert "s3cret" not in written and "alice" not in written and "hunter2" not in written
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert manifest["model"] == f"fake-model@{server.url}"
    remote = make_retriever("http://carol:pw@127.0.0.1:9/retrieve")
    assert "carol" not in remote.url and "pw@" not in remote.url
