"""hiexp's search episode as an agent loop of verl's multi-turn rollout (``verl.experimental.agent_loop``).

verl keeps one agent loop object per sample and awaits its ``run(sampling_params, **row)``; the loop talks to
the rollout servers through ``server_manager.generate(request_id, prompt_ids=..., sampling_params=...)``, token
ids in and token ids (with log-probs) out, and returns the prompt ids, the response ids, a response mask (1
for what the model wrote, 0 for what the environment injected) and a reward. ``HiexpAgentLoop`` runs hiexp's
own ``SearchAgent`` for that one episode: its format (Search-R1 tags, tool calls or math), the retriever, the
HEK's experience injected at the start and at each search, the exact token ids of every turn and the outcome
reward, so a verl run trains on the same episodes ``hiexp train`` does. The agent is synchronous; it runs on a
worker thread, and each of its generate calls is handed back to verl's event loop.

Configure it in the agent loop file verl reads (``actor_rollout_ref.rollout.agent.agent_loop_config_path``)::

    - name: hiexp_agent
      _target_: hiexp.integrations.verl.HiexpAgentLoop
      hiexp: {format: search_r1, index: http://retriever:8000/retrieve, hek: runs/hek, top_k: 3, max_turns: 3}

and give the data rows ``agent_name: hiexp_agent`` (``examples/verl/``). ``compute_score`` is the matching
verl reward function for rows scored outside the loop. Importing this module needs no verl; ``HiexpAgentLoop``
is defined (and registered) only where verl is installed, and ``HiexpVerlLoop`` is the same loop without verl's
base class (what the CPU tests drive with a stand-in server manager).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import threading
import uuid
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import fields
from typing import Any

from hiexp.agent import AgentConfig, SearchAgent
from hiexp.contracts.example import Example
from hiexp.contracts.fields import field_of
from hiexp.contracts.generation import Generation, SamplingParams
from hiexp.data.formats import parse_record
from hiexp.errors import HiexpError
from hiexp.llm.vllm import generation_from_ids
from hiexp.scoring.metrics import score_answer
from hiexp.train.rollout import sampling_logprobs, trajectory_to_sample

AGENT_LOOP_NAME = "hiexp_agent"
# Options of the ``hiexp:`` section that are not AgentConfig fields.
_COMPONENT_OPTIONS = ("index", "dataset", "hek", "hek_top_k", "hek_threshold", "task")
# Options of the ``hiexp:`` section about the loop itself.
_LOOP_OPTIONS = ("max_concurrent_episodes",)
DEFAULT_CONCURRENT_EPISODES = 256
logger = logging.getLogger(__name__)


class ServerManagerGenerator:
    """hiexp's ``Generator`` on verl's server manager: each call of the (threaded) agent becomes one
    ``server_manager.generate`` per prompt on verl's event loop. The episode's turns share one request id,
    so verl's sticky routing keeps them on one server (its prefix cache holds the history)."""

    def __init__(self, server_manager: Any, tokenizer: Any, loop: asyncio.AbstractEventLoop, request_id: str,
                 base_sampling: dict[str, Any] | None = None):
        self.server_manager = server_manager
        self.tokenizer = tokenizer
        self.loop = loop
        self.request_id = request_id
        self.base_sampling = dict(base_sampling or {})
        self.model_id = "verl-rollout"

    def generate(self, prompts: list[list[int]], params: SamplingParams, seeds: list[int] | None = None
                 ) -> list[Generation]:
        async def all_of_them():
            return await asyncio.gather(*(self._one(list(p), params) for p in prompts))

        return asyncio.run_coroutine_threadsafe(all_of_them(), self.loop).result()

    async def _one(self, prompt_ids: list[int], params: SamplingParams) -> Generation:
        sampling = {**self.base_sampling, "temperature": params.temperature, "top_p": params.top_p,
                    "max_tokens": params.max_new_tokens, "logprobs": True}
        if params.stop:
            sampling.update(stop=list(params.stop), include_stop_str_in_output=True)
        output = await self.server_manager.generate(self.request_id, prompt_ids=prompt_ids, sampling_params=sampling)
        return generation_from_ids(self.tokenizer, field_of(output, "token_ids"), field_of(output, "log_probs"), params)


def row_example(row: dict[str, Any], task: str | None = None) -> Example:
    """The hiexp example of a verl data row (Search-R1's parquet layout: ``prompt`` messages or ``question``,
    ``reward_model.ground_truth.target``, ``extra_info.index``)."""
    record = {k: (v.tolist() if hasattr(v, "tolist") and not isinstance(v, (str, bytes)) else v)
              for k, v in row.items()}  # verl hands rows out of numpy object arrays
    if "prompt" not in record and "raw_prompt" in record:
        record["prompt"] = record["raw_prompt"]
    extra = record.get("extra_info") or {}
    if isinstance(extra, dict) and extra.get("question") and not record.get("question"):
        record["question"] = extra["question"]
    task = task or (extra.get("task") if isinstance(extra, dict) else None) or "qa"
    item = parse_record(record, "verl", str(record.get("data_source") or "verl"), task,
                        fallback_id=str(record.get("uid") or uuid.uuid4().hex))
    return item.example


