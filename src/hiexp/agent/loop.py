"""The batched multi-turn search loop, token-in and token-out.

Every active episode generates in one ``generate`` call per turn; the search calls of that turn are answered
by one ``retriever.search`` call; finished episodes leave the batch and waiting ones take their place. With a
tokenizer the context of an episode is a list of token ids that only ever grows: the ids the policy sampled
are kept as sampled, each injected piece (passages, corrections, experience) is tokenised once on its own
and appended, and the next prompt is the concatenation. Text-only backends get the same loop on text.
"""

from __future__ import annotations

import inspect
import math
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from typing import Any

from hiexp.agent.config import AgentConfig
from hiexp.agent.formats import Action, AgentFormat, Span, make_format
from hiexp.agent.rules import AnswerCase, AnswerRule, anchored_query, rule_to_apply
from hiexp.contracts.example import Example
from hiexp.contracts.experience import ExperienceHook, Injection
from hiexp.contracts.generation import Generation, Generator, SamplingParams
from hiexp.contracts.passage import Passage, Retriever, render_passages
from hiexp.contracts.trajectory import Trajectory, Turn
from hiexp.io import stable_hash
from hiexp.scoring import extract_answer, score_answer
from hiexp.scoring.kinds import offered_options
from hiexp.search.abridge import abridge, search_terms

# (answer or None, gold answers, task) -> {"em", "cem", "f1", ...}: how an episode's answer is scored
Scorer = Callable[..., dict[str, float]]

CHARS_PER_TOKEN = 4  # estimate for text-only backends, which report no token ids
ANSWER_RESERVE = 16  # tokens a forced last turn needs at least for a short answer
SEEN_PASSAGE = "(shown above)"  # the text of a passage shown again, with AgentConfig.passages_seen = "title"


def episode_seed(base_seed: int, question_id: str, sample: int) -> int:
    """The seed of one (question, sample): independent of batch composition and of run order."""
    return int(stable_hash([int(base_seed), str(question_id), int(sample)]), 16) % (2**31 - 1)


@dataclass
class _Episode:
    example: Example
    sample: int
    seed: int
    traj: Trajectory
    ids: list[int] = field(default_factory=list)
    text: str = ""
    completion_tokens: int = 0
    injected_tokens: int = 0
    policy_turns: int = 0
    invalid: int = 0
    over_budget: int = 0
    fired_rules: set[str] = field(default_factory=set)  # the answer rules that already sent an answer back
    forcing: str | None = None  # the finish reason an episode would have had, while it gives its forced answer
    answer: str | None = None  # what the format parsed from the answering turn
    done: bool = False


