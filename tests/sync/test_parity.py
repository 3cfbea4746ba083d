"""The blocking API cannot drift from the async one: same methods, parameters and docstrings."""

from __future__ import annotations

import ast
import inspect
import re
import typing
from typing import Any

import pytest

from kayse_async import AsyncKayse, Kayse
from kayse_async._sync import api as _sync_api

from .generate_twins import OUTPUT, generate

_ITERATOR = re.compile(r"^(?:AsyncIterator|AsyncGenerator)\[(.*)\]$")


def _typevars(async_cls: type, owner: type) -> dict[str, str]:
    """``{"T": "Client"}`` for a method that ``async_cls`` inherits from a generic ``owner``."""
    for klass in async_cls.__mro__:
        for base in getattr(klass, "__orig_bases__", ()):
            if typing.get_origin(base) is owner:
                params = owner.__parameters__
                return {p.__name__: a.__name__ for p, a in zip(params, typing.get_args(base), strict=True)}
    return {}


def _expected(annotation: Any, names: dict[str, str]) -> Any:
    if not isinstance(annotation, str):
        return annotation
    for var, concrete in names.items():
        annotation = re.sub(rf"\b{var}\b", concrete, annotation)
    return annotation


def parity_problems(async_obj: object, sync_obj: object) -> list[str]:
    """What differs between the public methods of an async resource and its blocking twin."""
    problems: list[str] = []
    async_cls, sync_cls = type(async_obj), type(sync_obj)
    if inspect.getdoc(async_cls) != inspect.getdoc(sync_cls):
        problems.append(f"{sync_cls.__name__}: class docstring differs")
    async_names = {n for n in dir(async_cls) if not n.startswith("_")}
    sync_names = {n for n in dir(sync_cls) if not n.startswith("_")}
    problems += [f"{sync_cls.__name__}.{n}: missing" for n in sorted(async_names - sync_names)]
    problems += [f"{sync_cls.__name__}.{n}: not in the async API" for n in sorted(sync_names - async_names)]
    for name in sorted(async_names & sync_names):
        afunc, sfunc = getattr(async_cls, name), getattr(sync_cls, name)
        owner = next(k for k in async_cls.__mro__ if name in vars(k))
        names = _typevars(async_cls, owner)
        sync_owner = next(k for k in sync_cls.__mro__ if name in vars(k))
        sync_names = _typevars(sync_cls, sync_owner)  # a twin defined in a generic base's twin
        where = f"{sync_cls.__name__}.{name}"
        if inspect.getdoc(afunc) != inspect.getdoc(sfunc):
            problems.append(f"{where}: docstring differs")
        asig, ssig = inspect.signature(afunc), inspect.signature(sfunc)
        aparams, sparams = list(asig.parameters.values()), list(ssig.parameters.values())
        if [(p.name, p.kind, p.default) for p in aparams] != [(p.name, p.kind, p.default) for p in sparams]:
            problems.append(f"{where}: parameters differ: {asig} vs {ssig}")
            continue
        for a, s in zip(aparams, sparams, strict=True):
            if _expected(a.annotation, names) != _expected(s.annotation, sync_names):
                problems.append(f"{where}({a.name}): annotation {a.annotation!r} vs {s.annotation!r}")
        returns = _expected(asig.return_annotation, names)
        sync_returns = _expected(ssig.return_annotation, sync_names)
        if inspect.iscoroutinefunction(afunc):
            if inspect.iscoroutinefunction(sfunc):
                problems.append(f"{where}: the twin is a coroutine function")
            if returns != sync_returns:
                problems.append(f"{where}: returns {sync_returns!r}, expected {returns!r}")
        else:
            match = _ITERATOR.match(returns)
            expected = f"Generator[{match.group(1)}, None, None]" if match else returns  # pure: the same
            if sync_returns != expected:
                problems.append(f"{where}: returns {sync_returns!r}, expected {expected!r}")
    return problems


@pytest.fixture
def pair() -> tuple[AsyncKayse, Kayse]:
    return AsyncKayse("k"), Kayse("k")


def _resource_names(client: AsyncKayse) -> list[str]:
    from kayse_async._resources._base import Resource

    return [name for name, value in vars(client).items() if isinstance(value, Resource)]


def shape(source: str) -> str:
    """A module's AST with the imports of each block as one sorted list: what ruff's formatting and sorting keep."""
    tree = ast.parse(source)
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.If):
            imports = [s for s in node.body if isinstance(s, ast.Import | ast.ImportFrom)]
            names = sorted(f"{getattr(s, 'module', '')}.{a.name}" for s in imports for a in s.names)
            node.body = [s for s in node.body if s not in imports] + [ast.Expr(ast.Constant(str(names)))]
    return ast.dump(tree)