class HiexpVerlLoop:
    """The agent loop's behaviour without verl's base class. ``options`` is the ``hiexp:`` section: agent
    options (``format``, ``top_k``, ``max_turns``, ``max_new_tokens``, ``max_tokens``, ``reward_metric``, ...),
    the components (``index`` or ``dataset`` for the retriever, ``hek`` with ``hek_top_k`` and
    ``hek_threshold``, ``task``) and ``max_concurrent_episodes`` (episodes of one worker process in flight
    at once: the size of the thread pool the synchronous agent runs on; default 256). The retriever, the HEK
    and the pool are made once per process and shared.

    ``prompt_length`` / ``response_length`` are verl's (``actor_rollout_ref.rollout``): an episode longer
    than either is cut to it, with one warning per cut, as verl's own loops cut theirs (its post-processing
    only pads). The response keeps its first ``response_length`` tokens; the prompt its last
    ``prompt_length`` (a long experience block is what makes a prompt too long: lower ``hek_top_k``).
    Every sample of a question gets its own trajectory id (``question#k``, k counted per process)."""

    _components: dict[str, Any] = {}
    _lock = threading.Lock()
    _executors: dict[int, ThreadPoolExecutor] = {}
    _samples: defaultdict[str, itertools.count] = defaultdict(itertools.count)

    def setup(self, server_manager: Any, tokenizer: Any, options: dict[str, Any] | None = None,
              prompt_length: int | None = None, response_length: int | None = None) -> None:
        self.server_manager = server_manager
        self.tokenizer = tokenizer
        self.options = dict(options or {})
        self.prompt_length = prompt_length
        self.response_length = response_length
        known = {f.name for f in fields(AgentConfig)} | set(_COMPONENT_OPTIONS) | set(_LOOP_OPTIONS)
        unknown = sorted(set(self.options) - known)
        if unknown:
            raise HiexpError(f"unknown hiexp agent loop option(s): {', '.join(unknown)}")
        workers = self.options.get("max_concurrent_episodes", DEFAULT_CONCURRENT_EPISODES)
        if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
            raise HiexpError(f"max_concurrent_episodes must be a whole number >= 1, got {workers!r}")

    def _executor(self) -> ThreadPoolExecutor:
        """The process's pool for episodes (one per size asked for): asyncio's default pool would cap a
        worker at min(32, cores + 4) episodes in flight, whatever verl sends."""
        size = int(self.options.get("max_concurrent_episodes", DEFAULT_CONCURRENT_EPISODES))
        with self._lock:
            if size not in self._executors:
                self._executors[size] = ThreadPoolExecutor(max_workers=size, thread_name_prefix="hiexp-episode")
            return self._executors[size]

    def _next_sample(self, question_id: str) -> int:
        with self._lock:
            return next(self._samples[question_id])

    def _shared(self) -> tuple[Any, Any]:
        """(retriever, experience hook), built on first use and cached per process by their options."""
        from hiexp.components import make_experience_hook, make_retriever

        key = repr(sorted((k, str(v)) for k, v in self.options.items() if k in _COMPONENT_OPTIONS))
        with self._lock:
            if key not in self._components:
                fmt = self.options.get("format", "search_r1")
                retriever = None
                if fmt != "math" and (self.options.get("index") or self.options.get("dataset")):
                    retriever = make_retriever(self.options.get("index"), dataset=self.options.get("dataset"))
                hook = make_experience_hook(self.options["hek"], top_k=int(self.options.get("hek_top_k", 5)),
                                            threshold=_optional_float(self.options.get("hek_threshold")),
                                            exclude_own_question=True) if self.options.get("hek") else None
                self._components[key] = (retriever, hook)
            return self._components[key]

    def agent_config(self, sampling_params: dict[str, Any]) -> AgentConfig:
        values = {k: v for k, v in self.options.items() if k not in _COMPONENT_OPTIONS + _LOOP_OPTIONS}
        values.setdefault("temperature", float(sampling_params.get("temperature", 1.0)))
        values.setdefault("top_p", float(sampling_params.get("top_p", 1.0)))
        return AgentConfig(**values)

    async def run(self, sampling_params: dict[str, Any], **row: Any) -> Any:
        """One episode for one data row: hiexp's agent on verl's servers; verl's ``AgentLoopOutput``."""
        example = row_example(row, self.options.get("task"))
        config = self.agent_config(sampling_params)
        retriever, hook = self._shared()
        request_id = uuid.uuid4().hex
        extra = {k: v for k, v in sampling_params.items() if k not in ("temperature", "top_p", "max_tokens", "logprobs")}
        generator = ServerManagerGenerator(self.server_manager, self.tokenizer, asyncio.get_running_loop(),
                                           request_id, extra)
        agent = SearchAgent(generator, retriever, config, hook)
        seed = int(row.get("seed", 0) or 0)
        number = self._next_sample(example.id)  # before any await: the samples of a question count in order
        (trajectory,) = await asyncio.get_running_loop().run_in_executor(
            self._executor(), lambda: agent.run_episodes([(example, number)], seed=seed))
        sample = trajectory_to_sample(trajectory, int(getattr(self.tokenizer, "eos_token_id", 0) or 0))
        prompt_ids, response_ids = sample["prompt_ids"], sample["completion_ids"]
        mask, logprobs = sample["env_mask"], sampling_logprobs(trajectory, len(response_ids))
        if self.prompt_length is not None and len(prompt_ids) > self.prompt_length:
            logger.warning("hiexp episode %s: prompt of %d tokens cut to verl's prompt_length %d (keeping its end; "
                           "a shorter experience block avoids it: lower hek_top_k)", trajectory.id,
                           len(prompt_ids), self.prompt_length)
            prompt_ids = prompt_ids[len(prompt_ids) - self.prompt_length:]
        if self.response_length is not None and len(response_ids) > self.response_length:
            logger.warning("hiexp episode %s: response of %d tokens cut to verl's response_length %d",
                           trajectory.id, len(response_ids), self.response_length)
            response_ids, mask = response_ids[:self.response_length], mask[:self.response_length]
            logprobs = logprobs[:self.response_length] if logprobs is not None else None
        values = {
            "prompt_ids": prompt_ids,
            "response_ids": response_ids,
            "response_mask": mask,
            "response_logprobs": logprobs,
            "reward_score": float(trajectory.rewards.get("reward", 0.0)),
            "num_turns": 1 + len([t for t in trajectory.turns if t.role != "prompt"]),
            "extra_fields": {"hiexp_trajectory_id": trajectory.id, "hiexp_searches": trajectory.num_searches,
                             "hiexp_finish": trajectory.finish, "hiexp_hek_version": trajectory.hek_version},
        }
        return make_output(values)


