"""Writes the OpenAPI 3.1 document of the Kayse API as the emulator implements it.

    python tests/emulator/openapi_gen.py

The document is generated from the emulator's route table and validation tables, each field's
JSON Schema derived from its kind (:func:`kind_schema`). It writes the packaged
``kayse_async/testing/openapi.json`` and its copy ``docs/openapi.json``;
``test_emulator_openapi.py`` fails while either differs from a fresh run.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Final

from kayse_async.testing import _validation as v
from kayse_async.testing._routes import AUTH_HEADERS, ROUTES, Route

ROOT: Final = Path(__file__).resolve().parents[2]
PACKAGED: Final = ROOT / "kayse_async" / "testing" / "openapi.json"
DOCS_COPY: Final = ROOT / "docs" / "openapi.json"

_ERROR_STATUSES: Final = {
    "400": "Bad request: the body names the field and the rule",
    "401": "Missing or wrong API key",
    "404": "Unknown id",
    "405": "Method not allowed on this path (see the Allow header)",
    "413": "Bulk batch larger than the server accepts",
    "429": "Rate limit exceeded (see Retry-After)",
    "500": "Internal server error",
    "503": "Service unavailable (see Retry-After)",
}


def _int(minimum: int) -> dict[str, Any]:
    return {"type": "integer", "minimum": minimum, "maximum": v.MAX_INT}


_KIND_SCHEMAS: Final[dict[v.Kind, dict[str, Any]]] = {
    v.STRING: {"type": "string"},
    v.ID: _int(1),
    v.COUNT: _int(0),
    v.BOOL: {"type": "boolean"},
    v.DATE: {"type": "string", "format": "date", "pattern": r"^\d{4}-\d{2}-\d{2}$"},
    v.OBJECT: {"type": "object"},
    v.ID_LIST: {"type": "array", "items": _int(1)},
    v.STRING_LIST: {"type": "array", "items": {"type": "string"}},
    v.WEEKDAY_LIST: {"type": "array", "items": {"enum": list(v.WEEKDAYS)}},
}


def kind_schema(kind: v.Kind) -> dict[str, Any]:
    """The JSON Schema of a non-null value of ``kind`` (a new dict: callers add to it)."""
    if kind is v.FILTER:
        return object_schema(v.FILTER_FIELDS, require=False)
    if kind is v.CALLBACK_DELAYS:
        return {"type": "array", "items": object_schema(v.DELAY_FIELDS, require=False)}
    return dict(_KIND_SCHEMAS[kind])


def nullable(schema: dict[str, Any]) -> dict[str, Any]:
    """``schema`` or null, in JSON Schema 2020-12 (OpenAPI 3.1) form."""
    return {"anyOf": [schema, {"type": "null"}]}


def object_schema(
    fields: tuple[v.Field, ...],
    *,
    require: bool,
    extra: dict[str, dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """The JSON Schema of a request body that ``v.check_fields`` checks with the same table."""
    properties: dict[str, Any] = {}
    for field in fields:
        schema = kind_schema(field.kind)
        if field.required:
            if schema.get("type") == "string" and "format" not in schema:
                schema["minLength"] = 1
                schema["pattern"] = r"\S"
        else:
            schema = nullable(schema)
        if field.description:
            schema["description"] = field.description
        properties[field.name] = schema
    properties.update(extra or {})
    result: dict[str, Any] = {"type": "object", "properties": properties, "additionalProperties": False}
    required = [field.name for field in fields if field.required and require]
    if required:
        result["required"] = required
    return result


def _ref(name: str) -> dict[str, Any]:
    return {"$ref": f"#/components/schemas/{name}"}


def _nullable_int() -> dict[str, Any]:
    return nullable({"type": "integer"})


def _record(fields: tuple[v.Field, ...], extra: dict[str, Any]) -> dict[str, Any]:
    """The schema of an object as the emulator returns it: every field present, optional ones nullable."""
    properties: dict[str, Any] = {"id": {"type": "integer"}}
    for field in fields:
        schema = kind_schema(field.kind)
        properties[field.name] = schema if field.required else nullable(schema)
    properties.update(extra)
    return {"type": "object", "properties": properties, "required": list(properties)}


def _bulk(container: str, create: str, update: str) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {
            container: {"type": "array", "minItems": 1, "items": {"oneOf": [_ref(create), _ref(update)]}},
        },
        "required": [container],
        "additionalProperties": False,
    }


def _with_id(schema: dict[str, Any]) -> dict[str, Any]:
    properties = {"id": kind_schema(v.ID), **schema["properties"]}
    return {**schema, "properties": properties, "required": ["id"]}


def _schemas() -> dict[str, Any]:
    alias = {"case_id": {**nullable(kind_schema(v.ID)), "deprecated": True, "description": v.CLIENT_ALIAS.description}}
    client_create = object_schema(v.CLIENT_FIELDS, require=True, extra=alias)
    client_update = object_schema(v.CLIENT_FIELDS, require=False, extra=alias)
    case_create = object_schema(v.CASE_FIELDS, require=True)
    case_update = object_schema(v.CASE_FIELDS, require=False)
    list_create = object_schema(v.CASE_LIST_FIELDS, require=True)
    list_update = object_schema(v.CASE_LIST_FIELDS, require=False)
    id_list = {"type": "array", "items": {"type": "integer"}}
    agent = {
        "type": "object",
        "properties": {
            "id": _nullable_int(),
            "name": nullable({"type": "string"}),
            "voice_id": nullable({"type": "string"}),
            "avatar_url": nullable({"type": "string"}),
        },
    }
    field_schema = {
        "type": "object",
        "properties": {
            "name": {"type": "string"},
            "type": {"type": "string"},
            "required": {"type": "boolean"},
            "description": {"type": "string"},
            "items": {"type": "string"},
        },
        "required": ["name", "type", "required", "description"],
    }
    return {
        "Error": {
            "type": "object",
            "properties": {"message": {"type": "string"}, "field": nullable({"type": "string"})},
            "required": ["message", "field"],
        },
        "Message": {"type": "object", "properties": {"message": {"type": "string"}}, "required": ["message"]},
        "ClientCreate": client_create,
        "ClientUpdate": client_update,
        "ClientBulkUpdate": _with_id(client_update),
        "ClientBulk": _bulk("clients", "ClientCreate", "ClientBulkUpdate"),
        "Client": _record(v.CLIENT_FIELDS, {"case_ids": id_list, "voice_calls_opted_out": {"type": "boolean"}}),
        "CaseCreate": case_create,
        "CaseUpdate": case_update,
        "CaseBulkUpdate": _with_id(case_update),
        "CaseBulk": _bulk("cases", "CaseCreate", "CaseBulkUpdate"),
        "Case": _record(v.CASE_FIELDS, {"client_ids": id_list}),
        "BulkDelete": object_schema(v.BULK_DELETE_FIELDS, require=True)
        | {
            "properties": {
                "ids": {**kind_schema(v.ID_LIST), "minItems": 1, "maxItems": v.MAX_BULK_DELETE},
                "with_clients": nullable(kind_schema(v.BOOL)),
            }
        },
        "Sms": object_schema(v.SMS_FIELDS, require=True),
        "Email": object_schema(v.EMAIL_FIELDS, require=True),
        "CaseListCreate": list_create,
        "CaseListBulkUpdate": _with_id(list_update),
        "CaseListBulk": _bulk("lists", "CaseListCreate", "CaseListBulkUpdate"),
        "CaseList": _record(v.CASE_LIST_FIELDS, {"filter": nullable({"type": "object"}), "case_ids": id_list}),
        "CampaignCreate": object_schema(v.CAMPAIGN_FIELDS, require=True),
        "Campaign": _record(
            v.CAMPAIGN_FIELDS,
            {"case_list_name": nullable({"type": "string"}), "agent": agent, "stats": {"type": "object"}},
        ),
        "Call": object_schema(v.CALL_FIELDS, require=True),
        "ScheduledCall": {
            "type": "object",
            "properties": {
                "campaign_id": {"type": "integer"},
                "client_id": _nullable_int(),
                "case_id": {"type": "integer"},
            },
            "required": ["campaign_id", "client_id", "case_id"],
        },
        "ObjectSchema": {
            "type": "object",
            "properties": {"name": {"type": "string"}, "fields": {"type": "array", "items": field_schema}},
            "required": ["name", "fields"],
        },
    }


_REQUESTS: Final = {
    "create_client": "ClientCreate",
    "update_client": "ClientUpdate",
    "bulk_upsert_clients": "ClientBulk",
    "create_case": "CaseCreate",
    "update_case": "CaseUpdate",
    "bulk_upsert_cases": "CaseBulk",
    "bulk_delete_cases": "BulkDelete",
    "send_sms": "Sms",
    "send_email": "Email",
    "create_case_list": "CaseListCreate",
    "bulk_upsert_case_lists": "CaseListBulk",
    "create_campaign": "CampaignCreate",
    "schedule_call": "Call",
}


def _array_of(name: str, container: str | None = None) -> dict[str, Any]:
    array = {"type": "array", "items": _ref(name)}
    if container is None:
        return array
    return {"type": "object", "properties": {container: array}, "required": [container]}


def _responses() -> dict[str, dict[str, Any]]:
    upserted = {
        "type": "object",
        "properties": {"id": {"type": "integer"}, "action": {"enum": ["created", "updated"]}},
        "required": ["id", "action"],
    }
    return {
        "create_client": _ref("Client"),
        "get_client": _ref("Client"),
        "update_client": _ref("Client"),
        "delete_client": _ref("Message"),
        "bulk_upsert_clients": _array_of("Client", "clients"),
        "create_case": _ref("Case"),
        "get_case": _ref("Case"),
        "update_case": _ref("Case"),
        "delete_case": _ref("Message"),
        "bulk_upsert_cases": _array_of("Case", "cases"),
        "bulk_delete_cases": {
            "type": "object",
            "properties": {"deleted_ids": {"type": "array", "items": {"type": "integer"}}},
            "required": ["deleted_ids"],
        },
        "send_sms": _ref("Message"),
        "send_email": _ref("Message"),
        "list_case_lists": {
            "type": "object",
            "properties": {
                "case_lists": {"type": "array", "items": _ref("CaseList")},
                "page": {"type": "integer"},
                "page_size": {"type": "integer"},
                "total": {"type": "integer"},
            },
            "required": ["case_lists", "page", "page_size", "total"],
        },
        "create_case_list": _ref("CaseList"),
        "bulk_upsert_case_lists": {
            "type": "object",
            "properties": {"lists": {"type": "array", "items": upserted}},
            "required": ["lists"],
        },
        "list_campaigns": _array_of("Campaign"),
        "create_campaign": _ref("Campaign"),
        "schedule_call": _ref("ScheduledCall"),
        "metadata_objects": _array_of("ObjectSchema"),
    }


_QUERY: Final[dict[str, list[dict[str, Any]]]] = {
    "list_case_lists": [
        {"name": "key", "in": "query", "schema": {"type": "string"}, "description": "Search in the list name"},
        {"name": "page", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": v.MAX_INT}},
        {
            "name": "page_size",
            "in": "query",
            "schema": {
                "type": "integer",
                "minimum": 1,
                "maximum": v.MAX_PAGE_SIZE,
                "default": v.DEFAULT_PAGE_SIZE,
            },
        },
        {"name": "hide_empty", "in": "query", "schema": {"type": "boolean"}},
    ],
    "list_campaigns": [
        {"name": "key", "in": "query", "schema": {"type": "string"}, "description": "Search in the campaign name"},
    ],
}

_RATE_HEADERS: Final = {
    name: {"schema": {"type": "integer"}, "description": text}
    for name, text in (
        ("X-RateLimit-Limit", "Requests allowed per period"),
        ("X-RateLimit-Remaining", "Requests left now"),
        ("X-RateLimit-Reset", "Seconds until more budget (delta) or a UTC epoch (>= 1e9)"),
    )
}


def _operation(route: Route, responses: dict[str, Any]) -> dict[str, Any]:
    operation: dict[str, Any] = {
        "operationId": route.operation,
        "summary": route.summary,
        "security": [{route.auth: []}],
    }
    parameters: list[dict[str, Any]] = []
    if "{id}" in route.template:
        parameters.append({"name": "id", "in": "path", "required": True, "schema": {"type": "integer", "minimum": 1}})
    parameters.extend(_QUERY.get(route.operation, []))
    if parameters:
        operation["parameters"] = parameters
    if route.operation in _REQUESTS:
        operation["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": _ref(_REQUESTS[route.operation])}},
        }
    operation["responses"] = {
        "200": {
            "description": "Success",
            "headers": _RATE_HEADERS,
            "content": {"application/json": {"schema": responses[route.operation]}},
        },
        **{status: {"$ref": f"#/components/responses/{status}"} for status in _ERROR_STATUSES},
    }
    return operation


def build_document() -> dict[str, Any]:
    """The OpenAPI document, generated from the route and validation tables."""
    responses = _responses()
    paths: dict[str, dict[str, Any]] = {}
    for route in ROUTES:
        paths.setdefault(route.template, {})[route.method.lower()] = _operation(route, responses)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Kayse Public API (as kayse_async.testing implements it)",
            "version": "1",
            "description": (
                "Every route the kayse_async emulator serves, with the request rules it enforces. "
                "Error bodies are {message, field}. See docs/emulator.md."
            ),
        },
        "servers": [
            {"url": "http://127.0.0.1:8400", "description": "The emulator"},
            {"url": "https://api.kayse.com", "description": "Kayse (main routes)"},
            {"url": "https://public-api.kayse.ai", "description": "Kayse (calls)"},
        ],
        "paths": paths,
        "components": {
            "securitySchemes": {
                auth: {"type": "apiKey", "in": "header", "name": header} for auth, header in AUTH_HEADERS.items()
            },
            "schemas": _schemas(),
            "responses": {
                status: {
                    "description": text,
                    "headers": _RATE_HEADERS,
                    "content": {"application/json": {"schema": _ref("Error")}},
                }
                for status, text in _ERROR_STATUSES.items()
            },
        },
    }


def render(document: dict[str, Any]) -> str:
    """The document as the packaged file holds it."""
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


def main() -> None:
    """Write the packaged document and its docs copy."""
    text = render(build_document())
    for target in (PACKAGED, DOCS_COPY):
        target.write_text(text, encoding="utf-8")
        print(f"wrote {target}")


if __name__ == "__main__":
    main()
