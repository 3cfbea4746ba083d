"""Every route of the emulator's OpenAPI document, fuzzed: never a 500, every error a JSON {message, field}.

Hypothesis draws path ids, query strings and bodies (arbitrary JSON, objects
built from the operation's documented properties with values of any type,
bulk containers of such objects, and bytes that are not JSON) and sends them
with the right key, no key, or the wrong method.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kayse_async.testing import Emulator, openapi_document

KEY = "k-routes"
DOCUMENT = openapi_document()
OPERATIONS = [
    (path, method.upper(), operation)
    for path, item in DOCUMENT["paths"].items()
    for method, operation in item.items()
    if method in ("get", "post", "put", "delete", "patch")
]


def _resolve(schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[1]
        schema = DOCUMENT["components"]["schemas"][name]
    return schema


def _properties(schema: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The documented properties of an object schema (through $ref, anyOf and oneOf)."""
    schema = _resolve(schema)
    found: dict[str, dict[str, Any]] = dict(schema.get("properties", {}))
    for key in ("anyOf", "oneOf", "allOf"):
        for option in schema.get(key, []):
            found.update(_properties(option))
    return found


def _body_schema(operation: dict[str, Any]) -> dict[str, Any] | None:
    body = operation.get("requestBody")
    if body is None:
        return None
    return body["content"]["application/json"]["schema"]  # type: ignore[no-any-return]


JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=10,
)


def _value_for(schema: dict[str, Any]) -> st.SearchStrategy[Any]:
    """Mostly values of the documented type (valid or near it), sometimes anything at all."""
    schema = _resolve(schema)
    kind = schema.get("type")
    near: list[st.SearchStrategy[Any]] = [JSON]
    if kind == "integer":
        near += [st.integers(-5, 50), st.integers(2**62, 2**64)]
    elif kind == "string":
        near += [st.text(max_size=20), st.dates().map(str), st.sampled_from(["2024-02-30", "Monday", ""])]
    elif kind == "boolean":
        near += [st.booleans()]
    elif kind == "array":
        items = schema.get("items", {})
        near += [st.lists(_value_for(items) if "$ref" not in items else JSON, max_size=4)]
        near += [st.lists(st.integers(-2, 20), max_size=5)]
    elif kind == "object":
        near += [st.dictionaries(st.text(max_size=8), JSON, max_size=3)]
    return st.one_of(near)


def _object_for(schema: dict[str, Any]) -> st.SearchStrategy[dict[str, Any]]:
    props = _properties(schema)
    if not props:
        return st.dictionaries(st.text(max_size=8), JSON, max_size=4)
    return st.fixed_dictionaries({}, optional={name: _value_for(s) for name, s in props.items()})


def _bodies(schema: dict[str, Any] | None) -> st.SearchStrategy[bytes | None]:
    if schema is None:
        return st.none() | st.binary(max_size=20)
    options: list[st.SearchStrategy[Any]] = [JSON, _object_for(schema)]
    props = _properties(schema)
    for name, sub in props.items():
        sub = _resolve(sub)
        if sub.get("type") == "array" and "items" in sub:
            options.append(st.fixed_dictionaries({name: st.lists(_object_for(sub["items"]), max_size=4)}))
    encoded = st.one_of(options).map(lambda v: json.dumps(v).encode())
    junk = st.sampled_from([b"", b"{", b"nul", b'{"a": NaN}', b"\xff\xfe", b"[" * 5000, b'{"clients": [' * 600])
    return st.one_of(encoded, encoded, encoded, junk, st.binary(max_size=30))


def _path(template: str) -> st.SearchStrategy[str]:
    ids = st.integers(0, 10**30).map(str) | st.sampled_from(["1", "2", "3"])
    names = re.findall(r"\{(\w+)\}", template)
    if not names:
        return st.just(template)

    def fill(values: tuple[str, ...]) -> str:
        parts = iter(values)
        return re.sub(r"\{\w+\}", lambda _m: next(parts), template)

    return st.tuples(*[ids for _ in names]).map(fill)


def _query(operation: dict[str, Any]) -> st.SearchStrategy[dict[str, str]]:
    names = [p["name"] for p in operation.get("parameters", []) if p.get("in") == "query"]
    if not names:
        return st.just({})
    value = st.text(max_size=10) | st.integers(-5, 200).map(str) | st.sampled_from(["true", "false", "1e3"])
    return st.fixed_dictionaries({}, optional=dict.fromkeys(names, value))


@pytest.fixture
async def emulator() -> AsyncIterator[Emulator]:
    async with Emulator(KEY, limit=0, seed=1) as emu:
        yield emu


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def _check(response: aiohttp.ClientResponse, what: str) -> None:
    assert response.status < 500, f"{what} -> {response.status}: {(await response.read())[:300]!r}"
    if response.status >= 400:
        body = await response.json()
        assert isinstance(body, dict), what
        assert isinstance(body.get("message"), str), what
        assert body["message"], what
        assert "field" in body, what


ROUTE_FUZZ = settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@pytest.mark.parametrize(("template", "method", "operation"), OPERATIONS, ids=[f"{m} {p}" for p, m, _ in OPERATIONS])
@ROUTE_FUZZ
@given(data=st.data())
async def test_every_documented_route_answers_without_a_500(
    emulator: Emulator,
    http: aiohttp.ClientSession,
    template: str,
    method: str,
    operation: dict[str, Any],
    data: st.DataObject,
) -> None:
    """Fuzzed paths, queries and bodies with the right key: a 2xx or a 4xx with a JSON error, never a 5xx."""
    header = "X-Public-Api-Key" if operation.get("security") == [{"calls": []}] else "X-API-KEY"
    path = data.draw(_path(template), label="path")
    query = data.draw(_query(operation), label="query")
    body = data.draw(_bodies(_body_schema(operation)), label="body")
    headers = {header: KEY, "Content-Type": "application/json"}
    async with http.request(method, emulator.url + path, params=query, data=body, headers=headers) as response:
        await _check(response, f"{method} {path}?{query} {body[:80] if body else body!r}")
    assert "500" not in emulator.stats()["by_status"]


@pytest.mark.parametrize("template", sorted(DOCUMENT["paths"]))
async def test_every_path_refuses_a_missing_key_and_a_wrong_method(
    emulator: Emulator, http: aiohttp.ClientSession, template: str
) -> None:
    """No key: 401 on every documented operation; an undocumented method: 405 with Allow; both as JSON errors."""
    path = template.replace("{id}", "1")
    documented = {m.upper() for m in DOCUMENT["paths"][template]}
    for method in documented:
        async with http.request(method, emulator.url + path, json={}) as response:
            assert response.status == 401, (method, path)
            await _check(response, f"{method} {path}")
    for method in {"GET", "POST", "PUT", "DELETE", "PATCH"} - documented:
        async with http.request(method, emulator.url + path, headers={"X-API-KEY": KEY}) as response:
            assert response.status == 405, (method, path)
            assert response.headers["Allow"]
            await _check(response, f"{method} {path}")
