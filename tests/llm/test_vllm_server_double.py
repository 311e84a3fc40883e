"""The vLLM server path through TRL's real ``VLLMClient``: an HTTP double of ``trl vllm-serve`` (vLLM's
OpenAI-compatible server, which TRL's command starts) answers the same paths with the same JSON (``/health``,
``/v1/models``, ``/server_info``, ``/v1/completions`` with token-id prompts, ``return_token_ids``, completions-style logprobs
of ``token_id:<id>`` tokens), sampling with the tiny model. vLLM itself needs a GPU; the client needs only
``requests``, so the double stands where the GPU would."""

from __future__ import annotations

import json
import math
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import SimpleNamespace

import pytest

from hiexp.contracts.generation import SamplingParams
from hiexp.llm.vllm import VLLMGenerator


class VLLMServeDouble:
    """vLLM's OpenAI-compatible server, as far as TRL's client uses it; records each completions request."""

    def __init__(self, generator):
        self.generator = generator
        self.requests: list[dict] = []
        double = self

        class Handler(BaseHTTPRequestHandler):
            def _send(self, status, body):
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self):  # noqa: N802
                if self.path == "/health":
                    self._send(200, {})
                elif self.path.startswith("/server_info"):  # a dev endpoint (VLLM_SERVER_DEV_MODE=1), as TRL starts it
                    self._send(200, {"vllm_config": {"model_config": {"logprobs_mode": "processed_logprobs"},
                                                     "weight_transfer_config": {"backend": "nccl"}}})
                elif self.path == "/v1/models":
                    self._send(200, {"object": "list", "data": [{"id": "tiny", "object": "model"}]})
                else:
                    self._send(404, {"detail": "Not Found"})

            def do_POST(self):  # noqa: N802
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                if self.path != "/v1/completions":
                    self._send(404, {"detail": "Not Found"})
                    return
                double.requests.append(body)
                self._send(200, double.complete(body))

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def complete(self, body: dict) -> dict:
        prompts = body["prompt"] if isinstance(body["prompt"][0], list) else [body["prompt"]]
        params = SamplingParams(max_new_tokens=body["max_tokens"], temperature=body["temperature"],
                                top_p=body["top_p"], stop=list(body.get("stop") or []), seed=body.get("seed"))
        out = self.generator.generate([list(p) for p in prompts], params)
        choices = []
        for prompt, generation in zip(prompts, out, strict=True):
            tokens = [f"token_id:{t}" for t in generation.token_ids]
            # vLLM lists the sampled token and, with logprobs=0, nothing else; here a likelier token is added
            # first at every position, as a top-1 request would return, so the sampled one is not always first
            top = [{f"token_id:{t + 1}": 0.0, token: lp} for t, token, lp in
                   zip(generation.token_ids, tokens, generation.logprobs, strict=True)]
            choices.append({"index": len(choices), "text": generation.text, "prompt_token_ids": list(prompt),
                            "token_ids": generation.token_ids, "finish_reason": "stop",
                            "logprobs": {"tokens": tokens, "token_logprobs": generation.logprobs,
                                         "top_logprobs": top}})
        return {"id": "cmpl-1", "object": "text_completion", "model": "tiny", "choices": choices}

    def __enter__(self):
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()


@pytest.fixture(scope="module")
def tiny():
    from hiexp.llm import load_generator

    return load_generator("tiny-random", device="cpu")


@pytest.fixture
def real_client_without_vllm(monkeypatch):
    """TRL's client refuses to start where vLLM is not installed; it needs only requests to talk."""
    import trl.generation.vllm_client as vllm_client

    monkeypatch.setattr(vllm_client, "is_vllm_available", lambda *a, **k: True)
    return vllm_client.VLLMClient


def test_one_turn_is_one_request_through_trls_client_with_the_sampled_tokens_logprobs(tiny, real_client_without_vllm):
    with VLLMServeDouble(tiny) as server:
        client = real_client_without_vllm(base_url=server.url, connection_timeout=5)
        vllm = VLLMGenerator(client, tiny.tokenizer, model_id="tiny (vllm server)")
        prompts = [tiny.tokenizer.encode(f"Question {i}: who wrote it?", add_special_tokens=False) for i in range(5)]
        out = vllm.generate(prompts, SamplingParams(max_new_tokens=8, temperature=1.0, stop=["</search>"]))
    assert len(server.requests) == 1 and server.requests[0]["prompt"] == prompts  # batched, ids as sent
    request = server.requests[0]
    assert request["include_stop_str_in_output"] and request["stop"] == ["</search>"]
    assert "seed" not in request  # one seed would be every prompt's: two episodes would sample alike
    assert len(out) == 5
    eos = tiny.tokenizer.eos_token_id
    for generation in out:
        assert generation.token_ids and len(generation.logprobs) == len(generation.token_ids)
        assert all(lp < 0 and not math.isnan(lp) for lp in generation.logprobs)  # not the likelier 0.0
        assert generation.finish_reason in ("stop", "length")
        ids = generation.token_ids[:-1] if generation.token_ids[-1] == eos else generation.token_ids
        assert generation.text == tiny.tokenizer.decode(ids, skip_special_tokens=False)
    from hiexp.errors import HiexpError

    with pytest.raises(HiexpError, match="token ids"):
        vllm.generate(["text"], SamplingParams())


def generation_of_a_rank(url: str, main: bool, client=None) -> SimpleNamespace:
    """TRL's ``VLLMGeneration`` as a rank sees it: the client exists on the main process only."""
    values = dict(mode="server", server_base_url=url, server_host="0.0.0.0", server_port=8000, group_port=51216,
                  server_timeout=5.0)
    if main:
        values["vllm_client"] = client
    return SimpleNamespace(**values)


def test_every_rank_generates_the_main_one_with_trls_client_the_others_with_their_own(tiny, real_client_without_vllm):
    with VLLMServeDouble(tiny) as server:
        main_client = real_client_without_vllm(base_url=server.url, connection_timeout=5)
        prompt = tiny.tokenizer.encode("Question: who wrote it?", add_special_tokens=False)
        clients = []
        for rank in range(3):
            trainer = SimpleNamespace(vllm_generation=generation_of_a_rank(server.url, rank == 0, main_client),
                                      model=SimpleNamespace(config=SimpleNamespace(_name_or_path="tiny")),
                                      processing_class=tiny.tokenizer)
            vllm = VLLMGenerator.from_trainer(trainer)  # rank > 0: was AttributeError (no vllm_client)
            assert vllm.generate([prompt], SamplingParams(max_new_tokens=4, temperature=1.0))[0].token_ids
            clients.append(vllm.engine)
            assert VLLMGenerator.from_trainer(trainer).engine is vllm.engine  # made once per rank
    assert clients[0] is main_client and clients[1] is not main_client and clients[1] is not clients[2]
    assert len(server.requests) == 3
