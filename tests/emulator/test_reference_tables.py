"""The field tables agree with the reference's own request tables, or docs/reference-notes.md says why not.

The reference's markdown tables are parsed per endpoint (the section title is
the line before each ``curl``) and compared with the SDK's tables in
``kayse_async._wire.fields`` (names, required flags, types, which fields a PUT
clears), with the parameters of the calls that take query or bulk-delete
fields, and with the emulator's tables. Every difference found must be listed,
with its reference line, in the "Differences from the reference's request
tables" table of docs/reference-notes.md, and every difference listed there
must still be one: an undocumented or a stale difference fails.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import attrs
import pytest

from kayse_async._resources._campaigns import Campaigns
from kayse_async._resources._case_lists import CaseLists
from kayse_async._resources._cases import Cases
from kayse_async._wire import fields
from kayse_async._wire.fields import Kind, Table
from kayse_async.testing import _validation as emulator

REFERENCE = Path(__file__).with_name("data") / "kayse-public-api.txt"
NOTES = Path(__file__).parents[2] / "docs" / "reference-notes.md"
NOTES_HEADING = "## Differences from the reference's request tables"
HEADER = "| Field | Required | Type | Description |"
LABELS = ("Request Body Fields", "URL Parameters", "Query Parameters", "Query Params")

TABLES: dict[str, tuple[Table, str]] = {
    "Create a new client": (fields.CLIENTS, "create"),
    "Update a client": (fields.CLIENTS, "update"),
    "Bulk upsert clients": (fields.CLIENTS, "bulk"),
    "Create a new case": (fields.CASES, "create"),
    "Update a case": (fields.CASES, "update"),
    "Bulk upsert cases": (fields.CASES, "bulk"),
    "Send SMS to Client + Case": (fields.SMS, "create"),
    "Send Email to Client + Case": (fields.EMAIL, "create"),
    "Create a case list": (fields.CASE_LISTS, "create"),
    "Bulk upsert case lists": (fields.CASE_LISTS, "bulk"),
    "Schedule New AI Call": (fields.CALLS, "create"),
    "Create Campaign": (fields.CAMPAIGNS, "create"),
}
"""The SDK's table of each endpoint with a request body; ``bulk``: the rows list only some fields."""

CALLS: dict[str, Callable[..., Any]] = {
    "Bulk delete cases": Cases.bulk_delete,
    "List case lists": CaseLists.list,
    "List Campaigns": Campaigns.list,
}
"""The call that takes each endpoint's fields as parameters."""

KINDS: dict[str, set[Kind]] = {
    "String": {Kind.STR},
    "Integer": {Kind.ID, Kind.COUNT},
    "Boolean": {Kind.BOOL},
    "Date": {Kind.DATE},
    "Object": {Kind.OBJECT},
    "Array": {Kind.ID_LIST},
    "Array<Integer>": {Kind.ID_LIST},
    "[]Object": {Kind.CALLBACK_DELAYS},
}
"""The kinds that can stand for each type name of the reference."""

PYTHON: dict[str, str] = {"String": "str", "Int": "int", "Bool": "bool", "Boolean": "bool", "Array": "int"}
"""The type a parameter's annotation names for each type name of the reference."""


@attrs.frozen
class Row:
    """One row of a reference table; ``name`` is empty where the reference lost it."""

    line: int
    name: str
    required: str
    type: str
    description: str


@attrs.frozen
class RefTable:
    """One table of the reference: its endpoint's section title, its label and its header line."""

    section: str
    label: str
    line: int
    rows: list[Row] = attrs.field(factory=list)


def _row(line: int, text: str) -> Row:
    cells = [cell.strip() for cell in text.strip().strip("|").split("|")]
    if cells[0] in ("true", "false"):  # the name cell is missing: the rest moved one to the left
        return Row(line, "", cells[0], cells[1], cells[2])
    return Row(line, cells[0], cells[1], cells[2], cells[3] if len(cells) > 3 else "")


def reference_tables() -> list[RefTable]:
    """Every ``| Field | Required | Type | Description |`` table of the reference, with its rows."""
    lines = REFERENCE.read_text(encoding="utf-8").splitlines()
    tables: list[RefTable] = []
    section = label = ""
    current: RefTable | None = None
    for number, line in enumerate(lines, 1):
        if current is not None:
            if line.startswith("|"):
                if not line.startswith("|---"):
                    current.rows.append(_row(number, line))
                continue
            if line.endswith("|"):  # a row's description broken onto a line of its own
                continue
            current = None
        if number < len(lines) and lines[number].startswith("curl "):
            section = line
        elif line in LABELS:
            label = line
        elif line == HEADER:
            current = RefTable(section, label, number)
            tables.append(current)
    return tables


def _request_tables() -> list[RefTable]:
    return [table for table in reference_tables() if table.label != "URL Parameters"]


Difference = tuple[int, str, str]
"""(reference line, field, what differs): ``unnamed``, ``missing``, ``added``, ``required`` or ``type``."""


def _field_name(table: Table, row: Row) -> str:
    """The row's field without a bulk prefix (``clients[].case_ids``); a lost name found by its description."""
    if not row.name:
        return next((field.name for field in table.fields if field.description == row.description), "")
    return re.sub(r"^\w+\[\]\.", "", row.name)


