"""The architecture, enforced: every module of the package is found by walking it (`pkgutil`),
never from a hand-kept list, and its imports are read from its source (`ast`).

Layers (DESIGN.md): `analyses/` and `cache/` are leaves; `core/` is the engine and never
imports a view or the command line; `tui/` and `report/` are views; `cli/` dispatches. No
import cycle anywhere, function-level imports included.
"""

from __future__ import annotations

import ast
import importlib.util
import pkgutil
import subprocess
import sys
import tomllib
from functools import cache
from pathlib import Path

import pytest

import xrdiag

ROOT = Path(xrdiag.__file__).parent
HEAVY = ("torch", "transformers", "sklearn", "umap", "scipy", "numba", "accelerate", "datasets")


@cache
def modules() -> dict[str, Path]:
    """Every module and package of xrdiag with its source file."""
    found = {"xrdiag": ROOT / "__init__.py"}
    for info in pkgutil.walk_packages([str(ROOT)], prefix="xrdiag."):
        spec = importlib.util.find_spec(info.name)
        assert spec is not None and spec.origin is not None, info.name
        found[info.name] = Path(spec.origin)
    return found


@cache
def imports(module: str) -> tuple[tuple[str, bool], ...]:
    """(imported module, at module level?) for every import statement of `module`."""
    path = modules()[module]
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    top = set(map(id, tree.body))
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(alias.name, id(node) in top) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1] + ([base] if base else []))
            names = [f"{base}.{a.name}" for a in node.names]
            # `from pkg import module` imports the module; `from module import name` the module.
            out += [(n if n in modules() else base, id(node) in top) for n in names]
    return tuple(out)


def layer(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def ours(name: str) -> bool:
    return name == "xrdiag" or name.startswith("xrdiag.")


def test_the_walk_finds_the_layers() -> None:
    names = set(modules())
    for expected in ("xrdiag.cli", "xrdiag.core.evaluate", "xrdiag.analyses.schema",
                     "xrdiag.cache.store", "xrdiag.report.build", "xrdiag.tui.app"):  # fmt: skip
        assert expected in names
    assert not any(n.startswith(("xrdiag.tests", "xrdiag.bench", "xrdiag.scripts")) for n in names)


def test_every_package_is_declared_in_pyproject() -> None:
    """A package left out of pyproject is missing from the installed wheel."""
    declared = set(
        tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]
    )
    packages = {m for m, p in modules().items() if p.name == "__init__.py"}
    assert packages == declared


@pytest.mark.parametrize("leaf", ["analyses", "cache"])
def test_leaves_import_only_themselves(leaf: str) -> None:
    """analyses/ and cache/ import nothing of xrdiag but their siblings and errors.py."""
    bad = [
        (m, i)
        for m in modules()
        if layer(m) == leaf
        for i, _ in imports(m)
        if ours(i) and layer(i) not in (leaf, "errors")
    ]
    assert bad == []


def test_core_imports_no_view_and_no_command_line() -> None:
    banned_ours = ("tui", "report", "cli")
    banned = ("textual", "click", "rich")
    bad = [
        (m, i)
        for m in modules()
        if layer(m) == "core"
        for i, _ in imports(m)
        if (ours(i) and layer(i) in banned_ours) or i.split(".")[0] in banned
    ]
    assert bad == []


def test_views_import_no_heavy_library_at_module_level() -> None:
    """tui/ and report/ load torch and friends only inside the functions that need them."""
    bad = [
        (m, i)
        for m in modules()
        if layer(m) in ("tui", "report", "cli")
        for i, top in imports(m)
        if top and i.split(".")[0] in HEAVY
    ]
    assert bad == []


def test_report_does_not_import_the_dashboard() -> None:
    bad = [(m, i) for m in modules() if layer(m) == "report" for i, _ in imports(m)
           if i.startswith(("xrdiag.tui", "xrdiag.cli")) or i.startswith("textual")]  # fmt: skip
    assert bad == []


def test_no_import_cycles() -> None:
    """The graph of our imports (function-level ones included) has no cycle."""
    graph = {m: {i for i, _ in imports(m) if i in modules() and i != m} for m in modules()}
    # A package's __init__ is imported on the way to its modules; edges into it from its own
    # modules are the language's, not ours.
    for m, deps in graph.items():
        graph[m] = {d for d in deps if not m.startswith(d + ".")}
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for dep in sorted(graph[node]):
            if state.get(dep) == 1:
                return stack[stack.index(dep) :] + [dep]
            if dep not in state and (cycle := visit(dep)):
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            pytest.fail("import cycle: " + " -> ".join(cycle))


def test_engine_modules_load_nothing_heavy() -> None:
    """Importing every module of core/, analyses/ and cache/ in a fresh interpreter loads no
    heavy library and no view layer: heavy imports live inside the functions that need them."""
    engine = sorted(m for m in modules() if layer(m) in ("core", "analyses", "cache"))
    code = (
        f"import sys, importlib; [importlib.import_module(m) for m in {engine!r}];"
        f"bad = [m for m in sys.modules if m.split('.')[0] in {HEAVY!r}"
        " or m.startswith(('xrdiag.tui', 'xrdiag.report', 'xrdiag.cli'))"
        " or m.split('.')[0] in ('textual', 'click', 'rich')];"
        "print(bad)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"
