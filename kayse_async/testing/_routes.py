"""The emulator's route table: every method and path of the Kayse API it serves.

The dispatcher routes with this table and the OpenAPI document is generated
from it, so a route cannot be served without being documented (a test
compares the two).
"""

from __future__ import annotations

import re
from typing import Final, Literal

import attrs

Auth = Literal["main", "calls"]

AUTH_HEADERS: Final[dict[Auth, str]] = {"main": "X-API-KEY", "calls": "X-Public-Api-Key"}


@attrs.frozen
class Route:
    """One operation: a method on a path template."""

    method: str
    template: str
    operation: str
    """The handler's name, and the OpenAPI operationId."""
    summary: str
    auth: Auth = "main"

    @property
    def has_body(self) -> bool:
        """True when the operation reads a JSON request body."""
        return self.method in ("POST", "PUT")


ROUTES: Final = (
    Route("POST", "/v1/clients", "create_client", "Create a new client"),
    Route("POST", "/v1/clients/bulk", "bulk_upsert_clients", "Bulk upsert clients"),
    Route("GET", "/v1/clients/{id}", "get_client", "Get a client by ID"),
    Route("PUT", "/v1/clients/{id}", "update_client", "Update a client (full replacement)"),
    Route("DELETE", "/v1/clients/{id}", "delete_client", "Delete a client"),
    Route("POST", "/v1/cases", "create_case", "Create a new case"),
    Route("POST", "/v1/cases/bulk", "bulk_upsert_cases", "Bulk upsert cases"),
    Route("POST", "/v1/cases/bulk_delete", "bulk_delete_cases", "Bulk delete cases"),
    Route("POST", "/v1/cases/communication/sms", "send_sms", "Send SMS to Client + Case"),
    Route("POST", "/v1/cases/communication/email", "send_email", "Send Email to Client + Case"),
    Route("GET", "/v1/cases/{id}", "get_case", "Get a case by ID"),
    Route("PUT", "/v1/cases/{id}", "update_case", "Update a case (full replacement)"),
    Route("DELETE", "/v1/cases/{id}", "delete_case", "Delete a case"),
    Route("GET", "/v1/case_lists", "list_case_lists", "List case lists"),
    Route("POST", "/v1/case_lists", "create_case_list", "Create a case list"),
    Route("POST", "/v1/case_lists/bulk", "bulk_upsert_case_lists", "Bulk upsert case lists"),
    Route("GET", "/v1/campaigns", "list_campaigns", "List campaigns"),
    Route("POST", "/v1/campaigns", "create_campaign", "Create a campaign"),
    Route("POST", "/v1/calls", "schedule_call", "Schedule a new AI call", auth="calls"),
    Route("GET", "/v1/metadata/objects", "metadata_objects", "List objects and fields"),
)


@attrs.frozen
class Path:
    """A path template and the operations it serves, by method."""

    template: str
    pattern: re.Pattern[str]
    routes: dict[str, Route]


def _compile(template: str) -> re.Pattern[str]:
    parts = re.split(r"\{(\w+)\}", template)
    regex = "".join(
        re.escape(part) if index % 2 == 0 else rf"(?P<{part}>[0-9]{{1,30}})" for index, part in enumerate(parts)
    )
    return re.compile(regex)


def _paths() -> tuple[Path, ...]:
    by_template: dict[str, dict[str, Route]] = {}
    for route in ROUTES:
        by_template.setdefault(route.template, {})[route.method] = route
    # Literal paths first, so /v1/clients/bulk is never read as a client id.
    ordered = sorted(by_template, key=lambda template: "{" in template)
    return tuple(Path(template, _compile(template), by_template[template]) for template in ordered)


PATHS: Final = _paths()


def match(path: str) -> tuple[Path, dict[str, int]] | None:
    """The path template ``path`` falls under and its integer parameters, or None."""
    for candidate in PATHS:
        found = candidate.pattern.fullmatch(path)
        if found is not None:
            return candidate, {name: int(value) for name, value in found.groupdict().items()}
    return None
