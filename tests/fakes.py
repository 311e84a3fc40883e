"""Test doubles. Test infrastructure only: no command of hiexp ever runs these."""

from __future__ import annotations

from collections.abc import Callable

from hiexp.contracts.generation import Generation, SamplingParams


class ScriptedGenerator:
    """A text-only generator that answers from a script.

    ``script`` is either a list of replies consumed in order (cycling when exhausted is off: running out
    raises), or a function ``(prompt_text, params) -> reply``. Stop strings are honoured the way a real
    backend does: the reply is cut just after the first stop string it contains.
    """

    def __init__(self, script: list[str] | Callable[[str, SamplingParams], str], model_id: str = "scripted"):
        self.model_id = model_id
        self.tokenizer = None
        self._script = script
        self._position = 0
        self.prompts: list[str] = []

    def _next(self, prompt: str, params: SamplingParams) -> str:
        if callable(self._script):
            return self._script(prompt, params)
        if self._position >= len(self._script):
            raise AssertionError("ScriptedGenerator ran out of replies")
        reply = self._script[self._position]
        self._position += 1
        return reply

    def generate(self, prompts, params: SamplingParams) -> list[Generation]:
        out = []
        for prompt in prompts:
            if not isinstance(prompt, str):
                raise TypeError("ScriptedGenerator is text-only")
            self.prompts.append(prompt)
            reply = self._next(prompt, params)
            stop_hit, cut = None, len(reply)
            for stop in params.stop:
                at = reply.find(stop)
                if at != -1 and at + len(stop) < cut:
                    cut, stop_hit = at + len(stop), stop
            out.append(Generation(text=reply[:cut], finish_reason="stop", stop=stop_hit))
        return out
