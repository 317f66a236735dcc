#!/usr/bin/env python3
"""Checks that the core crate's modules keep their layers.

Reads every `crate::` and `super::` path in functions/core/src (`use` lines, grouped
`use crate::{a, b::{c, d}}` trees and inline paths alike), outside comments, string
literals and `#[cfg(test)]` items, and fails, naming the pair, on

- an import cycle between two modules (files), and
- a climb: an import from a module of a lower layer to one of a higher layer.

The layers, lowest first, are the folders (or root files) named in LAYERS; each may use
itself and those below it. A top-level module of the crate that LAYERS does not name is an
error too, so a new folder has to be given its place. `self::` paths stay inside a module
and are not read.

Usage: check-layers.py [SRC_DIR]   (default: functions/core/src beside this repo)
       check-layers.py --self-test  (the check against small trees it makes, each with a
                                     known fault or none; CI runs it before the real one)
Exit status 0 when the layers hold, 1 otherwise.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

# Lowest first. Each layer may use itself and the layers before it.
LAYERS = ["model", "security", "ports", "policy", "observe", "stages", "config", "adapters"]


def module_of(path: Path, root: Path) -> tuple[str, ...]:
    """The module path of a source file: `a/b.rs` is a::b, `a/mod.rs` is a, lib.rs is ()."""
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] in ("mod", "lib"):
        parts.pop()
    return tuple(parts)


def strip_comments_and_strings(src: str) -> str:
    """Blanks comments, string and char literals (keeping line breaks), so that paths in
    them are not read as imports."""
    out = []
    i, n = 0, len(src)
    while i < n:
        c = src[i]
        if src.startswith("//", i):
            j = src.find("\n", i)
            j = n if j < 0 else j
            out.append(" " * (j - i))
            i = j
        elif src.startswith("/*", i):
            depth, j = 1, i + 2
            while j < n and depth:
                if src.startswith("/*", j):
                    depth, j = depth + 1, j + 2
                elif src.startswith("*/", j):
                    depth, j = depth - 1, j + 2
                else:
                    j += 1
            out.append(re.sub(r"[^\n]", " ", src[i:j]))
            i = j
        elif (m := re.compile(r'b?r(#*)"').match(src, i)) and (i == 0 or not (src[i - 1].isalnum() or src[i - 1] == "_")):
            end = src.find('"' + m.group(1), m.end())
            end = n if end < 0 else end + 1 + len(m.group(1))
            out.append(re.sub(r"[^\n]", " ", src[i:end]))
            i = end
        elif c == '"':
            j = i + 1
            while j < n and src[j] != '"':
                j += 2 if src[j] == "\\" else 1
            out.append(re.sub(r"[^\n]", " ", src[i : j + 1]))
            i = j + 1
        elif c == "'":
            # A char literal ('a', '\n', '\u{1F600}') or a lifetime ('a): only the former
            # is blanked.
            m = re.compile(r"'(\\.[^']*|[^\\'])'").match(src, i)
            if m:
                out.append(" " * (m.end() - i))
                i = m.end()
            else:
                out.append(c)
                i += 1
        else:
            out.append(c)
            i += 1
    return "".join(out)


def item_end(src: str, start: int) -> int:
    """The end of the item starting at `start`: its first `;` outside brackets, or the
    brace that closes its first block."""
    depth = 0
    for j in range(start, len(src)):
        c = src[j]
        if c in "([":
            depth += 1
        elif c in ")]":
            depth -= 1
        elif c == "{":
            depth += 1
        elif c == "}":
            depth -= 1
            if depth == 0:
                return j + 1
        elif c == ";" and depth == 0:
            return j + 1
    return len(src)


CFG_TEST = re.compile(r"#\s*\[\s*cfg\s*\(\s*test\s*\)\s*\]")
ATTRIBUTE = re.compile(r"\s*#\s*\[[^\]]*\]")


def strip_test_items(src: str) -> str:
    """Blanks every item marked `#[cfg(test)]` (and the attributes after the mark)."""
    while m := CFG_TEST.search(src):
        j = m.end()
        while a := ATTRIBUTE.match(src, j):
            j = a.end()
        end = item_end(src, j)
        src = src[: m.start()] + re.sub(r"[^\n]", " ", src[m.start() : end]) + src[end:]
    return src


IDENT = r"[A-Za-z_][A-Za-z0-9_]*"
PATH_START = re.compile(rf"(?<![A-Za-z0-9_:])(crate|super)((?:\s*::\s*(?:super|{IDENT}))*)\s*::\s*(\{{)?")


def use_tree_paths(text: str, i: int) -> tuple[list[list[str]], int]:
    """Reads a brace group `{a::b, c::{d, e}, f as g, *}` starting after its `{`; returns the
    paths inside (as segment lists) and the index after the closing brace."""
    paths: list[list[str]] = []
    prefix: list[str] = []
    n = len(text)
    while i < n:
        m = re.compile(r"\s*").match(text, i)
        i = m.end()
        if i >= n:
            break
        c = text[i]
        if c == "}":
            if prefix:
                paths.append(prefix)
            return paths, i + 1
        if c == ",":
            if prefix:
                paths.append(prefix)
            prefix = []
            i += 1
        elif text.startswith("::", i):
            i += 2
        elif c == "{":
            inner, i = use_tree_paths(text, i + 1)
            paths.extend(prefix + p for p in inner)
            prefix = []
        elif c == "*":
            i += 1
        elif m := re.compile(rf"{IDENT}").match(text, i):
            word = m.group(0)
            i = m.end()
            if word == "as":
                m2 = re.compile(rf"\s*{IDENT}").match(text, i)
                i = m2.end() if m2 else i
            elif word != "self":
                prefix = prefix + [word]
        else:
            i += 1
    return paths, i


def referenced_paths(src: str, here: tuple[str, ...]) -> list[tuple[tuple[str, ...], int]]:
    """Every absolute module path that `crate::`/`super::` paths in `src` name, with its line."""
    found = []
    for m in PATH_START.finditer(src):
        line = src.count("\n", 0, m.start()) + 1
        segments = re.findall(rf"super|{IDENT}", m.group(2))
        if m.group(1) == "crate":
            base: list[str] = []
        else:
            base = list(here[:-1])
        for s in segments:
            if s == "super":
                base = base[:-1]
            else:
                base.append(s)
        tail = src[m.end() :]
        if m.group(3):
            inner, _ = use_tree_paths(src, m.end())
            for p in inner:
                found.append((tuple(base + p), line))
        else:
            nxt = re.compile(rf"{IDENT}").match(tail)
            found.append((tuple(base + ([nxt.group(0)] if nxt else [])), line))
    return found


def resolve(path: tuple[str, ...], modules: set[tuple[str, ...]]) -> tuple[str, ...] | None:
    """The deepest module that `path` names or names an item of."""
    for k in range(len(path), 0, -1):
        if path[:k] in modules:
            return path[:k]
    return None


def layer_of(module: tuple[str, ...]) -> str:
    return module[0] if module else ""


def find_cycles(edges: dict[tuple, set[tuple]]) -> list[list[tuple]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[tuple, int] = {}
    low: dict[tuple, int] = {}
    stack: list[tuple] = []
    on_stack: set[tuple] = set()
    out: list[list[tuple]] = []
    counter = [0]

    def visit(v: tuple) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in sorted(edges.get(v, ())):
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
                out.append(sorted(component))

    sys.setrecursionlimit(10000)
    for v in sorted(edges):
        if v not in index:
            visit(v)
    return out


def name(module: tuple[str, ...]) -> str:
    return "::".join(("crate",) + module)


def check(root: Path) -> list[str]:
    """The problems of the tree at `root`, printing a summary line."""
    files = sorted(root.rglob("*.rs"))
    modules = {module_of(f, root) for f in files}
    problems: list[str] = []

    for m in sorted(modules):
        if len(m) == 1 and m[0] not in LAYERS:
            problems.append(f"{name(m)} is in no layer: give it a place in LAYERS ({Path(__file__).name})")
        if len(m) > 1 and m[0] not in LAYERS:
            problems.append(f"{name(m)}: folder {m[0]}/ is in no layer")

    edges: dict[tuple, set[tuple]] = {m: set() for m in modules}
    where: dict[tuple[tuple, tuple], str] = {}
    count = 0
    for f in files:
        here = module_of(f, root)
        src = strip_test_items(strip_comments_and_strings(f.read_text()))
        for path, line in referenced_paths(src, here):
            target = resolve(path, modules)
            if target is None or target == here or here[: len(target)] == target or target[: len(here)] == here:
                # Itself, a folder's own mod.rs, or one of its own children.
                continue
            count += 1
            if target not in edges[here]:
                edges[here].add(target)
                where[(here, target)] = f"{f.relative_to(root)}:{line}"

    for (a, b), at in sorted(where.items()):
        la, lb = layer_of(a), layer_of(b)
        if la in LAYERS and lb in LAYERS and LAYERS.index(lb) > LAYERS.index(la):
            problems.append(f"climb: {name(a)} ({la}) uses {name(b)} ({lb}), at {at}")

    for component in find_cycles(edges):
        members = set(component)
        pairs = [f"{name(a)} -> {name(b)} ({where[(a, b)]})" for a in component for b in sorted(edges[a]) if b in members]
        problems.append("cycle among " + ", ".join(name(m) for m in component) + ":\n    " + "\n    ".join(pairs))

    by_layer: dict[str, int] = {}
    for m in modules:
        by_layer[layer_of(m) or "(root)"] = by_layer.get(layer_of(m) or "(root)", 0) + 1
    summary = ", ".join(f"{layer} {by_layer.get(layer, 0)}" for layer in LAYERS)
    print(f"check-layers: {len(modules)} modules ({summary}), {count} paths between modules, {len(where)} distinct imports")
    return problems


SELF_TESTS = [
    # (what it shows, files, words every problem line must hold together, or [] for none)
    ("a clean tree passes", {
        "lib.rs": "pub mod model;\npub mod stages;\n",
        "model/mod.rs": "pub mod a;\npub mod b;\n",
        "model/a.rs": "use super::b::B;\n",
        "model/b.rs": "pub struct B;\n",
        "stages/mod.rs": "pub mod s;\n",
        "stages/s.rs": "use crate::{model::{a, b::B}, stages};\n",
    }, []),
    ("a climb through a grouped use is named", {
        "lib.rs": "", "model/a.rs": "use crate::{ports::q::{X, Y}};\n", "ports/q.rs": "",
    }, [["climb", "crate::model::a", "crate::ports::q"]]),
    ("an inline path climbs too", {
        "lib.rs": "", "model/a.rs": "fn f() { crate::stages::s::go(); }\n", "stages/s.rs": "",
    }, [["climb", "crate::model::a", "crate::stages::s"]]),
    ("a cycle within a layer is named with both imports", {
        "lib.rs": "", "model/a.rs": "use crate::model::b::B;\n",
        "model/b.rs": "fn f() { let _ = super::a::A; }\n",
    }, [["cycle", "crate::model::a -> crate::model::b", "crate::model::b -> crate::model::a"]]),
    ("comments, strings and test modules are not imports", {
        "lib.rs": "",
        "model/a.rs": "// crate::stages::s\n/* crate::stages::s */\nconst S: &str = \"crate::stages::s\";\n"
                      "const R: &str = r#\"crate::stages::s\"#;\nconst C: char = '\"';\n"
                      "#[cfg(test)]\n#[allow(dead_code)]\nmod tests { use crate::stages::s; fn f() { {} } }\n"
                      "fn g<'a>(x: &'a str) -> &'a str { x }\n",
        "stages/s.rs": "",
    }, []),
    ("a module in no layer is refused", {"lib.rs": "", "misc.rs": ""}, [["crate::misc", "no layer"]]),
]


def self_test() -> int:
    import tempfile

    failed = 0
    for what, tree, expected in SELF_TESTS:
        with tempfile.TemporaryDirectory() as d:
            for rel, text in tree.items():
                (Path(d) / rel).parent.mkdir(parents=True, exist_ok=True)
                (Path(d) / rel).write_text(text)
            problems = check(Path(d))
        ok = len(problems) == len(expected) and all(
            any(all(w in p for w in words) for p in problems) for words in expected
        )
        print(f"check-layers self-test: {'ok' if ok else 'FAILED'}: {what}")
        if not ok:
            failed += 1
            for p in problems:
                print(f"    got: {p}")
    print(f"check-layers self-test: {len(SELF_TESTS) - failed} passed, {failed} failed")
    return 1 if failed else 0


def main() -> int:
    if sys.argv[1:] == ["--self-test"]:
        return self_test()
    root = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parents[2] / "functions/core/src"
    problems = check(root)
    if problems:
        for p in problems:
            print(f"check-layers: {p}")
        print(f"check-layers: {len(problems)} problem(s)")
        return 1
    print("check-layers: no cycle, no climb")
    return 0


if __name__ == "__main__":
    sys.exit(main())
