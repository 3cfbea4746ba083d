"""The OpenAPI document: generated from the tables, shipped, equal to the docs copy, true to the server."""

from __future__ import annotations

from typing import Any

import pytest

from kayse_async.testing import Emulator, openapi_document
from kayse_async.testing import _validation as v
from kayse_async.testing._routes import ROUTES

from .helpers import Api
from .openapi_gen import DOCS_COPY, PACKAGED, build_document, render
from .test_emulator_http import TABLES, VALID, wrong_values


def schema_tools() -> tuple[Any, Any]:
    """jsonschema and referencing, or a visible skip when they are not installed."""
    return pytest.importorskip("jsonschema"), pytest.importorskip("referencing")


REGENERATE = "python tests/emulator/openapi_gen.py"

INTROSPECTION = {
    ("GET", "/_emulator/stats"),
    ("GET", "/_emulator/store"),
    ("GET", "/_emulator/outbox"),
    ("POST", "/_emulator/reset"),
    ("GET", "/_emulator/config"),
    ("POST", "/_emulator/config"),
}


def validator(document: dict[str, Any], pointer: str) -> Any:
    """A JSON Schema validator for one schema of the document ($refs resolved inside it)."""
    jsonschema, referencing = schema_tools()
    resource = referencing.Resource.from_contents(document, default_specification=referencing.jsonschema.DRAFT202012)
    registry = referencing.Registry().with_resource("urn:kayse", resource)
    return jsonschema.Draft202012Validator(
        {"$ref": f"urn:kayse#{pointer}"},
        registry=registry,
        format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER,
    )


def test_packaged_document_is_the_generated_one() -> None:
    """The shipped openapi.json is exactly what the tables generate now (regenerate: see REGENERATE)."""
    assert PACKAGED.read_text(encoding="utf-8") == render(build_document()), REGENERATE
    assert openapi_document() == build_document()


def test_docs_copy_equals_the_packaged_document() -> None:
    """docs/openapi.json is a byte-for-byte copy of the packaged document."""
    assert DOCS_COPY.read_bytes() == PACKAGED.read_bytes(), REGENERATE


def test_document_is_valid_openapi_31() -> None:
    """The document passes an OpenAPI 3.1 validator."""
    spec_validator = pytest.importorskip("openapi_spec_validator")
    document = openapi_document()
    assert document["openapi"].startswith("3.1")
    spec_validator.validate(document)


def test_routes_and_document_agree() -> None:
    """Every route the emulator serves is in the document with its method, and nothing else is."""
    document = openapi_document()
    documented = {(method.upper(), path) for path, item in document["paths"].items() for method in item}
    served = {(route.method, route.template) for route in ROUTES}
    assert documented == served


async def test_app_routes_are_the_table_plus_introspection(emulator: Emulator) -> None:
    """The aiohttp app serves the route table (through one dispatcher) and the introspection routes only."""
    app = emulator.service.application()
    registered = {
        (route.method, route.resource.canonical) for route in app.router.routes() if route.resource is not None
    }
    assert registered - {("HEAD", path) for _, path in INTROSPECTION} == INTROSPECTION | {("*", "/{tail}")}


async def test_document_methods_answer_and_others_are_405(api: Api) -> None:
    """For each documented path, its methods are served and every other method is a 405 listing them."""
    for path, item in openapi_document()["paths"].items():
        concrete = path.replace("{id}", "1")
        allowed = {method.upper() for method in item}
        for method in ("GET", "POST", "PUT", "DELETE", "PATCH"):
            reply = await api.call(method, concrete, {} if method in ("POST", "PUT") else None)
            if method in allowed:
                assert reply.status != 405, (method, path)
            else:
                assert reply.status == 405, (method, path)
                assert set(reply.headers["Allow"].split(", ")) == allowed


CREATE_SCHEMAS = {
    "/v1/clients": "ClientCreate",
    "/v1/cases": "CaseCreate",
    "/v1/case_lists": "CaseListCreate",
    "/v1/campaigns": "CampaignCreate",
    "/v1/cases/communication/sms": "Sms",
    "/v1/cases/communication/email": "Email",
    "/v1/calls": "Call",
}