def table_differences(ref: RefTable, table: Table, mode: str) -> set[Difference]:
    """How ``table`` differs from one reference table of its endpoint."""
    found: set[Difference] = set()
    seen: set[str] = set()
    for row in ref.rows:
        name = _field_name(table, row)
        if "[" in name or name in ("id", "clients", "cases", "lists"):
            continue  # the bulk container, its id, or "the remaining fields"
        if not row.name:
            found.add((row.line, name, "unnamed"))
        seen.add(name)
        field = table.by_name.get(name)
        if field is None:
            found.add((row.line, name, "missing"))
            continue
        if row.required != ("true" if field.required else "false"):
            found.add((row.line, name, "required"))
        if field.kind not in KINDS.get(row.type, set()):
            found.add((row.line, name, "type"))
    if mode != "bulk":
        found |= {(ref.line, field.name, "added") for field in table.fields if field.name not in seen}
    return found


def call_differences(ref: RefTable, call: Callable[..., Any]) -> set[Difference]:
    """How a call's parameters differ from the fields of the reference table its endpoint takes."""
    parameters = inspect.signature(call).parameters
    found: set[Difference] = set()
    for row in ref.rows:
        parameter = parameters.get(row.name)
        if parameter is None:
            found.add((row.line, row.name, "missing"))
            continue
        if (row.required == "true") != (parameter.default is inspect.Parameter.empty):
            found.add((row.line, row.name, "required"))
        if PYTHON[row.type] not in str(parameter.annotation):
            found.add((row.line, row.name, "type"))
    return found


def all_differences() -> set[Difference]:
    """Every difference between the project's tables and the reference's request tables."""
    found: set[Difference] = set()
    for ref in _request_tables():
        if ref.section in CALLS:
            found |= call_differences(ref, CALLS[ref.section])
        else:
            table, mode = TABLES[ref.section]
            found |= table_differences(ref, table, mode)
    return found


def documented_differences() -> set[Difference]:
    """The differences docs/reference-notes.md lists: its table's (line, field, difference) columns."""
    text = NOTES.read_text(encoding="utf-8")
    start = text.index(NOTES_HEADING)
    end = text.find("\n## ", start + 1)
    listed: set[Difference] = set()
    for line in text[start : end if end != -1 else None].splitlines():
        cells = [cell.strip().strip("`") for cell in line.strip().strip("|").split("|")]
        if line.startswith("|") and cells[0].isdigit():
            listed.add((int(cells[0]), cells[2], cells[3]))
    return listed


def test_the_parser_reads_every_request_table_of_the_reference() -> None:
    """Every request table is found under its endpoint, each known to the test, with the rows it holds."""
    tables = _request_tables()
    assert {table.section for table in tables} == set(TABLES) | set(CALLS)
    assert len(tables) == len(TABLES) + len(CALLS)
    by_section = {table.section: table for table in tables}
    assert [row.name for row in by_section["Schedule New AI Call"].rows] == ["campaign_id", "case_id"]
    client = by_section["Create a new client"]
    assert (client.line, client.rows[0]) == (85, Row(87, "", "false", "String", "Client's email address"))
    assert [row.name for row in by_section["Update a client"].rows][-1] == "case_ids"
    assert len(by_section["Create Campaign"].rows) == 16


def test_every_difference_from_the_reference_is_documented() -> None:
    """The differences found are exactly those docs/reference-notes.md lists (none undocumented, none stale)."""
    found, listed = all_differences(), documented_differences()
    assert sorted(found - listed) == [], "differences from the reference not listed in docs/reference-notes.md"
    assert sorted(listed - found) == [], "docs/reference-notes.md lists differences that are gone"


@pytest.mark.parametrize("section", ["Update a client", "Update a case"])
def test_a_put_clears_exactly_the_optional_fields_its_table_lists(section: str) -> None:
    """Field.put is true for exactly the optional fields the reference's PUT table lists."""
    ref = next(table for table in _request_tables() if table.section == section)
    table = TABLES[section][0]
    listed = {_field_name(table, row) for row in ref.rows}
    optional = [field for field in table.fields if not field.required]
    assert {field.name for field in optional if field.put} == listed & {field.name for field in optional}


def test_the_emulator_checks_the_same_tables() -> None:
    """The emulator's tables hold the SDK's fields, flags and kinds; its own extras are the case_id alias."""
    pairs = [
        (emulator.CLIENT_FIELDS, fields.CLIENTS),
        (emulator.CASE_FIELDS, fields.CASES),
        (emulator.CASE_LIST_FIELDS, fields.CASE_LISTS),
        (emulator.CAMPAIGN_FIELDS, fields.CAMPAIGNS),
        (emulator.SMS_FIELDS, fields.SMS),
        (emulator.EMAIL_FIELDS, fields.EMAIL),
        (emulator.CALL_FIELDS, fields.CALLS),
    ]
    for rules, table in pairs:
        assert [(f.name, f.required, f.put) for f in rules] == [(f.name, f.required, f.put) for f in table.fields]
        for rule, field in zip(rules, table.fields, strict=True):
            assert rule.kind is emulator.KINDS[field.kind] or (rule.name, rule.kind) == ("filter", emulator.FILTER)
    assert emulator.CLIENT_ALIAS.name == "case_id"  # the create table's Integer case_id, line 101


def test_the_emulator_bulk_delete_table_matches_the_reference() -> None:
    """The emulator's bulk_delete fields are the reference's, with its required flags."""
    ref = next(table for table in _request_tables() if table.section == "Bulk delete cases")
    rows = {row.name: row.required == "true" for row in ref.rows}
    assert rows == {field.name: field.required for field in emulator.BULK_DELETE_FIELDS}