def make_output(values: dict[str, Any]) -> Any:
    """verl's ``AgentLoopOutput`` where verl is installed, else the same fields as a dict."""
    try:
        from verl.experimental.agent_loop.agent_loop import AgentLoopMetrics, AgentLoopOutput
    except ImportError:
        return {**values, "metrics": {}}
    return AgentLoopOutput(**values, metrics=AgentLoopMetrics())


def compute_score(data_source: str, solution_str: str, ground_truth: Any, extra_info: dict | None = None) -> float:
    """verl's custom reward function (``reward_model.custom_reward_function``): the answer in
    ``solution_str`` (either format's tags, or ``\\boxed{}``) scored against the gold answers with hiexp's
    metrics; ``extra_info["reward_metric"]`` picks em / cem / f1 (default em; math tasks: equivalence)."""
    from hiexp.scoring.extract import extract_answer

    if isinstance(ground_truth, dict):
        ground_truth = ground_truth.get("target", ground_truth)
    golds = [ground_truth] if isinstance(ground_truth, str) else list(ground_truth or [])
    extra = extra_info or {}
    answer = extract_answer(solution_str, "search_r1") or extract_answer(solution_str, "tool_call")
    task = "math" if extra.get("task") == "math" else "qa"
    return float(score_answer(answer, golds, task=task).get(extra.get("reward_metric", "em"), 0.0))


try:  # verl installed: the registered agent loop
    from verl.experimental.agent_loop.agent_loop import AgentLoopBase, register

    @register(AGENT_LOOP_NAME)
    class HiexpAgentLoop(HiexpVerlLoop, AgentLoopBase):
        """hiexp's episode as a verl agent loop (see the module docstring)."""

        def __init__(self, trainer_config: Any, server_manager: Any, tokenizer: Any, processor: Any = None,
                     *args: Any, hiexp: dict[str, Any] | None = None, **kwargs: Any):
            AgentLoopBase.__init__(self, trainer_config, server_manager, tokenizer, processor, *args, **kwargs)
            rollout = self.config.actor_rollout_ref.rollout
            self.setup(server_manager, tokenizer, hiexp, prompt_length=int(rollout.prompt_length),
                       response_length=int(rollout.response_length))

except ImportError:  # no verl here: HiexpVerlLoop is the testable core
    pass


def _optional_float(value: object) -> float | None:
    """An option that may be absent (None: the HEK's own default)."""
    return None if value is None else float(value)  # type: ignore[arg-type]