@pytest.mark.parametrize("path", sorted(CREATE_SCHEMAS))
def test_request_schemas_agree_with_the_validation_tables(path: str) -> None:
    """Each request schema has the table's fields and required list, accepts what the server accepts
    and refuses each wrong value the server refuses."""
    document = openapi_document()
    name = CREATE_SCHEMAS[path]
    schema = document["components"]["schemas"][name]
    fields = TABLES[path]
    extra = {"case_id"} if path == "/v1/clients" else set()
    assert set(schema["properties"]) == {field.name for field in fields} | extra
    assert set(schema.get("required", [])) == {field.name for field in fields if field.required}
    check = validator(document, f"/components/schemas/{name}")
    assert check.is_valid(VALID[path])
    for field in fields:
        for value, _ in wrong_values(field.kind):
            assert not check.is_valid({**VALID[path], field.name: value}), (field.name, value)
        if field.required:
            assert not check.is_valid({key: val for key, val in VALID[path].items() if key != field.name})
    assert not check.is_valid({**VALID[path], "unknown_field": 1})


def test_bulk_schemas_follow_create_and_update_rules() -> None:
    """Bulk items: without id all required fields; with id any subset; containers need at least one item."""
    document = openapi_document()
    check = validator(document, "/components/schemas/ClientBulk")
    assert check.is_valid({"clients": [VALID["/v1/clients"], {"id": 4, "city": "x"}]})
    assert not check.is_valid({"clients": [{"city": "x"}]})
    assert not check.is_valid({"clients": []})
    assert not check.is_valid({"clients": [{"id": True}]})
    bulk_delete = validator(document, "/components/schemas/BulkDelete")
    assert bulk_delete.is_valid({"ids": [1] * v.MAX_BULK_DELETE})
    assert not bulk_delete.is_valid({"ids": [1] * (v.MAX_BULK_DELETE + 1)})
    assert not bulk_delete.is_valid({"ids": []})


async def test_responses_match_their_schemas(api: Api) -> None:
    """The bodies the emulator sends for each operation validate against the document's response schemas."""
    jsonschema, _ = schema_tools()
    document = openapi_document()
    calls: list[tuple[str, str, Any]] = [
        ("POST", "/v1/cases", VALID["/v1/cases"]),
        ("POST", "/v1/clients", {**VALID["/v1/clients"], "case_ids": [1], "meta": {"a": 1}}),
        ("GET", "/v1/clients/1", None),
        ("PUT", "/v1/clients/1", {"city": "x", "case_ids": [1]}),
        ("POST", "/v1/clients/bulk", {"clients": [{"id": 1}]}),
        ("GET", "/v1/cases/1", None),
        ("PUT", "/v1/cases/1", {"client_ids": [1]}),
        ("POST", "/v1/cases/communication/sms", VALID["/v1/cases/communication/sms"]),
        ("POST", "/v1/cases/communication/email", VALID["/v1/cases/communication/email"]),
        ("POST", "/v1/cases/bulk", {"cases": [{"id": 1}]}),
        ("POST", "/v1/case_lists", {"name": "L", "filter": {"statuses": ["a"]}}),
        ("GET", "/v1/case_lists", None),
        ("POST", "/v1/case_lists/bulk", {"lists": [{"id": 1, "name": "M"}]}),
        ("POST", "/v1/campaigns", {**VALID["/v1/campaigns"], "callback_delays": [{"days": 1}]}),
        ("GET", "/v1/campaigns", None),
        ("POST", "/v1/calls", VALID["/v1/calls"]),
        ("GET", "/v1/metadata/objects", None),
        ("DELETE", "/v1/clients/1", None),
        ("POST", "/v1/cases/bulk_delete", {"ids": [1]}),
        ("POST", "/v1/clients", {}),
    ]
    operations = {(route.method, route.template): route for route in ROUTES}
    seen: set[str] = set()
    for method, path, body in calls:
        reply = await api.call(method, path, body)
        template = path.replace("/1", "/{id}") if path.endswith("/1") else path
        operation = document["paths"][template][method.lower()]
        status = str(reply.status)
        response = operation["responses"][status]
        if "$ref" in response:
            response = document["components"]["responses"][status]
        schema = response["content"]["application/json"]["schema"]
        # Local "#/components/..." references resolve against the schema's root: carry the components.
        check = jsonschema.Draft202012Validator({**schema, "components": document["components"]})
        errors = [error.message for error in check.iter_errors(reply.body)]
        assert errors == [], (method, path, reply.status)
        if reply.status == 200:
            seen.add(operations[(method, template)].operation)
    assert seen == {route.operation for route in ROUTES} - {"delete_case"}
