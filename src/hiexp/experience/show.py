"""Look at a HEK: the tree E3 -> E2 -> E1 with counts and titles, as rich text or JSON, or one entry."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.tree import Tree

from hiexp.errors import HiexpError

from .hek import HEK
from .schema import Entry


def usefulness_text(stats: Any) -> str:
    """``seen 12x, +0.25 (7 helped, 2 hurt)``: usage and usefulness of one entry, for people."""
    return (f"seen in {stats.episodes} episodes, effect {stats.effect:+.2f} ({stats.helpful} helped, "
            f"{stats.harmful} hurt)")


def _label(entry: Entry, hek: HEK, usefulness: Any = None) -> str:
    size = ""
    if entry.level != "E1":
        leaves = count_leaves(entry, hek)
        n = len(entry.children)
        size = f" [dim]({n} {'child' if n == 1 else 'children'}, {leaves} E1)[/]"
    flags = ""
    if entry.case is not None:
        flags = f" [magenta]case: {entry.case.searches} searches -> {escape(entry.case.answer)}[/]"
    if entry.meta.get("promoted"):
        flags = " [dim]promoted[/]"
    elif entry.meta.get("fallback"):
        flags = " [yellow]fallback[/]"
    stats = usefulness.get(entry.id) if usefulness is not None else None
    if stats is not None:
        colour = "green" if stats.effect > 0 else "red" if stats.effect < 0 else "dim"
        flags += f" [{colour}]{usefulness_text(stats)}[/]"
    level = "case" if entry.is_case_only else entry.level
    return f"[bold]{level}[/] [cyan]{escape(entry.id)}[/] {escape(entry.title)}{size}{flags}"


def case_text(case: dict[str, Any]) -> str:
    """A case as plain lines (question, each thought / search / titles read, answer), for people."""
    lines = [f"  Question: {case['question']}"]
    for n, step in enumerate(case.get("steps", []), start=1):
        if step.get("thought"):
            lines.append(f"  {n}. thought: {step['thought']}")
        lines.append(f"  {n}. search: {step['query']}")
        lines.append("     read: " + "; ".join(doc["title"] for doc in step.get("docs", [])))
    if case.get("final_thought"):
        lines.append(f"  thought: {case['final_thought']}")
    lines.append(f"  answer: {case['answer']}")
    return "\n".join(lines)


def count_leaves(entry: Entry, hek: HEK) -> int:
    """E1 entries under an entry (1 for an E1 entry)."""
    if entry.level == "E1":
        return 1
    return sum(count_leaves(child, hek) for child in hek.children_of(entry))


def roots(hek: HEK) -> list[Entry]:
    """Entries with no parent, top level first (normally the E3 entries)."""
    order = {"E3": 0, "E2": 1, "E1": 2}
    return sorted((e for e in hek.entries if hek.parent_of(e.id) is None), key=lambda e: order[e.level])


def tree(hek: HEK, max_children: int | None = None, usefulness: Any = None) -> Tree:
    """A rich Tree of the HEK (``max_children`` limits children shown per node); with a usefulness table
    (``usefulness.py``) each entry also says how often it was injected and whether it helped."""
    counts = hek.counts()
    n_cases = sum(1 for e in hek.entries if e.case is not None)
    top = Tree(
        f"HEK [bold]{hek.version}[/]: {counts['E3']} E3, {counts['E2']} E2, {counts['E1']} E1, {n_cases} cases "
        f"[dim](embedder {escape(str((hek.manifest.get('embedder') or {}).get('model_id')))})[/]"
    )

    def add(node: Tree, entry: Entry) -> None:
        branch = node.add(_label(entry, hek, usefulness))
        children = hek.children_of(entry)
        shown = children if max_children is None else children[:max_children]
        for child in shown:
            add(branch, child)
        if len(children) > len(shown):
            branch.add(f"[dim]... {len(children) - len(shown)} more[/]")

    for entry in roots(hek):
        add(top, entry)
    return top


def _stats(usefulness: Any, entry_id: str) -> dict[str, Any] | None:
    from dataclasses import asdict

    stats = usefulness.get(entry_id) if usefulness is not None else None
    return None if stats is None else asdict(stats)


def tree_json(hek: HEK, usefulness: Any = None) -> dict[str, Any]:
    """The tree as nested JSON: manifest summary and roots with their children (and their usefulness)."""

    def node(entry: Entry) -> dict[str, Any]:
        out = {"id": entry.id, "level": entry.level, "title": entry.title,
               "children": [node(c) for c in hek.children_of(entry)]}
        if entry.case is not None:
            out["case"] = {"searches": entry.case.searches, "answer": entry.case.answer,
                           "trajectory_id": entry.case.trajectory_id}
        if usefulness is not None:
            out["usefulness"] = _stats(usefulness, entry.id)
        return out

    return {"hek_version": hek.version, "counts": hek.counts(), "roots": [node(e) for e in roots(hek)]}


def entry_json(hek: HEK, entry_id: str, usefulness: Any = None) -> dict[str, Any]:
    """One entry with its parent and children's titles; ``HiexpError`` if it does not exist."""
    entry = hek.get(entry_id)
    if entry is None:
        raise HiexpError(f"no entry {entry_id!r} in HEK {hek.version}")
    parent = hek.parent_of(entry_id)
    return {
        **entry.to_dict(),
        "parent": None if parent is None else {"id": parent.id, "level": parent.level, "title": parent.title},
        "children_titles": {c.id: c.title for c in hek.children_of(entry)},
        "usefulness": _stats(usefulness, entry_id),
    }


