"""No private attribute of another library: an AST scan of ``kayse_async/`` for foreign underscore names.

How ours is told from foreign, without running anything:

- a name bound by an import is ours when the import is relative or from ``kayse_async``, foreign
  otherwise; ``mod._name`` on one of our own modules or objects is ours;
- anything reached from a foreign import (``asyncio._get_running_loop()``,
  ``json.JSONDecoder()._x``) is foreign, whatever the name;
- on anything else (``self``, a parameter, a local variable, ``super()``) an underscore name is
  ours only if the package itself defines it somewhere: a ``def``, a class-level name, a
  ``__slots__`` entry, or an assignment to ``self.``/``cls.``. So ``session._retry_connection``
  is flagged (nothing of ours defines ``_retry_connection``, and assigning it to a foreign
  session does not count), while ``lease._id`` passes when one of our classes sets ``self._id``.

Reading a foreign object's namespace by key (``vars(x)[...]``, ``x.__dict__``) and
``getattr``/``setattr``/``hasattr`` with an underscore name are judged the same way. Dunder names
(``__name__``) are the language's, not a library's, and are not checked.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import attrs

PACKAGE = Path(__file__).resolve().parents[2] / "kayse_async"


@attrs.frozen
class Finding:
    """One private access on a foreign object: where, and what."""

    path: str
    line: int
    what: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.what}"


def _private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def _root(node: ast.expr) -> ast.expr:
    """The leftmost expression of an attribute/call/subscript chain (``a`` of ``a.b(c)[d].e``)."""
    while isinstance(node, ast.Attribute | ast.Call | ast.Subscript):
        node = node.func if isinstance(node, ast.Call) else node.value
    return node


def defined_names(trees: list[ast.Module]) -> set[str]:
    """Every underscore name the package defines as an attribute of its own objects."""
    names: set[str] = set()
    for tree in trees:
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                names.add(node.name)
            if isinstance(node, ast.ClassDef):
                for stmt in node.body:
                    targets = stmt.targets if isinstance(stmt, ast.Assign) else []
                    if isinstance(stmt, ast.AnnAssign):
                        targets = [stmt.target]
                    for target in targets:
                        if isinstance(target, ast.Name):
                            names.add(target.id)
                        if (
                            isinstance(target, ast.Name)
                            and target.id == "__slots__"
                            and isinstance(stmt.value, ast.Tuple | ast.List)
                        ):
                            names.update(e.value for e in stmt.value.elts if isinstance(e, ast.Constant))
            if (
                isinstance(node, ast.Attribute)
                and isinstance(node.ctx, ast.Store)
                and isinstance(node.value, ast.Name)
                and node.value.id in ("self", "cls")
            ):
                names.add(node.attr)
    return {name for name in names if isinstance(name, str) and _private(name)}


def _bindings(tree: ast.Module) -> tuple[set[str], set[str]]:
    """The names this module binds by import: (ours, foreign)."""
    ours: set[str] = set()
    foreign: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                bound = alias.asname or alias.name.split(".")[0]
                (ours if alias.name.split(".")[0] == "kayse_async" else foreign).add(bound)
        elif isinstance(node, ast.ImportFrom):
            mine = node.level > 0 or (node.module or "").split(".")[0] == "kayse_async"
            for alias in node.names:
                (ours if mine else foreign).add(alias.asname or alias.name)
    return ours, foreign


def scan_module(tree: ast.Module, path: str, defined: set[str]) -> Iterator[Finding]:
    """The private accesses on foreign objects in one parsed module."""
    ours, foreign = _bindings(tree)
    # The module's own top-level names are its objects.
    for stmt in tree.body:
        if isinstance(stmt, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            ours.add(stmt.name)
        elif isinstance(stmt, ast.Assign | ast.AnnAssign):
            for target in stmt.targets if isinstance(stmt, ast.Assign) else [stmt.target]:
                if isinstance(target, ast.Name):
                    ours.add(target.id)
    ours -= foreign

    def judge(base: ast.expr, name: str) -> str | None:
        root = _root(base)
        if isinstance(root, ast.Name) and root.id in foreign:
            return f"{ast.unparse(base)}.{name}: a private name of {root.id}"
        if isinstance(base, ast.Name) and base.id in ours:
            return None
        if name not in defined:
            return f"{ast.unparse(base)}.{name}: nothing of ours defines {name}"
        return None

    for node in ast.walk(tree):
        problem: str | None = None
        if isinstance(node, ast.Attribute):
            if _private(node.attr):
                problem = judge(node.value, node.attr)
            elif node.attr == "__dict__":
                root = _root(node.value)
                if isinstance(root, ast.Name) and root.id in foreign:
                    problem = f"{ast.unparse(node)}: the namespace of a {root.id} object"
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.args:
            target = node.args[0]
            if node.func.id == "vars":
                root = _root(target)
                if isinstance(root, ast.Name) and root.id in foreign:
                    problem = f"{ast.unparse(node)}: the namespace of a {root.id} object"
            elif node.func.id in ("getattr", "setattr", "hasattr", "delattr") and len(node.args) > 1:
                key = node.args[1]
                if isinstance(key, ast.Constant) and isinstance(key.value, str) and _private(key.value):
                    problem = judge(target, key.value)
        if problem is not None:
            yield Finding(path, node.lineno, problem)


def scan(sources: dict[str, str]) -> list[Finding]:
    """Scan modules given as ``{path: source}``; the names they define count as ours across all of them."""
    trees = {path: ast.parse(text, path) for path, text in sources.items()}
    defined = defined_names(list(trees.values()))
    return sorted(
        (f for path, tree in trees.items() for f in scan_module(tree, path, defined)), key=lambda f: (f.path, f.line)
    )


def test_the_package_reaches_no_private_name_of_another_library() -> None:
    """No module of kayse_async/ reaches an underscore name (or the namespace) of a foreign module or object."""
    sources = {str(p.relative_to(PACKAGE.parent)): p.read_text("utf-8") for p in sorted(PACKAGE.rglob("*.py"))}
    assert len(sources) > 20, "the package was not found"
    findings = scan(sources)
    assert not findings, "private access to other libraries:\n" + "\n".join(map(str, findings))


def test_the_scanner_flags_foreign_private_access() -> None:
    """Each form of reaching into another library is caught: module attribute, namespace, instance, getattr."""
    source = """
