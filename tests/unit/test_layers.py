"""The import graph of backend/ as docs/architecture.md draws it: packages in layers (import-linter's contract in
pyproject.toml), and no module importing, even from inside a function, a module that imports it back."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import grimp  # import-linter's graph
from helpers import ROOT


def test_every_package_imports_only_from_the_layers_below_it():
    lint = Path(sys.executable).with_name("lint-imports")
    command = [str(lint)] if lint.exists() else [shutil.which("lint-imports") or "lint-imports"]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert "1 kept, 0 broken" in done.stdout


def cycle(edges: dict[str, set[str]]) -> list[str] | None:
    """One cycle of the directed graph, as the modules along it, or None (an iterative depth-first search)."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    for start in sorted(edges):
        if state.get(start):
            continue
        path, stack = [start], [iter(sorted(edges[start]))]
        state[start] = 1
        while stack:
            nxt = next(stack[-1], None)
            if nxt is None:
                state[path.pop()] = 2
                stack.pop()
            elif state.get(nxt) == 1:
                return path[path.index(nxt) :] + [nxt]
            elif not state.get(nxt):
                state[nxt] = 1
                path.append(nxt)
                stack.append(iter(sorted(edges.get(nxt, ()))))
    return None


def test_the_cycle_finder_finds_one_and_only_one_that_is_there():
    assert cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert cycle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) is None


def test_no_module_of_backend_imports_one_that_imports_it_back():
    graph = grimp.build_graph("backend", exclude_type_checking_imports=True)
    # A package's __init__ importing its own modules is how packages work, not a cycle between modules.
    edges = {
        m: {t for t in graph.find_modules_directly_imported_by(m) if not m.startswith(t + ".")} for m in graph.modules
    }
    assert cycle(edges) is None, " -> ".join(cycle(edges))


def test_no_test_module_imports_another():
    # What tests share lives in tests/ (helpers, labelstudio, warm, browser) and tests/support/: a test module that
    # imports another runs that module's tests' setup and makes the tiers depend on each other.
    tests = Path(__file__).resolve().parents[1]
    found = [
        f"{path.relative_to(tests)}: {line.strip()}"
        for path in tests.rglob("*.py")
        for line in path.read_text(encoding="utf-8").splitlines()
        if re.match(r"\s*(from test_\w+ import|import test_\w+)", line)
    ]
    assert found == []