def print_entry(hek: HEK, entry_id: str, console: Console, usefulness: Any = None) -> None:
    data = entry_json(hek, entry_id, usefulness)
    console.print(f"[bold]{data['level']}[/] [cyan]{escape(data['id'])}[/]: [bold]{escape(data['title'])}[/]")
    if data["tags"]:
        console.print("tags: " + escape(", ".join(data["tags"])))
    console.print(f"description: {escape(data['description'])}")
    if data["thinking"]:
        console.print(f"thinking: {escape(data['thinking'])}")
    console.print(f"model: {escape(str(data['model']))}")
    if data["parent"]:
        console.print(f"parent: {data['parent']['level']} {escape(data['parent']['id'])} {escape(data['parent']['title'])}")
    for child_id, title in data["children_titles"].items():
        console.print(f"child: {escape(child_id)} {escape(title)}")
    sources = data["sources"]
    if sources.get("question_id"):
        console.print(f"question: {escape(str(sources['question_id']))} {escape(str(sources.get('question', '')))}")
        if "success_ids" in sources or "failure_ids" in sources:
            console.print("successes: " + (escape(", ".join(sources.get("success_ids", []))) or "-"))
            console.print("failures: " + (escape(", ".join(sources.get("failure_ids", []))) or "-"))
        else:
            console.print("trajectories: " + (escape(", ".join(sources.get("trajectory_ids", []))) or "-"))
    elif sources.get("question_ids"):
        console.print(f"questions ({len(sources['question_ids'])}): " + escape(", ".join(sources["question_ids"][:20])))
    if data["meta"]:
        console.print(f"meta: {escape(str(data['meta']))}")
    if data.get("case"):
        console.print(f"case ({escape(data['case']['trajectory_id'])}, {data['case']['reward_key']} "
                      f"{data['case']['reward']:g}), shown as a worked example:")
        console.print(escape(case_text(data["case"])))
    stats = usefulness.get(entry_id) if usefulness is not None else None
    if stats is not None:
        console.print(f"usefulness: {usefulness_text(stats)}; reward with {stats.reward_with:.2f}, without "
                      f"{'-' if stats.reward_without is None else f'{stats.reward_without:.2f}'}")
