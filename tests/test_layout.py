"""The architecture the layout promises: the engine knows nothing of MLflow or Optuna, and the
package's module-level imports form no cycle."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).parent.parent / "cnnexp"


def test_engine_imports_neither_mlflow_nor_optuna() -> None:
    code = ("import sys, pkgutil, importlib, cnnexp.engine as e\n"
            "for m in pkgutil.iter_modules(e.__path__):\n"
            "    importlib.import_module(f'cnnexp.engine.{m.name}')\n"
            "print(sorted(n for n in ('mlflow', 'optuna') if n in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "[]"


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _top_level_imports(path: Path, name: str) -> set[str]:
    """cnnexp modules imported at module level (imports inside functions are lazy on purpose)."""
    found = set()
    is_pkg = path.name == "__init__.py"
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = name.split(".")[: len(name.split(".")) - node.level + (1 if is_pkg else 0)]
                base = ".".join([*anchor, *([base] if base else [])])
            found.add(base)
            found |= {f"{base}.{a.name}" for a in node.names}
    return {m for m in found if m.startswith("cnnexp")}


def test_module_level_imports_have_no_cycle() -> None:
    files = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph = {m: {d for d in _top_level_imports(p, m) if d in files and d != m}
             for m, p in files.items()}
    # a package's __init__ importing its own submodules is how packages re-export: not a cycle
    graph = {m: {d for d in deps if not d.startswith(m + ".")} for m, deps in graph.items()}
    assert sum(map(len, graph.values())) > 50  # the parser sees the real import graph
    state: dict[str, int] = {}

    def visit(m: str, path: list[str]) -> None:
        state[m] = 1
        for d in graph[m]:
            assert state.get(d) != 1, " -> ".join([*path, m, d])
            if d not in state:
                visit(d, [*path, m])
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m, [])


def test_tracking_reaches_no_command_module() -> None:
    """tracking records what its callers computed (the diagnosis is handed in as a judge):
    not even a lazy import from it reaches up into the command modules."""
    upper = ("cnnexp.diagnose", "cnnexp.search", "cnnexp.ablate", "cnnexp.report",
             "cnnexp.sanity", "cnnexp.cli", "cnnexp.train", "cnnexp.final")
    found = []
    for path in (PACKAGE / "tracking").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            found += [f"{path.name}: {n}" for n in names if n.startswith(upper)]
    assert found == []
