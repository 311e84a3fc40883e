"""``hiexp distill``, ``hiexp build`` and ``hiexp show``: from trajectories to a HEK and a look at it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer


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
    threshold: Annotated[float, typer.Option(help="A trajectory succeeds when its reward is >= this "
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
) -> None:
    """Contrastive distillation: E1 experience from successful vs failed attempts at the same question."""
    from hiexp.experience.distill import DistillConfig, distill, load_trajectories

    config = DistillConfig(reward_key=reward_key, threshold=threshold, include_uniform=include_uniform,
                           max_entries=max_entries, max_new_tokens=max_new_tokens, max_retries=max_retries,
                           batch_size=batch_size, seed=seed)
    if not load_trajectories(trajectories, reward_key):  # fail on bad input before loading a model
        from hiexp.errors import HiexpError

        raise HiexpError(f"no trajectories in {', '.join(map(str, trajectories))}: nothing to distill")
    generator = _load_model(reflector, "reflector", backend)
    summary = distill(trajectories, out, generator, config)
    typer.echo(summary.render())
    typer.echo(f"E1 entries: {out}")
    status_file = f"{out.name[:-6] if out.name.endswith('.jsonl') else out.name}.groups.jsonl"
    if summary.groups_failed and not summary.groups_ok and not summary.groups_done_before:
        from hiexp.errors import HiexpError

        raise HiexpError(f"every one of the {summary.groups_failed} groups failed, no E1 entry was written "
                         f"(reasons in {status_file}); run the same command again to retry them")
    if summary.groups_failed:
        typer.echo(f"{summary.groups_failed} groups failed (reasons in {status_file}); run the same command again "
                   "to retry them")


def build_command(
    e1: Annotated[list[Path], typer.Argument(metavar="E1...", help="E1 entries JSONL files (hiexp distill output).")],
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
) -> None:
    """Cluster E1 entries (Ward) and summarise clusters into E2 and E3: write the HEK directory."""
    from hiexp.errors import HiexpError
    from hiexp.experience.build import BuildConfig, build_hek, read_e1
    from hiexp.experience.hek import is_hek_dir
    from hiexp.experience.show import tree
    from hiexp.experience.summarize import SummarizeConfig
    from hiexp.io import check_output_dir
    from hiexp.progress import console
    from hiexp.search.embed import load_embedder

    check_output_dir(out, is_hek_dir, overwrite, what="HEK directory")  # before any work
    levels = _floats(thresholds, "thresholds")
    counts = None
    if clusters:
        try:
            parsed = [int(v) for v in clusters.split(",")]
        except ValueError:
            raise HiexpError(f"--clusters: expected two integers such as 20,5, got {clusters!r}") from None
        if len(parsed) != 2 or any(v < 0 for v in parsed):
            raise HiexpError(f"--clusters: give two non-negative integers (E1->E2, E2->E3), got {clusters!r}")
        counts = tuple(v or None for v in parsed)
    config = BuildConfig(thresholds=tuple(levels), n_clusters=counts, exact_max=exact_max,
                         summarize=SummarizeConfig(strict=strict, batch_size=batch_size), skip_bad=skip_bad,
                         description=description)
    entries = read_e1(e1, skip_bad)
    if not entries:
        raise HiexpError(f"no E1 entries in {', '.join(map(str, e1))}: nothing to build (see the .groups.jsonl "
                         "status file of the distill run)")
    with console.status(f"loading embedder {embedder}"):
        embedding_model = load_embedder(embedder)
    generator = _load_model(summarizer, "summariser", backend)
    hek = build_hek(e1, out, embedding_model, generator, config, overwrite=overwrite)
    console.print(tree(hek, max_children=5))
    counts_now = hek.counts()
    typer.echo(f"HEK {hek.version}: {counts_now['E1']} E1, {counts_now['E2']} E2, {counts_now['E3']} E3 -> {out}")


def show_command(
    hek_dir: Annotated[Path, typer.Argument(metavar="HEK", help="HEK directory (hiexp build output).")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the tree (or the entry) as JSON.")] = False,
    entry: Annotated[str | None, typer.Option("--entry", help="Show one entry with its sources, parent and "
                                                              "children.")] = None,
    max_children: Annotated[int | None, typer.Option(min=1, help="Children shown per node (all by default).")]
    = None,
) -> None:
    """Print a HEK: the tree E3 -> E2 -> E1 with counts and titles, or one entry."""
    from rich.console import Console

    from hiexp.experience.hek import HEK
    from hiexp.experience.show import entry_json, print_entry, tree, tree_json

    hek = HEK.load(hek_dir)
    if entry is not None:
        if as_json:
            typer.echo(json.dumps(entry_json(hek, entry), indent=2, ensure_ascii=False))
        else:
            print_entry(hek, entry, Console())
        return
    if as_json:
        typer.echo(json.dumps(tree_json(hek), indent=2, ensure_ascii=False))
    else:
        Console().print(tree(hek, max_children=max_children))


def register(app: typer.Typer) -> None:
    """Add ``distill``, ``build`` and ``show`` to the ``hiexp`` app."""
    app.command("distill")(distill_command)
    app.command("build")(build_command)
    app.command("show")(show_command)