class SearchAgent:
    """The search agent: a generator, a retriever, a format and an optional experience hook."""

    def __init__(self, generator: Generator, retriever: Retriever | None, config: AgentConfig | None = None,
                 hook: ExperienceHook | None = None, scorer: Scorer = score_answer):
        self.generator = generator
        self.retriever = retriever
        self.config = config or AgentConfig()
        self.hook = hook
        self.scorer = scorer
        self.tokenizer = getattr(generator, "tokenizer", None)
        self.token_mode = self.tokenizer is not None
        self.format: AgentFormat = make_format(self.config, self.tokenizer)
        self._encode_cache: dict[str, list[int]] = {}

    @property
    def _seeds_kwarg(self) -> bool:
        """Whether the generator takes one seed per prompt (read each call: training may swap in vLLM)."""
        try:
            return "seeds" in inspect.signature(self.generator.generate).parameters
        except (TypeError, ValueError):
            return False

    @property
    def model_id(self) -> str:
        return str(getattr(self.generator, "model_id", "unknown"))

    # --- public ---------------------------------------------------------------------------------------
    def run(self, examples: list[Example], samples: int = 1, seed: int | None = None,
            on_finish: Callable[[Trajectory], None] | None = None) -> list[Trajectory]:
        """Run ``samples`` episodes per example; trajectories come back in (example, sample) order.

        ``on_finish`` is called with each trajectory as soon as its episode ends (for incremental saving).
        """
        work = [(ex, s) for ex in examples for s in range(samples)]
        return self.run_episodes(work, seed=seed, on_finish=on_finish)

    def run_episodes(self, work: Iterable[tuple[Example, int]], seed: int | None = None,
                     on_finish: Callable[[Trajectory], None] | None = None) -> list[Trajectory]:
        """Run the given (example, sample index) episodes with continuous batching."""
        base = self.config.seed if seed is None else seed
        pending = deque(work)
        order = {(ex.id, s): i for i, (ex, s) in enumerate(pending)}
        results: list[Trajectory | None] = [None] * len(pending)
        active: list[_Episode] = []
        # No more episodes in flight than the backend has cache slots (llama.cpp ``parallel``): each
        # episode's next turn then finds its own history still cached, instead of re-reading it all. A
        # backend that decodes greedy requests one at a time gains nothing from more than one episode in
        # flight, and a single one never has its cache taken by another.
        in_flight = max(1, min(self.config.batch_size, getattr(self.generator, "slots", None) or self.config.batch_size))
        if self.config.temperature == 0 and getattr(self.generator, "serial_greedy", False):
            in_flight = 1
        while pending or active:
            room = in_flight - len(active)
            if room > 0 and pending:
                admitted = [pending.popleft() for _ in range(min(room, len(pending)))]
                active.extend(self._start([(ex, s, episode_seed(base, ex.id, s)) for ex, s in admitted]))
            self._step(active)
            still = []
            for episode in active:
                if episode.done:
                    traj = self._finalise(episode)
                    results[order[(episode.example.id, episode.sample)]] = traj
                    if on_finish is not None:
                        on_finish(traj)
                else:
                    still.append(episode)
            active = still
        return [t for t in results if t is not None]

    # --- token helpers --------------------------------------------------------------------------------
    def _encode(self, text: str, cache: bool = False) -> list[int]:
        if not self.token_mode or not text:
            return []
        if cache and text in self._encode_cache:
            return list(self._encode_cache[text])
        ids = list(self.tokenizer.encode(text, add_special_tokens=False))
        if cache:
            self._encode_cache[text] = ids
        return list(ids)

    def _count(self, text: str, ids: list[int]) -> int:
        return len(ids) if self.token_mode else math.ceil(len(text) / CHARS_PER_TOKEN)

    def _append(self, episode: _Episode, span: Span, completion: bool = True) -> int:
        """Tokenise one injected span once and append it to the context; returns its token count."""
        ids = self._encode(span.text, cache=span.role == "tool" and not span.meta)
        episode.traj.turns.append(Turn(role=span.role, text=span.text, token_ids=ids, meta=dict(span.meta)))
        episode.ids.extend(ids)
        episode.text += span.text
        n = self._count(span.text, ids)
        if completion:
            episode.completion_tokens += n
            episode.injected_tokens += n
        return n

    def _spans_tokens(self, spans: list[Span]) -> tuple[list[list[int]], int]:
        encoded = [self._encode(s.text, cache=s.role == "tool" and not s.meta) for s in spans]
        return encoded, sum(self._count(s.text, ids) for s, ids in zip(spans, encoded))

    # --- episode life ---------------------------------------------------------------------------------
    def _start(self, batch: list[tuple[Example, int, int]]) -> list[_Episode]:
        questions = [ex.question for ex, _, _ in batch]
        opening = self.config.first_search == "question" and self.retriever is not None
        injections = self.hook.for_questions(questions) if self.hook is not None else [Injection()] * len(batch)
        if self.hook is not None and self.format.experience_e1_at_start:
            injections = [_with_e1(a, b) for a, b in zip(injections, self.hook.for_queries(questions, questions=questions))]
        episodes = []
        hek_version = getattr(self.hook, "version", None) if self.hook is not None else None
        for (ex, sample, seed), injection in zip(batch, injections):
            traj = Trajectory(
                id=f"{ex.id}#{sample}", question_id=ex.id, sample=sample, format=self.config.format,
                model=self.model_id, question=ex.question, golden_answers=list(ex.golden_answers),
                hek_version=hek_version, seed=seed,
                metadata={"dataset": ex.metadata.get("dataset"), "task": ex.metadata.get("task", "qa"),
                          "method": "agent", "corrections": []},
            )
            episode = _Episode(example=ex, sample=sample, seed=seed, traj=traj)
            for span in self.format.prompt_spans(ex.question, injection.text, injection.meta, open_turn=not opening,
                                                 cases=injection.cases, cases_meta=injection.cases_meta,
                                                 replace_example=injection.replace_example):
                self._append(episode, span, completion=False)
            episodes.append(episode)
        if opening:
            self._open_with_question(episodes)
        return episodes

    def _open_with_question(self, episodes: list[_Episode]) -> None:
        """``first_search="question"``: every new episode starts with a search for its question."""
        questions = [e.example.question for e in episodes]
        results = self.retriever.search(questions, self.config.top_k)
        if self.hook is not None:
            injections = self.hook.for_queries(questions, questions=questions)
        else:
            injections = [Injection()] * len(questions)
        for episode, question, passages, injection in zip(episodes, questions, results, injections):
            self._append(episode, Span("tool", self.format.opening_search(question), {"opening_search": True}))
            self._observe(episode, question, list(passages), injection)

    def _generate(self, prompts: list[Any], params: SamplingParams, seeds: list[int]) -> list[Generation]:
        if self._seeds_kwarg:
            return self.generator.generate(prompts, params, seeds=seeds)
        params.seed = seeds[0] if len(seeds) == 1 else int(stable_hash(seeds), 16) % (2**31 - 1)
        return self.generator.generate(prompts, params)

    def _step(self, active: list[_Episode]) -> None:
        """One turn of every active episode: generate, parse, retrieve, inject."""
        cfg = self.config
        context = getattr(self.generator, "max_context", None) if self.token_mode else None
        live, remaining = [], []
        for episode in active:
            left = cfg.max_tokens - episode.completion_tokens
            if context:  # never ask the backend for more than the model's context holds
                left = min(left, int(context) - len(episode.ids))
            if left <= 0:
                self._end(episode, "max_tokens")
            else:
                live.append(episode)
                remaining.append(left)
        if not live:
            return
        cap = min(cfg.max_new_tokens, max(remaining))
        if context:
            cap = min(cap, min(int(context) - len(e.ids) for e in live))
        params = SamplingParams(max_new_tokens=cap, temperature=cfg.temperature,
                                top_p=cfg.top_p, stop=list(self.format.stop))
        prompts = [list(e.ids) if self.token_mode else e.text for e in live]
        seeds = [(e.seed + 1_000_003 * e.policy_turns) % (2**31 - 1) for e in live]
        generations = self._generate(prompts, params, seeds)

        searches: list[tuple[_Episode, str]] = []
        corrections: list[tuple[_Episode, str, str | None]] = []
        for episode, gen, budget in zip(live, generations, remaining):
            action = self._take(episode, gen, min(budget, cfg.max_new_tokens))
            if action is None:
                continue
            if action.kind == "search":
                searches.append((episode, action.query or ""))
            elif action.kind == "malformed":
                corrections.append((episode, action.error or "no_tag", action.query))

        if searches:
            queries = [q for _, q in searches]
            sent = [anchored_query(q, e.example.question) if cfg.anchor_first_query and e.traj.num_searches == 0
                    else q for e, q in searches]
            results = self.retriever.search(sent, cfg.top_k) if self.retriever is not None else [[] for _ in queries]
            if self.hook is not None:
                asked = [episode.example.question for episode, _ in searches]
                injections = self.hook.for_queries(queries, questions=asked)
            else:
                injections = [Injection()] * len(queries)
            for (episode, query), retrieval_query, passages, injection in zip(searches, sent, results, injections):
                self._observe(episode, query, list(passages), injection, retrieval_query)
        for episode, error, query in corrections:
            options = offered_options(episode.example.question) if error == "not_an_option" else None
            message = self.format.correction_message(error, query, options=options)
            spans = self.format.observation_spans(message, ended_turn=self._ended_turn(episode))
            for span in spans:
                span.meta["correction"] = error
            self._inject(episode, spans)

    def _take(self, episode: _Episode, gen: Generation, budget: int) -> Action | None:
        """Record the policy turn and decide what it asked for; None when the episode ended."""
        if gen.finish_reason == "error":  # the backend got no answer (its tries all failed): a failed episode
            episode.traj.metadata["error"] = gen.error or "the generator gave no answer"
            self._end(episode, "error")
            return None
        text, finish_reason = self._record_turn(episode, gen, budget)
        if episode.forcing is not None:  # the last turn: it can only complete the answer it was given
            self._complete_forced_answer(episode, text, finish_reason, gen.stop)
            return None
        action = self.format.parse(text, finish_reason, gen.stop)
        if action.kind == "answer":
            return self._take_answer(episode, action)
        return self._check_action(episode, action)

    def _record_turn(self, episode: _Episode, gen: Generation, budget: int) -> tuple[str, str]:
        """Append the generation, cut to this episode's own budget, as a policy turn; its text and finish."""
        ids = list(gen.token_ids)
        logprobs = list(gen.logprobs) if gen.logprobs is not None else None
        finish_reason = gen.finish_reason
        if self.token_mode:
            if len(ids) > budget:  # the batch shared one cap; keep this episode's own budget
                ids, finish_reason = ids[:budget], "length"
                logprobs = logprobs[:budget] if logprobs is not None else None
            text = self.tokenizer.decode(ids, skip_special_tokens=False)
        else:
            text = gen.text
            if math.ceil(len(text) / CHARS_PER_TOKEN) > budget:
                text, finish_reason = text[: budget * CHARS_PER_TOKEN], "length"
        episode.traj.turns.append(Turn(role="policy", text=text, token_ids=ids, logprobs=logprobs,
                                       meta={"finish_reason": finish_reason, "stop": gen.stop}))
        episode.ids.extend(ids)
        episode.text += text
        n = self._count(text, ids)
        episode.completion_tokens += n
        episode.traj.num_tokens += n
        episode.policy_turns += 1
        return text, finish_reason

    def _complete_forced_answer(self, episode: _Episode, text: str, finish_reason: str, stop: str | None) -> None:
        """End an episode that was given the answer opening: with its answer if the turn completed one."""
        action = self.format.parse(self.format.answer_start + text, finish_reason, stop)
        if action.kind == "answer":
            episode.traj.metadata["forced_answer"] = True
            episode.answer = action.answer
            self._end(episode, "answer")
        else:
            self._end(episode, episode.forcing)

    def _take_answer(self, episode: _Episode, action: Action) -> Action | None:
        """End the episode with its answer, unless an answer rule sends the answer back once."""
        rule = self._answer_rule(episode, action.answer) if episode.completion_tokens < self.config.max_tokens else None
        if rule is None:
            episode.answer = action.answer
            self._end(episode, "answer")
            return None
        episode.fired_rules.add(rule.error)
        quoted = action.answer if rule.quotes_answer else None
        self._note(episode, rule.error, quoted)
        return Action("malformed", query=quoted, error=rule.error)

    def _check_action(self, episode: _Episode, action: Action) -> Action | None:
        """A search or malformed turn against the budgets: the action to carry out, or None if the episode
        ended (or was given its forced answer turn)."""
        cfg = self.config
        if episode.completion_tokens >= cfg.max_tokens:
            self._end(episode, "max_tokens")
            return None
        if action.kind == "search" and episode.traj.num_searches >= cfg.max_turns:
            episode.over_budget += 1
            if episode.over_budget > 1:
                self._give_up(episode, "max_turns")
                return None
            self._note(episode, "search_budget", action.query)
            return Action("malformed", query=action.query, error="search_budget")
        if (action.kind == "search" and cfg.reject_repeated_queries
                and _query_key(action.query) in {_query_key(q) for q in episode.traj.queries}):
            action = Action("malformed", query=action.query, error="repeated_query")
        if action.kind == "malformed":
            episode.invalid += 1
            self._note(episode, action.error or "no_tag", action.query)
            if episode.invalid > cfg.max_invalid:
                self._give_up(episode, "invalid")
                return None
        if episode.policy_turns >= cfg.max_turns + cfg.max_invalid + 2:  # a hard stop, whatever happens
            self._give_up(episode, "max_turns")
            return None
        return action

    def _answer_rule(self, episode: _Episode, answer: str | None) -> AnswerRule | None:
        """The answer rule that sends this answer back, if any (see ``hiexp.agent.rules``)."""
        case = AnswerCase(
            question=episode.example.question, answer=answer, searches=episode.traj.num_searches,
            has_retriever=self.retriever is not None, format_searches=bool(self.format.searches),
            format_checks_options=bool(self.format.checks_options),
        )
        return rule_to_apply(self.config, case, episode.fired_rules)

    def _give_up(self, episode: _Episode, finish: str) -> None:
        """End an episode that ran out of searches or retries, or first (``force_answer``) give it one turn
        that opens the answer for it."""
        if not self.config.force_answer or episode.forcing is not None:
            self._end(episode, finish)
            return
        episode.forcing = finish
        self._note(episode, "final_answer", None)
        spans = self.format.observation_spans(self.format.correction_message("final_answer"),
                                              ended_turn=self._ended_turn(episode), final=True)
        for span in spans:
            span.meta["correction"] = "final_answer"
        encoded, total = self._spans_tokens(spans)
        if episode.completion_tokens + total + ANSWER_RESERVE > self.config.max_tokens:
            self._end(episode, finish)  # not even room for a short answer
            return
        self._inject(episode, spans)

    def _note(self, episode: _Episode, error: str, query: str | None) -> None:
        record = {"turn": len(episode.traj.turns) - 1, "error": error}
        if query is not None:
            record["query"] = query[:200]
        episode.traj.metadata["corrections"].append(record)

    def _ended_turn(self, episode: _Episode) -> bool:
        turn_end = getattr(self.format, "turn_end", None)
        return bool(turn_end) and episode.traj.turns[-1].text.rstrip().endswith(turn_end)

    def _observe(self, episode: _Episode, query: str, passages: list[Passage], injection: Injection,
                 retrieval_query: str | None = None) -> None:
        shown = self._as_shown(passages, retrieval_query or query, episode.example.question,
                               seen={pid for ids in episode.traj.passage_ids for pid in ids})
        episode.traj.queries.append(query)
        episode.traj.passage_ids.append([p.id for p in passages])
        episode.traj.num_searches += 1
        meta = dict(injection.meta)
        meta["query"] = query
        spans = self.format.observation_spans(render_passages(shown), injection.text, meta,
                                              ended_turn=self._ended_turn(episode))
        for span in spans:
            if span.role == "tool":
                span.meta = {"query": query}
                if retrieval_query not in (None, query):
                    span.meta["retrieval_query"] = retrieval_query
        self._inject(episode, spans)

    def _as_shown(self, passages: list[Passage], query: str, question: str,
                  seen: frozenset[str] | set[str] = frozenset()) -> list[Passage]:
        """The passages as the model reads them: cut to ``passage_words`` around the search terms, and those
        in ``seen`` (shown earlier in the episode) reduced to a pointer when ``passages_seen`` is ``title``."""
        cfg = self.config
        if not cfg.passage_words and not (seen and cfg.passages_seen == "title"):
            return passages
        terms = search_terms(query, question) if cfg.passage_words else frozenset()
        shown = []
        for p in passages:
            if p.id in seen and cfg.passages_seen == "title":
                shown.append(replace(p, text=SEEN_PASSAGE))
            elif cfg.passage_words:
                shown.append(replace(p, text=abridge(p.text, terms, cfg.passage_words)))
            else:
                shown.append(p)
        return shown

    def _inject(self, episode: _Episode, spans: list[Span]) -> None:
        encoded, total = self._spans_tokens(spans)
        if episode.completion_tokens + total >= self.config.max_tokens:
            if episode.forcing is None and self.config.force_answer:
                self._give_up(episode, "max_tokens")  # no room for these passages; maybe for an answer
            else:
                self._end(episode, "max_tokens")
            return
        for span, ids in zip(spans, encoded):
            episode.traj.turns.append(Turn(role=span.role, text=span.text, token_ids=ids, meta=dict(span.meta)))
            episode.ids.extend(ids)
            episode.text += span.text
            n = self._count(span.text, ids)
            episode.completion_tokens += n
            episode.injected_tokens += n

    def _end(self, episode: _Episode, finish: str) -> None:
        episode.traj.finish = finish
        episode.done = True

    def _finalise(self, episode: _Episode) -> Trajectory:
        traj = episode.traj
        if traj.finish == "answer":
            traj.answer = episode.answer
        traj.rewards = score_and_reward(traj.answer, traj.golden_answers, traj.metadata.get("task") or "qa",
                                        self.config.reward_metric, self.scorer)
        traj.metadata["completion_tokens"] = episode.completion_tokens
        traj.metadata["injected_tokens"] = episode.injected_tokens
        traj.metadata["policy_turns"] = episode.policy_turns
        traj.created = time.time()
        return traj

    # --- baselines ------------------------------------------------------------------------------------
    def run_baseline(self, examples: list[Example], method: str, seed: int | None = None,
                     on_finish: Callable[[Trajectory], None] | None = None, sample: int = 0) -> list[Trajectory]:
        """One answer per question without the loop: ``rag`` (top-k passages of the question) or
        ``closed-book`` (no passages). Recorded as trajectories so that scoring and saving are shared."""
        if method not in ("rag", "closed-book"):
            raise ValueError(f"unknown baseline {method!r}")
        cfg = self.config
        base = cfg.seed if seed is None else seed
        out = []
        for start in range(0, len(examples), cfg.batch_size):
            batch = examples[start:start + cfg.batch_size]
            passages: list[list[Passage]] = [[] for _ in batch]
            if method == "rag":
                if self.retriever is None:
                    raise ValueError("the rag baseline needs a retriever")
                passages = [list(p) for p in self.retriever.search([ex.question for ex in batch], cfg.top_k)]
            texts = [self.format.baseline_prompt(
                ex.question, render_passages(self._as_shown(p, ex.question, ex.question)) if method == "rag" else None)
                for ex, p in zip(batch, passages)]
            prompt_ids = [self._encode(t) for t in texts]
            params = SamplingParams(max_new_tokens=cfg.max_new_tokens, temperature=cfg.temperature, top_p=cfg.top_p,
                                    stop=self.format.baseline_stop())
            seeds = [episode_seed(base, ex.id, sample) for ex in batch]
            gens = self._generate(prompt_ids if self.token_mode else texts, params, seeds)
            for ex, p, text, ids, gen, s in zip(batch, passages, texts, prompt_ids, gens, seeds):
                out_text = self.tokenizer.decode(gen.token_ids, skip_special_tokens=False) if self.token_mode else gen.text
                traj = Trajectory(
                    id=f"{ex.id}#{sample}", question_id=ex.id, sample=sample, format=cfg.format, model=self.model_id,
                    question=ex.question, golden_answers=list(ex.golden_answers), seed=s,
                    turns=[Turn("prompt", text, ids), Turn("policy", out_text, list(gen.token_ids),
                                                           list(gen.logprobs) if gen.logprobs is not None else None,
                                                           {"finish_reason": gen.finish_reason, "stop": gen.stop})],
                    queries=[ex.question] if method == "rag" else [],
                    passage_ids=[[x.id for x in p]] if method == "rag" else [],
                    num_searches=1 if method == "rag" else 0,
                    metadata={"dataset": ex.metadata.get("dataset"), "task": ex.metadata.get("task", "qa"),
                              "method": method, "corrections": []},
                )
                traj.num_tokens = self._count(out_text, list(gen.token_ids))
                traj.answer = extract_answer(out_text, cfg.format)
                if traj.answer is None:  # a one-shot baseline without the tag: its bare reply is the answer
                    traj.answer = bare_answer(out_text)
                    traj.metadata["answer_without_tag"] = traj.answer is not None
                traj.finish = "answer" if traj.answer else "invalid"
                if gen.finish_reason == "error":
                    traj.finish, traj.metadata["error"] = "error", gen.error or "the generator gave no answer"
                traj.rewards = score_and_reward(traj.answer, traj.golden_answers, traj.metadata["task"] or "qa",
                                                cfg.reward_metric, self.scorer)
                traj.metadata["completion_tokens"] = traj.num_tokens
                if on_finish is not None:
                    on_finish(traj)
                out.append(traj)
        return out


