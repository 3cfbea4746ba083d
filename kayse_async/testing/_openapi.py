"""The OpenAPI 3.1 document of the Kayse API as the emulator implements it.

Generated from the route table and the validation tables
(:func:`build_document`); the packaged ``openapi.json`` is that output, and a
test keeps the two equal (:func:`regenerate` writes it again, and the docs
copy with it).
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path
from typing import Any, Final

from . import _validation as v
from ._routes import AUTH_HEADERS, ROUTES, Route

DOCUMENT_NAME: Final = "openapi.json"

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


def _ref(name: str) -> dict[str, Any]:
    return {"$ref": f"#/components/schemas/{name}"}


def _nullable_int() -> dict[str, Any]:
    return v.nullable({"type": "integer"})


def _record(fields: tuple[v.Field, ...], extra: dict[str, Any]) -> dict[str, Any]:
    """The schema of an object as the emulator returns it: every field present, optional ones nullable."""
    properties: dict[str, Any] = {"id": {"type": "integer"}}
    for field in fields:
        schema = field.kind.schema()
        properties[field.name] = schema if field.required else v.nullable(schema)
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
    properties = {"id": v.ID.schema(), **schema["properties"]}
    return {**schema, "properties": properties, "required": ["id"]}


def _schemas() -> dict[str, Any]:
    alias = {"case_id": {**v.nullable(v.ID.schema()), "deprecated": True, "description": v.CLIENT_ALIAS.description}}
    client_create = v.object_schema(v.CLIENT_FIELDS, require=True, extra=alias)
    client_update = v.object_schema(v.CLIENT_FIELDS, require=False, extra=alias)
    case_create = v.object_schema(v.CASE_FIELDS, require=True)
    case_update = v.object_schema(v.CASE_FIELDS, require=False)
    list_create = v.object_schema(v.CASE_LIST_FIELDS, require=True)
    list_update = v.object_schema(v.CASE_LIST_FIELDS, require=False)
    id_list = {"type": "array", "items": {"type": "integer"}}
    agent = {
        "type": "object",
        "properties": {
            "id": _nullable_int(),
            "name": v.nullable({"type": "string"}),
            "voice_id": v.nullable({"type": "string"}),
            "avatar_url": v.nullable({"type": "string"}),
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
            "properties": {"message": {"type": "string"}, "field": v.nullable({"type": "string"})},
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
        "BulkDelete": v.object_schema(v.BULK_DELETE_FIELDS, require=True)
        | {
            "properties": {
                "ids": {**v.ID_LIST.schema(), "minItems": 1, "maxItems": v.MAX_BULK_DELETE},
                "with_clients": v.nullable(v.BOOL.schema()),
            }
        },
        "Sms": v.object_schema(v.SMS_FIELDS, require=True),
        "Email": v.object_schema(v.EMAIL_FIELDS, require=True),
        "CaseListCreate": list_create,
        "CaseListBulkUpdate": _with_id(list_update),
        "CaseListBulk": _bulk("lists", "CaseListCreate", "CaseListBulkUpdate"),
        "CaseList": _record(v.CASE_LIST_FIELDS, {"filter": v.nullable({"type": "object"}), "case_ids": id_list}),
        "CampaignCreate": v.object_schema(v.CAMPAIGN_FIELDS, require=True),
        "Campaign": _record(
            v.CAMPAIGN_FIELDS,
            {"case_list_name": v.nullable({"type": "string"}), "agent": agent, "stats": {"type": "object"}},
        ),
        "Call": v.object_schema(v.CALL_FIELDS, require=True),
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


def openapi_document() -> dict[str, Any]:
    """The packaged OpenAPI 3.1 document of the API the emulator serves."""
    text = resources.files(__name__.rpartition(".")[0]).joinpath(DOCUMENT_NAME).read_text(encoding="utf-8")
    document: dict[str, Any] = json.loads(text)
    return document


def regenerate(copies: list[str]) -> None:
    """Write the generated document to the package and to the paths given (the docs copy)."""
    text = render(build_document())
    for target in [Path(__file__).with_name(DOCUMENT_NAME), *(Path(copy) for copy in copies)]:
        target.write_text(text, encoding="utf-8")
