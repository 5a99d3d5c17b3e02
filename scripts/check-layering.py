#!/usr/bin/env python3
"""Checks the direction of dependencies among the hub crate's top-level modules.

Reads the `crate::<module>` paths of hub/src (test code left out: files named
tests.rs, files under a tests/ folder, modules declared `#[cfg(test)] mod x;`,
and everything from a file's first `#[cfg(test)]` on; comments left out), then
fails when
  - the modules import each other in a cycle, or
  - a module imports one that docs/ARCHITECTURE.md ("Direction of
    dependencies") says it must not (FORBIDDEN below).
Prints the graph, one module a line with what it imports.

    python3 scripts/check-layering.py [hub/src]
"""
import os
import re
import sys

# module -> modules it must never import (DESIGN.md "Layering").
FORBIDDEN = {
    "broker": {"session", "transport", "node", "api", "server", "cors", "http_error"},
    "topic": {"session", "transport", "broker", "node", "api", "server", "engine"},
    "session": {"node", "transport", "api", "server"},
    "engine": {"session", "transport", "node", "api", "server"},
    "transport": {"node", "api", "server"},
    "metrics": {"node", "session", "topic", "broker", "transport"},
    "auth": {"config"},
    # OpenTelemetry is a leaf that every layer may use: it uses none.
    "telemetry": {"config", "topic", "broker", "engine", "session", "transport", "node", "api", "server", "metrics"},
    "assets": {"config", "node", "session", "topic", "broker", "engine", "transport", "api", "server"},
}


def test_only_files(root):
    """Files of modules declared `#[cfg(test)] mod name;` (and what is below them)."""
    skipped = set()
    for folder, _, files in os.walk(root):
        for name in files:
            if not name.endswith(".rs"):
                continue
            path = os.path.join(folder, name)
            with open(path, encoding="utf-8") as f:
                declared = re.findall(r"#\[cfg\(test\)\]\s*(?:pub(?:\([^)]*\))?\s+)?mod\s+(\w+)\s*;", f.read())
            # A child of lib.rs/main.rs/mod.rs lives beside it; of foo.rs, in foo/.
            base = folder if name in ("lib.rs", "main.rs", "mod.rs") else os.path.join(folder, name[:-3])
            for module in declared:
                skipped.add(os.path.normpath(os.path.join(base, module + ".rs")))
                skipped.add(os.path.normpath(os.path.join(base, module)))
    return skipped


def module_sources(root):
    sources = {}
    skipped = test_only_files(root)
    for folder, _, files in os.walk(root):
        if any(os.path.normpath(folder).startswith(s + os.sep) or os.path.normpath(folder) == s for s in skipped):
            continue
        for name in files:
            if not name.endswith(".rs") or name == "tests.rs":
                continue
            path = os.path.join(folder, name)
            if os.path.normpath(path) in skipped:
                continue
            relative = os.path.relpath(path, root)
            parts = relative.split(os.sep)
            if "tests" in parts[:-1]:
                continue
            top = parts[0][:-3] if parts[0].endswith(".rs") else parts[0]
            if top in ("main", "lib"):
                continue
            with open(path, encoding="utf-8") as f:
                text = f.read().split("#[cfg(test)]")[0]
            text = re.sub(r"//[^\n]*", "", text)
            sources[top] = sources.get(top, "") + text
    return sources


def imports(sources):
    graph = {module: set() for module in sources}
    for module, text in sources.items():
        named = set(re.findall(r"crate::(\w+)", text))
        for group in re.findall(r"crate::\{([^}]*)\}", text):
            named.update(re.findall(r"(?:^|,)\s*(\w+)", group))
        graph[module] = {m for m in named if m in sources and m != module}
    return graph


def cycles(graph):
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, on_stack, stack, found = {}, {}, set(), [], []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def main():
    root = sys.argv[1] if len(sys.argv) > 1 else "hub/src"
    graph = imports(module_sources(root))
    for module in sorted(graph):
        print(f"{module:<12} -> {', '.join(sorted(graph[module])) or '-'}")
    problems = [f"cycle: {' <-> '.join(c)}" for c in cycles(graph)]
    for module, banned in FORBIDDEN.items():
        for target in sorted(graph.get(module, set()) & banned):
            problems.append(f"{module} imports {target}, which it must not")
    for problem in problems:
        print(problem, file=sys.stderr)
    print(f"{len(graph)} modules, {len(problems)} problems")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