def _with_e1(start: Injection, e1: Injection) -> Injection:
    """The start-of-episode experience with the E1 entry matched on the question itself (a task without
    searches, such as math, has no other moment for E1)."""
    cases = {"cases": start.cases, "cases_meta": start.cases_meta, "replace_example": start.replace_example}
    if not e1.text:
        return Injection(start.text, {**start.meta, "e1": e1.meta} if e1.meta else dict(start.meta), **cases)
    text = "\n".join(t for t in (start.text, e1.text) if t)
    meta = {**start.meta, "entry_ids": [*start.meta.get("entry_ids", []), *e1.meta.get("entry_ids", [])],
            "e1": e1.meta}
    return Injection(text, meta, **cases)


def _query_key(query: str | None) -> str:
    """A query as compared for repeats: lower case, runs of white space folded."""
    return " ".join((query or "").lower().split())


def bare_answer(text: str, max_chars: int = 200) -> str | None:
    """The first non-empty line of a reply, without chat markers: the fallback answer of the one-shot
    baselines when the model ignored the answer tag (so that they are not scored zero for format alone)."""
    for marker in ("<|im_end|>", "<|endoftext|>"):
        text = text.replace(marker, "\n")
    for line in text.splitlines():
        line = line.strip()
        if line:
            return line[:max_chars]
    return None


def score_and_reward(answer: str | None, golden: list[str], task: str, metric: str,
                     scorer: Scorer = score_answer) -> dict[str, float]:
    """The scorer's EM / CEM / F1 plus ``reward`` = the configured metric."""
    scores = {k: float(v) for k, v in scorer(answer, golden, task=task).items()}
    scores["reward"] = scores.get(metric, 0.0)
    return scores
