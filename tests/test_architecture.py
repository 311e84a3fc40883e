"""The layers of docs/architecture.md, checked on the source: imports point down, never into another
module's private names, and modules import one another without cycles."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "hiexp"

# Rank of each top-level package or module of hiexp: a module may import its own package and anything of a
# lower rank, nothing of its own rank elsewhere or above.
RANKS = {
    "errors": 0,
    "io": 1, "progress": 1, "retry": 1, "contracts": 1,
    "data": 2, "scoring": 2,
    "search": 3, "llm": 3,
    "agent": 4, "experience": 4,
    "components": 5,
    "eval": 6, "train": 6,
    "report": 7, "browse": 7, "integrations": 7,
    "demo": 8,
    "cli": 9,
}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(p): p for p in SRC.rglob("*.py")}


def _imports(name: str, path: Path):
    """(imported module, imported names, line) for every hiexp import in a module, lazy ones included."""
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target == "hiexp" or target.startswith("hiexp."):
                names = [a.name for a in node.names]
                submodules = [f"{target}.{n}" for n in names if f"{target}.{n}" in MODULES]
                yield (submodules or [target]), names, node.lineno
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("hiexp."):
                    yield [alias.name], [], node.lineno


def _top(module: str) -> str:
    return module.split(".")[1] if "." in module else ""


def test_every_package_has_a_rank():
    assert {_top(m) for m in MODULES if "." in m} <= set(RANKS), "add the new package to RANKS and the docs"


def test_imports_point_down_the_layers():
    wrong = []
    for name, path in MODULES.items():
        own = _top(name)
        if not own:
            continue
        for targets, _, line in _imports(name, path):
            for target in targets:
                other = _top(target)
                if other and other != own and RANKS[other] >= RANKS[own]:
                    wrong.append(f"{path.relative_to(SRC.parent)}:{line}: {own} imports {target} ({other})")
    assert not wrong, "imports against the layers:\n" + "\n".join(wrong)


def test_no_module_imports_another_modules_private_names():
    private = []
    for name, path in MODULES.items():
        for targets, names, line in _imports(name, path):
            for n in names:
                if n.startswith("_") and not n.startswith("__") and targets != [name]:
                    private.append(f"{path.relative_to(SRC.parent)}:{line}: {n} from {targets[0]}")
    assert not private, "private names used across modules:\n" + "\n".join(private)


def test_modules_import_one_another_without_cycles():
    """A package's ``__init__`` gathers its modules; its modules must not need it, nor each other in a ring."""
    graph = {name: set() for name in MODULES}
    for name, path in MODULES.items():
        for targets, _, _ in _imports(name, path):
            graph[name].update(t for t in targets if t in MODULES and t != name)
    state: dict[str, int] = {}
    cycles = []

    def visit(node: str, trail: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycles.append(" -> ".join(trail[trail.index(nxt):] + [nxt]) if nxt in trail else f"{node} -> {nxt}")
            elif nxt not in state:
                visit(nxt, trail + [nxt])
        state[node] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    assert not cycles, "import cycles:\n" + "\n".join(cycles)
