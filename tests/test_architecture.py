"""The import rules of the package (docs/architecture.md), read from the source of every module.

Imports inside functions count as much as those at the top: a lazy import still couples layers.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import zoo

PACKAGE = Path(zoo.__file__).parent

# layer -> what it must never import (top-level packages or zoo subpackages)
FORBIDDEN = {
    "zoo.models": ("lightning", "zoo.data", "zoo.methods", "zoo.eval", "zoo.cli", "zoo.api"),
    "zoo.objectives": (
        "lightning",
        "zoo.data",
        "zoo.models",
        "zoo.methods",
        "zoo.eval",
        "zoo.cli",
        "zoo.api",
    ),
    "zoo.data": ("zoo.models", "zoo.methods", "zoo.eval", "zoo.cli"),
    "zoo.eval": ("zoo.methods", "zoo.cli"),
    "zoo.methods": ("zoo.cli",),
}


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    """Absolute names of every module ``path`` imports, at any depth of its code."""
    module = _module_name(path)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: resolve against the package
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)  # `from zoo import hub`
    return names


def _within(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


MODULES = {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _unit(name: str) -> str | None:
    """The architectural unit of a zoo module: ``zoo.<first part>`` (a subpackage or a module)."""
    parts = name.split(".")
    return ".".join(parts[:2]) if parts[0] == "zoo" and len(parts) > 1 else None


def test_layers_import_only_what_they_may():
    violations = []
    for name, path in MODULES.items():
        for layer, forbidden in FORBIDDEN.items():
            if not _within(name, layer):
                continue
            for imported in sorted(_imports(path)):
                if any(_within(imported, f) for f in forbidden):
                    violations.append(f"{path.relative_to(PACKAGE.parent)} imports {imported}")
    assert not violations, "import rules broken:\n" + "\n".join(violations)


def _unit_graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for name, path in MODULES.items():
        unit = _unit(name)
        if unit is None:
            continue
        targets = {_unit(i) for i in _imports(path)} - {None, unit}
        graph.setdefault(unit, set()).update(t for t in targets if t in {_unit(m) for m in MODULES})
    return graph


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}  # 1: on the path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt) :], nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_no_import_cycles_between_subpackages():
    cycle = _cycle(_unit_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_the_checks_can_fail():
    """A cycle and a forbidden import written on purpose are caught by the same code."""
    assert _cycle({"zoo.a": {"zoo.b"}, "zoo.b": {"zoo.c"}, "zoo.c": {"zoo.a"}}) == [
        "zoo.a",
        "zoo.b",
        "zoo.c",
        "zoo.a",
    ]
    assert _cycle({"zoo.a": {"zoo.b"}, "zoo.b": set()}) is None
    lazy = PACKAGE / "models" / "_probe_for_test.py"
    assert not lazy.exists()
    try:
        lazy.write_text("def f():\n    from ..data import video\n    import lightning.pytorch\n")
        assert _imports(lazy) >= {"zoo.data", "zoo.data.video", "lightning.pytorch"}
    finally:
        lazy.unlink()


def test_models_and_objectives_import_without_lightning():
    """Belt and braces at run time: importing every model and objective module loads no Lightning."""
    names = sorted(n for n in MODULES if _within(n, "zoo.models") or _within(n, "zoo.objectives"))
    code = f"import sys, {', '.join(names)}\nassert not [m for m in sys.modules if m.startswith('lightning')]"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=300)
