"""``hiexp distill``, ``build``, ``show``, ``usefulness`` and ``update``: from trajectories to a HEK, a look
at it, what its entries did, and its next version."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from hiexp.cli.agent import make_config
from hiexp.cli.checks import finite

if TYPE_CHECKING:
    from hiexp.experience.build import BuildConfig
    from hiexp.experience.hek import HEK


def _load_model(spec: str, what: str, backend: str = "auto"):
    """A generator for the reflector or summariser: a preset, a local dir/.gguf, a hub id, or a URL."""
    from hiexp.components import make_generator
    from hiexp.progress import console

    with console.status(f"loading {what} {spec}"):
        return make_generator(spec, backend)


def _floats(text: str, name: str) -> list[float]:
    from hiexp.errors import HiexpError

    try:
        values = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise HiexpError(f"--{name}: expected comma-separated numbers such as 1.2,1.5, got {text!r}") from None
    if len(values) == 1:
        values = values * 2
    if len(values) != 2 or any(v <= 0 for v in values):
        raise HiexpError(f"--{name}: give two positive values (E1->E2, E2->E3), got {text!r}")
    return values


def distill_command(
    trajectories: Annotated[list[Path], typer.Argument(metavar="TRAJECTORIES...",
                                                       help="Trajectory JSONL files (hiexp rollout output).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="E1 entries JSONL to write or resume; status per "
                                                          "group goes to <out>.groups.jsonl.")],
    reflector: Annotated[str, typer.Option(help="Reflector model: a preset (default = the policy model, "
                                                "self-distillation), a local dir or .gguf, or an "
                                                "http(s)://host:port/v1 URL of an OpenAI-compatible server.")]
    = "default",
    threshold: Annotated[float, typer.Option(callback=finite, help="A trajectory succeeds when its reward is >= this "
                                                  "(with --reward-key f1, for example 0.5).")] = 1.0,
    reward_key: Annotated[str, typer.Option(help="Reward that decides success: em, cem (an answer that contains "
                                                 "a gold answer), f1 or reward.")] = "cem",
    include_uniform: Annotated[bool, typer.Option("--include-uniform", help="Also reflect on questions whose "
                                                  "attempts all succeeded or all failed.")] = False,
    max_entries: Annotated[int, typer.Option(min=1, help="Entries asked for per question.")] = 3,
    max_new_tokens: Annotated[int, typer.Option(min=16, help="Token budget of one reflection.")] = 384,
    max_retries: Annotated[int, typer.Option(min=0, help="Retries after an unreadable reply (the parse "
                                                         "error is shown to the model).")] = 2,
    batch_size: Annotated[int, typer.Option(min=1, help="Questions sent to the reflector at once "
                                                        "(concurrent requests over HTTP).")] = 4,
    seed: Annotated[int, typer.Option(help="Sampling seed.")] = 0,
    backend: Annotated[str, typer.Option(help="Generator backend: auto (llama.cpp for GGUF models when installed, "
                                              "openai for URLs, else transformers), transformers, openai or llamacpp.")]
    = "auto",
    form: Annotated[str, typer.Option(help="What the reflector writes: free (advice in its own words, the paper's "
                                           "form, for a strong reflector) or checked (a form of fields the "
                                           "trajectories verify; the entry is composed from them, for a small "
                                           "one).")] = "free",
) -> None:
    """Contrastive distillation: E1 experience from successful vs failed attempts at the same question."""
    from hiexp.experience.distill import DistillConfig, distill, load_trajectories

    config = DistillConfig(reward_key=reward_key, threshold=threshold, include_uniform=include_uniform,
                           max_entries=max_entries, max_new_tokens=max_new_tokens, max_retries=max_retries,
                           batch_size=batch_size, seed=seed, form=form)
    if not load_trajectories(trajectories, reward_key):  # fail on bad input before loading a model
        from hiexp.errors import HiexpError

        raise HiexpError(f"no trajectories in {', '.join(map(str, trajectories))}: nothing to distill")
    generator = _load_model(reflector, "reflector", backend)
    from hiexp.io import exclusive_output

    with exclusive_output(out, "hiexp distill", inputs=trajectories):  # a second distill into the same file stops at once
        summary = distill(trajectories, out, generator, config)
    typer.echo(summary.render())
    typer.echo(f"E1 entries: {out}")
    status_file = f"{out.name[:-6] if out.name.endswith('.jsonl') else out.name}.groups.jsonl"
    if summary.all_failed:
        from hiexp.errors import HiexpError

        raise HiexpError(f"every one of the {summary.groups_failed} groups failed, no E1 entry was written "
                         f"(reasons in {status_file}); run the same command again to retry them")
    if summary.groups_failed:
        typer.echo(f"{summary.groups_failed} groups failed (reasons in {status_file}); run the same command again "
                   "to retry them")


def build_command(
    e1: Annotated[list[Path], typer.Argument(metavar="E1...", help="E1 entries JSONL files (hiexp distill output); "
                                                                    "with --cases-only, rollout trajectory files.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="HEK directory to write: new, empty or an earlier HEK "
                                                          "(replaced atomically); anything else is refused.")],
    summarizer: Annotated[str, typer.Option(help="Model that summarises clusters: a preset, a local dir or "
                                                 ".gguf, or an http(s)://host:port/v1 URL.")] = "default",
    embedder: Annotated[str, typer.Option(help="Embedding model: default (all-MiniLM-L6-v2, shipped), e5 "
                                               "(intfloat/multilingual-e5-base), or a local directory.")]
    = "default",
    thresholds: Annotated[str, typer.Option(help="Ward cut heights for E1->E2 and E2->E3 (0-2 for unit "
                                                 "vectors; larger = fewer, bigger clusters).")] = "1.2,1.5",
    clusters: Annotated[str | None, typer.Option(help="Target numbers of clusters N,M instead of thresholds "
                                                      "(use 0 to keep a level's threshold).")] = None,
    exact_max: Annotated[int, typer.Option(min=2, help="Exact Ward up to this many entries; beyond it k-means "
                                                       "centroids + weighted Ward (linear memory).")] = 5000,
    strict: Annotated[bool, typer.Option("--strict", help="Fail when a cluster summary cannot be read, instead "
                                                          "of using the cluster's central member.")] = False,
    skip_bad: Annotated[bool, typer.Option("--skip-bad", help="Skip malformed E1 lines with a warning.")] = False,
    batch_size: Annotated[int, typer.Option(min=1, help="Clusters summarised at once.")] = 4,
    description: Annotated[str, typer.Option(help="A sentence for the manifest: what the HEK was built from.")] = "",
    backend: Annotated[str, typer.Option(help="Generator backend: auto (llama.cpp for GGUF models when installed, "
                                              "openai for URLs, else transformers), transformers, openai or llamacpp.")]
    = "auto",
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace --out whole even if it is not a HEK.")]
    = False,
    e1_fire_rate: Annotated[float, typer.Option(min=0.0, max=1.0, help="Share of the training searches that "
                                                "should receive an E1 entry: the E1 threshold is calibrated to it "
                                                "on the rollouts the E1 came from and recorded in the manifest "
                                                "(0: no calibration; retrieval then uses 0.8).")] = 0.25,
    cases_only: Annotated[bool, typer.Option("--cases-only", help="Make a HEK of worked cases alone from rollouts "
                                                                  "(the verified successes; no model call).")] = False,
    cases_per_episode: Annotated[int, typer.Option(min=0, max=16, help="With --cases-only: cases the HEK "
                                                                       "recommends showing per episode.")] = 2,
    case_placement: Annotated[str, typer.Option(help="With --cases-only: replace the fixed worked example, or "
                                                     "beside it.")] = "replace",
    case_reward: Annotated[str, typer.Option(help="With --cases-only: the reward that verifies a success (em, "
                                                  "cem, f1, or the rollouts' reward key); it must reach 1.")] = "em",
) -> None:
    """Cluster E1 entries (Ward) and summarise clusters into E2 and E3: write the HEK directory. With
    --cases-only, keep the verified successes of rollouts as worked cases instead."""
    from hiexp.experience.build import BuildConfig, build_hek
    from hiexp.experience.hek import is_hek_dir
    from hiexp.experience.summarize import SummarizeConfig
    from hiexp.io import check_output_dir, exclusive_output

    check_output_dir(out, is_hek_dir, overwrite, what="HEK directory")  # before any work
    if cases_only:
        _build_cases(e1, out, embedder, cases_per_episode, case_placement, case_reward, description, overwrite)
        return
    config = BuildConfig(thresholds=tuple(_floats(thresholds, "thresholds")), n_clusters=_cluster_counts(clusters),
                         exact_max=exact_max, summarize=SummarizeConfig(strict=strict, batch_size=batch_size),
                         skip_bad=skip_bad, description=description, e1_fire_rate=e1_fire_rate or None)
    _check_e1(e1, config)
    embedding_model, generator = _build_models(embedder, summarizer, backend)
    with exclusive_output(out, "hiexp build"):
        hek = build_hek(e1, out, embedding_model, generator, config, overwrite=overwrite)
    _report_build(hek, out)


def _cluster_counts(clusters: str | None) -> tuple[int | None, int | None] | None:
    """``--clusters N,M`` as target counts per level (0: that level keeps its threshold), None when not given;
    a bad value fails before any model loads."""
    from hiexp.errors import HiexpError

    if not clusters:
        return None
    try:
        parsed = [int(v) for v in clusters.split(",")]
    except ValueError:
        raise HiexpError(f"--clusters: expected two integers such as 20,5, got {clusters!r}") from None
    if len(parsed) != 2 or any(v < 0 for v in parsed):
        raise HiexpError(f"--clusters: give two non-negative integers (E1->E2, E2->E3), got {clusters!r}")
    return tuple(v or None for v in parsed)


def _check_e1(e1: list[Path], config: BuildConfig) -> None:
    """Fail on E1 files that hold no entry before any model loads."""
    from hiexp.errors import HiexpError
    from hiexp.experience.build import read_e1

    if not read_e1(e1, config.skip_bad):
        raise HiexpError(f"no E1 entries in {', '.join(map(str, e1))}: nothing to build (see the .groups.jsonl "
                         "status file of the distill run)")


def _build_models(embedder: str, summarizer: str, backend: str):
    """The embedder and the summariser of a build, each under its own progress line."""
    from hiexp.progress import console
    from hiexp.search.embed import load_embedder

    with console.status(f"loading embedder {embedder}"):
        embedding_model = load_embedder(embedder)
    return embedding_model, _load_model(summarizer, "summariser", backend)


def _report_build(hek: HEK, out: Path) -> None:
    """The top of the new tree and its size per level."""
    from hiexp.experience.show import tree
    from hiexp.progress import console

    console.print(tree(hek, max_children=5))
    counts_now = hek.counts()
    typer.echo(f"HEK {hek.version}: {counts_now['E1']} E1, {counts_now['E2']} E2, {counts_now['E3']} E3 -> {out}")


def _build_cases(rollouts: list[Path], out: Path, embedder: str, per_episode: int, placement: str, reward_key: str,
                 description: str, overwrite: bool) -> None:
    from hiexp.experience.build import build_case_hek
    from hiexp.experience.cases import CaseConfig
    from hiexp.experience.retrieve import check_case_placement
    from hiexp.io import exclusive_output
    from hiexp.progress import console
    from hiexp.search.embed import load_embedder

    check_case_placement(placement)  # before the embedder loads
    with console.status(f"loading embedder {embedder}"):
        embedding_model = load_embedder(embedder)
    with exclusive_output(out, "hiexp build"):
        hek = build_case_hek(rollouts, out, embedding_model, CaseConfig(reward_key=reward_key), per_episode,
                             placement, description, overwrite=overwrite)
    typer.echo(f"HEK {hek.version}: {len(hek.entries)} cases -> {out}")


def show_command(
    hek_dir: Annotated[Path, typer.Argument(metavar="HEK", help="HEK directory (hiexp build output).")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the tree (or the entry) as JSON.")] = False,
    entry: Annotated[str | None, typer.Option("--entry", help="Show one entry with its sources, parent and "
                                                              "children.")] = None,
    max_children: Annotated[int | None, typer.Option(min=1, help="Children shown per node (all by default).")]
    = None,
    usefulness: Annotated[Path | None, typer.Option(help="Usefulness table to show beside the entries (by "
                                                         "default the HEK's own usefulness.json, if any).")]
    = None,
) -> None:
    """Print a HEK: the tree E3 -> E2 -> E1 with counts and titles, or one entry; with usage and usefulness
    where a usefulness table exists."""
    from rich.console import Console

    from hiexp.experience.hek import HEK, resolve_hek_dir
    from hiexp.experience.show import entry_json, print_entry, tree, tree_json
    from hiexp.experience.usefulness import load_usefulness

    hek = HEK.load(hek_dir)
    table = load_usefulness(usefulness or resolve_hek_dir(hek_dir))
    if entry is not None:
        if as_json:
            typer.echo(json.dumps(entry_json(hek, entry, table), indent=2, ensure_ascii=False))
        else:
            print_entry(hek, entry, Console(), table)
        return
    if as_json:
        typer.echo(json.dumps(tree_json(hek, table), indent=2, ensure_ascii=False))
    else:
        Console().print(tree(hek, max_children=max_children, usefulness=table))


def usefulness_command(
    hek_dir: Annotated[Path, typer.Argument(metavar="HEK", help="HEK directory (or a shipped name with --out).")],
    trajectories: Annotated[list[Path], typer.Argument(metavar="TRAJECTORIES...", help="Trajectory files of "
                                                       "episodes run with this HEK, and runs without it on the "
                                                       "same questions (hiexp eval, rollout or train output).")],
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Where to write the table (default: "
                                                                 "usefulness.json inside the HEK directory).")]
    = None,
    reward_key: Annotated[str, typer.Option(help="Reward compared: em, cem, f1 or reward.")] = "cem",
    top: Annotated[int, typer.Option(min=0, help="Most helpful and most harmful entries to print.")] = 5,
) -> None:
    """Usage and usefulness of every entry: how often it was injected, and the reward of the episodes that saw
    it against same-question episodes that did not."""
    from hiexp.errors import HiexpError
    from hiexp.experience.hek import HEK, is_shipped_name
    from hiexp.experience.show import usefulness_text
    from hiexp.experience.usefulness import (
        REWARD_KEYS,
        USEFULNESS_FILE,
        check_usefulness_output,
        unique_files,
        usefulness_from_files,
    )
    from hiexp.io import exclusive_output

    if reward_key not in REWARD_KEYS:
        raise HiexpError(f"unknown --reward-key {reward_key!r}; choose one of {', '.join(REWARD_KEYS)}")
    hek = HEK.load(hek_dir)
    if out is None:
        if is_shipped_name(hek_dir):
            raise HiexpError(f"the shipped HEK {hek_dir!r} is read-only: give --out FILE")
        out = Path(hek_dir) / USEFULNESS_FILE
    check_usefulness_output(out)
    with exclusive_output(out, "hiexp usefulness", inputs=trajectories, allow_in_hek=(USEFULNESS_FILE,)):  # the whole computation: a second writer waits or stops
        table = usefulness_from_files(unique_files(trajectories), reward_key)
        if table.episodes == 0:
            raise HiexpError(f"no episode in {', '.join(map(str, trajectories))} has a {reward_key!r} reward (are "
                             "these trajectory files of hiexp eval, rollout or train?); nothing was written")
        table.hek_version = hek.version
        known = {e.id for e in hek.entries}
        if not set(table.entries) & known:
            raise HiexpError(f"none of the {table.episodes} episodes saw an entry of HEK {hek.version} (runs of "
                             "another HEK, or without one?); nothing was written")
        unknown = sorted(set(table.entries) - known)
        table.save(out)
    typer.echo(f"{table.episodes} episodes of {table.questions} questions; {len(set(table.entries) & known)} of "
               f"{len(known)} entries were injected" + (f" ({len(unknown)} ids are not in this HEK)" if unknown else ""))
    ranked = sorted((table.entries[i].effect, i) for i in set(table.entries) & known)
    for label, picks in (("most helpful", ranked[::-1][:top]), ("most harmful", ranked[:top])):
        shown = [(e, i) for e, i in picks if (e > 0 if label == "most helpful" else e < 0)]
        if shown:
            typer.echo(f"{label}:")
            for _, entry_id in shown:
                typer.echo(f"  {entry_id} {hek.get(entry_id).title[:70]}: {usefulness_text(table.entries[entry_id])}")
    typer.echo(f"usefulness: {out}")


def update_command(
    hek_dir: Annotated[Path, typer.Argument(metavar="HEK", help="HEK directory to update (it is only read).")],
    trajectories: Annotated[list[Path], typer.Argument(metavar="NEW_TRAJECTORIES...", help="Trajectory files "
                                                       "(rollouts) to distil new experience from.")],
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Directory of the new version (default: beside "
                                                                 "the HEK, named HEK-<key>).")] = None,
    reflector: Annotated[str, typer.Option(help="Reflector model: a preset, a local dir or .gguf, or an "
                                                "http(s)://host:port/v1 URL.")] = "default",
    summarizer: Annotated[str | None, typer.Option(help="Summariser of changed clusters (default: the "
                                                        "reflector).")] = None,
    embedder: Annotated[str | None, typer.Option(help="Embedding model (default: the one the HEK was built "
                                                      "with).")] = None,
    reward_key: Annotated[str, typer.Option(help="Reward that decides success: em, cem, f1 or reward.")] = "cem",
    threshold: Annotated[float, typer.Option(callback=finite, help="A trajectory succeeds when its reward is >= "
                                                                   "this.")] = 1.0,
    dedup_threshold: Annotated[float, typer.Option(help="A new E1 title at least this close (cosine) to an "
                                                        "existing one is merged into it.")] = 0.9,
    recluster_fraction: Annotated[float, typer.Option(help="Re-cluster every level when added + evicted E1 "
                                                           "entries exceed this share of the E1 level.")] = 0.3,
    evict: Annotated[bool, typer.Option("--evict/--no-evict", help="Evict entries the usefulness of these "
                                                                   "trajectories marks harmful.")] = True,
    min_episodes: Annotated[int, typer.Option(min=1, help="Episodes an entry must appear in before it can be "
                                                          "evicted.")] = 3,
    backend: Annotated[str, typer.Option(help="Generator backend: auto, transformers, openai or llamacpp.")]
    = "auto",
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace --out whole even if it is not a HEK.")]
    = False,
) -> None:
    """Add the experience of new trajectories to a HEK: distil new contrastive groups, merge duplicates, place
    new entries, re-summarise changed clusters, evict harmful entries; write a new version."""
    from hiexp.errors import HiexpError
    from hiexp.experience.distill import DistillConfig, load_trajectories
    from hiexp.experience.hek import HEK
    from hiexp.experience.update import UpdateConfig, update_from_trajectories
    from hiexp.progress import console
    from hiexp.search.embed import load_embedder

    # bad input and bad settings fail before any model loads
    config = UpdateConfig(dedup_threshold=dedup_threshold, recluster_fraction=recluster_fraction,
                          evict_harmful=evict, min_episodes=min_episodes)
    distill_config = DistillConfig(reward_key=reward_key, threshold=threshold)
    hek = HEK.load(hek_dir)
    if not load_trajectories(trajectories, reward_key):
        raise HiexpError(f"no trajectories in {', '.join(map(str, trajectories))}: nothing to update with")
    name = embedder or hek.embedder_name or "default"
    with console.status(f"loading embedder {name}"):
        embedding_model = load_embedder(name)
    built_with = hek.embedder_name
    if embedder and built_with and str(getattr(embedding_model, "model_id", embedder)) != built_with:
        raise HiexpError(f"--embedder {embedder} is not the embedder this HEK was built with ({built_with}): their "
                         "vectors cannot be compared; leave --embedder out")
    generator = _load_model(reflector, "reflector", backend)
    summary_model = _load_model(summarizer, "summariser", backend) if summarizer else None
    path, report = update_from_trajectories(
        hek_dir, trajectories, generator, embedding_model, summary_model, out, config, distill_config,
        overwrite=overwrite)
    typer.echo(report.render())
    typer.echo(f"HEK {HEK.load(path).version} (parent {hek.version}) -> {path}")


def curate_command(
    hek_dir: Annotated[Path, typer.Argument(metavar="HEK", help="HEK directory (or a shipped name) to curate.")],
    rollouts: Annotated[list[Path], typer.Argument(metavar="ROLLOUTS...", help="Training rollouts: the questions "
                                                                             "with both right and wrong answers are replayed.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Curated HEK directory to write (new, empty or an "
                                                          "earlier HEK); its curation.jsonl log makes a re-run resume.")],
    questions_per_candidate: Annotated[int, typer.Option(min=1, help="Contested questions each candidate is "
                                                                    "replayed on (its most similar ones).")] = 4,
    max_candidates: Annotated[int | None, typer.Option(min=1, help="Screen at most this many candidates; the "
                                                                   "rest are kept unscreened.")] = None,
    keep: Annotated[str, typer.Option(help="helps (keep a candidate that raised the reward) or not-hurts (also "
                                           "keep one that changed nothing); one that lowered it is evicted.")] = "helps",
    reward_key: Annotated[str, typer.Option(help="Reward compared: em, cem or f1.")] = "cem",
    model: Annotated[str, typer.Option(help="Policy model that replays (a preset, a local dir or .gguf, or an "
                                            "http(s)://host:port/v1 URL).")] = "default",
    backend: Annotated[str, typer.Option(help="Generator backend: auto, transformers, openai or llamacpp.")] = "auto",
    index: Annotated[str | None, typer.Option(help="Retriever (default: each question's dataset corpus).")] = None,
    batch_size: Annotated[int, typer.Option(min=1, help="Episodes generated together.")] = 8,
    case_placement: Annotated[str | None, typer.Option(help="How a case candidate is shown: replace the fixed "
                                                            "worked example, or beside it (default: what the HEK "
                                                            "recommends, else replace).")] = None,
) -> None:
    """Keep only what measurably helps: replay each case or entry on contested training questions, with and
    without it; evict what lowers the reward, record the counts in usefulness.json."""
    from hiexp.agent.loop import SearchAgent
    from hiexp.components import make_generator, make_retriever
    from hiexp.errors import HiexpError
    from hiexp.experience.build import read_rollouts
    from hiexp.experience.curate import KEEP_RULES, CurationConfig, contested_questions, curate, screen_spread, without
    from hiexp.experience.hek import HEK, is_hek_dir
    from hiexp.experience.retrieve import check_case_placement
    from hiexp.experience.usefulness import USEFULNESS_FILE
    from hiexp.io import check_output_dir, exclusive_output
    from hiexp.progress import console
    from hiexp.search.embed import load_embedder

    if keep not in KEEP_RULES:
        raise HiexpError(f"--keep {keep!r}; choose from {', '.join(KEEP_RULES)}")
    if case_placement is not None:
        check_case_placement(case_placement)  # before any model loads
    check_output_dir(out, is_hek_dir, what="HEK directory")
    hek = HEK.load(hek_dir)
    contested = contested_questions(read_rollouts(rollouts), reward_key)
    if not contested:
        raise HiexpError(f"no question in {', '.join(map(str, rollouts))} has both a right and a wrong rollout "
                         f"({reward_key}): nothing to replay on (sample several rollouts per question)")
    embedder = load_embedder(hek.embedder_name or "default")
    generator = make_generator(model, backend)
    datasets = {e.metadata.get("dataset") for e in contested}
    if index is None and len(datasets) != 1:
        raise HiexpError(f"the rollouts come from {len(datasets)} datasets; give one retriever with --index")
    retriever = make_retriever(index, dataset=next(iter(datasets)))

    def make_agent(hook):
        return SearchAgent(generator, retriever, make_config(temperature=0.0, batch_size=batch_size), hook)

    config = CurationConfig(questions_per_candidate=questions_per_candidate, max_candidates=max_candidates,
                            reward_key=reward_key, keep=keep, case_placement=case_placement)
    with exclusive_output(out, "hiexp curate"):
        work = out.parent / f".{out.name}.curation"
        table, kept, evicted = curate(hek, embedder, make_agent, contested, work, config,
                                      progress=lambda line: console.print(line))
        curated = without(hek, evicted, description=f"{(hek.manifest or {}).get('description', '')} "
                                                    f"(curated: {len(evicted)} evicted)".strip())
        table.hek_version = curated.version
        curated.save(out, overwrite=is_hek_dir(out),
                     extra_files={USEFULNESS_FILE: (json.dumps(table.to_dict(), indent=2) + "\n").encode()})
    typer.echo(f"screened {len(table.entries)} candidates on {len(contested)} contested questions: kept "
               f"{len(kept)}, evicted {len(evicted)} -> {out} (HEK {curated.version}; the replays: {work})")
    typer.echo(screen_spread(table).render())


def register(app: typer.Typer) -> None:
    """Add ``distill``, ``build``, ``show``, ``usefulness``, ``update`` and ``curate`` to the ``hiexp`` app."""
    app.command("curate")(curate_command)
    app.command("distill")(distill_command)
    app.command("build")(build_command)
    app.command("show")(show_command)
    app.command("usefulness")(usefulness_command)
    app.command("update")(update_command)