import asyncio
import json
from aiohttp import ClientSession

def run(session: ClientSession) -> None:
    asyncio._get_running_loop()
    vars(json.JSONDecoder())["scan_once"]
    session._retry_connection = False
    hasattr(session, "_connector")
    ClientSession._request
    json.JSONDecoder().__dict__
    super()._private_of_a_base()
"""
    flagged = sorted(f.line for f in scan({"m.py": source}))
    assert flagged == [7, 8, 9, 10, 11, 12, 13]


def test_the_scanner_passes_our_own_private_names() -> None:
    """self/cls, our own modules and objects, and names our package defines are not flagged."""
    source = """
from . import helpers
from .quota import _memory

class Lease:
    __slots__ = ("_id",)

    def __init__(self) -> None:
        self._id = 1
        self._other = self._id

    @classmethod
    def make(cls) -> "Lease":
        return cls._build()

    @classmethod
    def _build(cls) -> "Lease":
        return cls()

def use(lease: Lease) -> int:
    helpers._internal()
    _memory._Bucket
    Lease._build()
    return lease._id + lease._other
"""
    assert scan({"m.py": source}) == []


def _aiohttp_subclasses(source: str) -> list[str]:
    """Classes in ``source`` that derive from a class of aiohttp's client (its request or response)."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ClassDef):
            for base in node.bases:
                text = ast.unparse(base)
                if text.startswith("aiohttp.Client") or text in {"ClientRequest", "ClientResponse"}:
                    found.append(f"{node.name}({text})")
    return found


def test_the_transport_overrides_no_class_of_aiohttp() -> None:
    """When a request is on the wire comes from aiohttp's public trace signals, not from a subclass of its request."""
    found = [f"{p.name}: {c}" for p in PACKAGE.rglob("*.py") for c in _aiohttp_subclasses(p.read_text())]
    assert found == []
    assert _aiohttp_subclasses("class R(aiohttp.ClientRequest):\n    pass\n") == ["R(aiohttp.ClientRequest)"]