def test_generated_module_is_current() -> None:
    """api.py is what the generator makes now, up to ruff's formatting (else: nox -s twins)."""
    assert shape(generate()) == shape(OUTPUT.read_text(encoding="utf-8")), (
        "kayse_async/_sync/api.py is stale: run `nox -s twins` (or python tests/sync/generate_twins.py)"
    )


def test_the_freshness_check_sees_drift_but_not_formatting() -> None:
    """Reordered imports and reformatted code compare equal; a changed default, docstring or import does not."""
    text = generate()
    reformatted = text.replace("import KayseBase, SyncResource", "import SyncResource, KayseBase").replace(
        "def get(self, client_id: int)", "def get(\n        self,\n        client_id: int,\n    )"
    )
    assert reformatted != text
    assert shape(reformatted) == shape(text)
    for old, new in (
        ("chunk_size: int = 500", "chunk_size: int = 501"),
        ("Get a client by id", "Get one client by id"),
        ("import KayseBase, SyncResource", "import KayseBase"),
    ):
        assert old in text
        assert shape(text.replace(old, new, 1)) != shape(text)


def test_every_resource_has_a_twin_with_the_same_methods(pair: tuple[AsyncKayse, Kayse]) -> None:
    """Every public async method has a blocking twin: same parameters, defaults, annotations, docstring."""
    async_client, sync_client = pair
    names = _resource_names(async_client)
    assert set(names) >= {"clients", "cases", "case_lists", "campaigns", "calls", "metadata"}
    problems: list[str] = []
    for name in names:
        problems += parity_problems(getattr(async_client, name), getattr(sync_client, name))
    assert problems == []


def test_parity_check_sees_drift() -> None:
    """The parity check itself reports a renamed keyword, a changed default, a docstring and a missing method."""

    class Async:
        """Doc."""

        async def get(self, item_id: int, *, chunk_size: int = 5) -> str:
            """Get."""
            return ""

        async def gone(self) -> None:
            """Gone."""

    class Sync:
        """Doc."""

        def get(self, item_id: int, *, chunk: int = 5) -> str:
            """Get."""
            return ""

    class SyncDefault:
        """Doc."""

        def get(self, item_id: int, *, chunk_size: int = 6) -> str:
            """Get it."""
            return ""

        def gone(self) -> None:
            """Gone."""

    assert parity_problems(Async(), Sync()) == [
        "Sync.gone: missing",
        "Sync.get: parameters differ: (self, item_id: 'int', *, chunk_size: 'int' = 5) -> 'str' vs "
        "(self, item_id: 'int', *, chunk: 'int' = 5) -> 'str'",
    ]
    problems = parity_problems(Async(), SyncDefault())
    assert "SyncDefault.get: docstring differs" in problems
    assert any("parameters differ" in p for p in problems)


def test_kayse_takes_the_async_constructor_arguments() -> None:
    """Kayse's constructor has AsyncKayse's parameters, kinds, defaults and annotations, then session_factory."""
    async_params = list(inspect.signature(AsyncKayse.__init__).parameters.values())
    sync_params = list(inspect.signature(Kayse.__init__).parameters.values())
    assert [(p.name, p.kind, p.default, p.annotation) for p in async_params] == [
        (p.name, p.kind, p.default, p.annotation) for p in sync_params[:-1]
    ]
    factory = sync_params[-1]
    assert (factory.name, factory.kind, factory.default) == ("session_factory", factory.KEYWORD_ONLY, None)
    assert factory.annotation == "Callable[[], aiohttp.ClientSession] | None"


def test_kayse_has_the_client_level_api(pair: tuple[AsyncKayse, Kayse]) -> None:
    """quota, closed, base URLs and the resources are there; aclose/async with become close/with."""
    async_client, sync_client = pair
    for prop in ("quota", "closed"):
        assert isinstance(getattr(Kayse, prop), property)
        assert inspect.getdoc(getattr(Kayse, prop)) == inspect.getdoc(getattr(AsyncKayse, prop))
    assert sync_client.base_url == async_client.base_url
    assert sync_client.calls_base_url == async_client.calls_base_url
    assert inspect.signature(Kayse.close).parameters.keys() == inspect.signature(AsyncKayse.aclose).parameters.keys()
    public_async = {n for n in dir(async_client) if not n.startswith("_")}
    public_sync = {n for n in dir(sync_client) if not n.startswith("_")}
    assert public_async - {"aclose"} <= public_sync
    assert public_sync - public_async == {"close", "portal_thread"}
    assert sorted(_sync_api.__all__) == sorted(
        [type(getattr(sync_client, n)).__name__ for n in _resource_names(async_client)] + ["Kayse"]
    )
