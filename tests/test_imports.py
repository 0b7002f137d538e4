"""The package's import graph: no cycles, and nothing outside specscope/cli/ imports the CLI.

Every import statement counts, at any depth (a function-level import is still an edge: it runs
once that function does). Read from the source by AST, so nothing is imported here.
"""
import ast
from pathlib import Path

import specscope

PACKAGE = Path(specscope.__file__).parent
FRONT_DOORS = {"specscope.__main__"}  # `python -m specscope` runs the CLI


def module_files(root: Path) -> dict[str, Path]:
    """Dotted module name -> file, for every .py under the package folder `root`."""
    mods = {}
    for f in root.rglob("*.py"):
        parts = f.relative_to(root.parent).with_suffix("").parts
        mods[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = f
    return mods


def import_graph(root: Path) -> dict[str, set[str]]:
    """Module -> the package's modules it imports (a package's own __init__ excepted)."""
    mods = module_files(root)

    def resolve(name: str) -> str | None:
        while name and name not in mods:
            name = name.rpartition(".")[0]
        return name or None

    graph: dict[str, set[str]] = {m: set() for m in mods}
    for m, f in mods.items():
        is_pkg = f.name == "__init__.py"
        for node in ast.walk(ast.parse(f.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    here = m.split(".") if is_pkg else m.split(".")[:-1]
                    here = here[: len(here) - (node.level - 1)]
                    base = ".".join(here + ([base] if base else []))
                targets = [base] + [f"{base}.{a.name}" for a in node.names]
            else:
                continue
            for t in targets:
                r = resolve(t) if t.split(".")[0] == root.name else None
                if r and r != m and not m.startswith(r + "."):
                    graph[m].add(r)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    found = []
    for start in graph:
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on.add(start)
        while work:
            v, edges = work[-1]
            w = next(edges, None)
            if w is not None:
                if w not in index:
                    index[w] = low[w] = len(index)
                    stack.append(w)
                    on.add(w)
                    work.append((w, iter(sorted(graph[w]))))
                elif w in on:
                    low[v] = min(low[v], index[w])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[v])
            if low[v] == index[v]:
                comp = []
                while True:
                    w = stack.pop()
                    on.discard(w)
                    comp.append(w)
                    if w == v:
                        break
                if len(comp) > 1:
                    found.append(sorted(comp))
    return found


def cli_importers(graph: dict[str, set[str]], pkg: str = "specscope") -> list[str]:
    """Modules outside pkg.cli (and its front doors) that import pkg.cli or anything in it."""
    cli = f"{pkg}.cli"
    return sorted(m for m, targets in graph.items()
                  if m != cli and not m.startswith(cli + ".") and m not in FRONT_DOORS
                  and any(t == cli or t.startswith(cli + ".") for t in targets))


def test_no_import_cycles():
    assert cycles(import_graph(PACKAGE)) == []


def test_only_the_cli_imports_the_cli():
    assert cli_importers(import_graph(PACKAGE)) == []


def test_the_checks_can_fail(tmp_path):
    """A made-up package with a cycle through its CLI, and a library module importing it."""
    pkg = tmp_path / "specscope"
    (pkg / "cli").mkdir(parents=True)
    (pkg / "core").mkdir()
    files = {
        "__init__.py": "",
        "__main__.py": "from specscope.cli import main\n",
        "cli/__init__.py": "from specscope.cli.app import app\n",
        "cli/app.py": "def register():\n    from specscope.cli import options\n    from .. import tools\n",
        "cli/options.py": "import specscope.tools\n",
        "core/__init__.py": "",
        "core/engine.py": "from specscope.core import steps\n",
        "core/steps.py": "def f():\n    from .engine import run\n",
        "tools.py": "from specscope.cli.options import X\n",
    }
    for name, text in files.items():
        (pkg / name).write_text(text)
    graph = import_graph(pkg)
    assert sorted(cycles(graph)) == [["specscope.cli.options", "specscope.tools"],
                                     ["specscope.core.engine", "specscope.core.steps"]]
    assert cli_importers(graph) == ["specscope.tools"]
