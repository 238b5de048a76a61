"""The architecture stays as the README draws it: one module per concern, each saying what it owns,
imports flowing one way, and nothing heavy on the path that starts the job."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).parent.parent
PACKAGE = ROOT / "sminit"
# Standard-library modules that cost milliseconds to import (measured: re with enum and
# functools about 4 ms, ctypes 2 ms, typing, json) or that a start never needs.
HEAVY = {"re", "enum", "functools", "typing", "json", "ctypes", "shlex", "math", "fcntl", "subprocess",
         "threading", "collections", "warnings", "resource", "psutil", "pathlib", "signal", "dataclasses"}


def imports_of(path: Path) -> set[str]:
    """The sminit modules a module imports, at its top or inside a function."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("sminit."):
            found.add(node.module.split(".")[1])
        elif isinstance(node, ast.ImportFrom) and node.module == "sminit":
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.Import):
            found.update(a.name.split(".")[1] for a in node.names if a.name.startswith("sminit."))
    return found


def test_imports_flow_one_way():
    graph = {path.stem: imports_of(path) - {path.stem} for path in PACKAGE.glob("*.py")}
    graph = {module: {m for m in targets if m in graph} for module, targets in graph.items()}
    done: set[str] = set()

    def visit(module: str, trail: list[str]) -> None:
        assert module not in trail, f"import cycle: {' -> '.join([*trail, module])}"
        if module in done:
            return
        for target in sorted(graph[module]):
            visit(target, [*trail, module])
        done.add(module)

    for module in sorted(graph):
        visit(module, [])


def test_every_module_says_what_it_owns():
    for path in sorted(PACKAGE.glob("*.py")):
        docstring = ast.get_docstring(ast.parse(path.read_text()))
        assert docstring, f"{path.name} has no docstring"
        assert docstring.split("\n\n")[0].rstrip().endswith((".", ")")), f"{path.name}: {docstring[:80]!r}"


START_PATH = (
    "import sys, _signal\n"
    "before = set(sys.modules)\n"
    "_signal.pthread_sigmask(_signal.SIG_BLOCK, _signal.valid_signals())\n"
    "import sminit.__main__, sminit.app, sminit.child, sminit.plan, sminit.config, sminit.log\n"
    "import sminit.subreaper\n"
    "print(' '.join(sorted(set(sys.modules) - before)))\n"
)


def test_nothing_heavy_is_imported_before_the_job_starts():
    # -S: no site, so only what sminit itself imports is counted; the checkout comes first on the path.
    result = subprocess.run([sys.executable, "-S", "-c",
                             f"import sys; sys.path.insert(0, {str(ROOT)!r})\n" + START_PATH],
                            capture_output=True, text=True, timeout=20, check=True)
    loaded = set(result.stdout.split())
    assert "sminit.app" in loaded  # the probe probed
    assert not loaded & HEAVY, f"imported on the start-up path: {sorted(loaded & HEAVY)}"
    later = {"sminit.stop", "sminit.handlers", "sminit.loop", "sminit.proctree", "sminit.endings",
             "sminit.cgroup",
             "sminit.check",
             "sminit.gpu", "sminit.sagemaker", "sminit.executable", "sminit.testing"}
    assert not loaded & later, f"imported before they are needed: {sorted(loaded & later)}"
