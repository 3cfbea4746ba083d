"""Readers of import files: CSV, JSON Lines and JSON arrays, one record at a time with its line number.

Every reader yields :class:`Record` objects: the line where the record starts
and either its fields (typed as the API wants them) or the reason it could not
be read. A bad line never stops the reading: it is reported, and the rest goes.

CSV cells are text; they are converted with the resource's field table:

- an empty cell means "not given" (on an update, a full replacement, an
  optional field not given is cleared by the server);
- ``id`` and integer fields: whole numbers; booleans: ``true`` / ``false``;
- lists of ids (``case_ids``, ``client_ids``, ``include_ids``, ``exclude_ids``):
  ``1;2;3`` or a JSON array ``[1, 2, 3]``;
- object fields (``meta``, ``external_source_data``, ``filter``): a JSON object;
- dates stay ``YYYY-MM-DD`` text, checked like every other field before sending.

JSON Lines and JSON values are taken as they are: JSON is already typed.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, Literal, cast

import attrs

from .._wire.fields import CASE_LISTS, CASES, CLIENTS, MAX_INT, Field, Kind

Format = Literal["csv", "jsonl", "json"]
Resource = Literal["clients", "cases", "case-lists"]

FORMATS: dict[str, Format] = {
    ".csv": "csv",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "json",
}
"""File extensions and the format each implies."""

TABLES: dict[Resource, Mapping[str, Field]] = {
    "clients": CLIENTS.by_name,
    "cases": CASES.by_name,
    "case-lists": CASE_LISTS.by_name,
}
"""The field table of each importable resource."""


class InputError(Exception):
    """The file as a whole cannot be imported (unreadable, unknown format, unknown CSV column)."""


@attrs.frozen
class Record:
    """One record of an import file: its first line, and its fields or the reason it was refused."""

    line: int
    fields: dict[str, Any] | None = None
    error: str | None = None


def detect_format(path: Path, given: str | None) -> Format:
    """The format of ``path``: ``given`` if set, else from the file's extension."""
    if given is not None:
        if given not in ("csv", "jsonl", "json"):
            raise InputError(f"unknown format {given!r}: use csv, jsonl or json")
        fmt: Format = given  # type: ignore[assignment]
        return fmt
    found = FORMATS.get(path.suffix.lower())
    if found is None:
        raise InputError(f"cannot tell the format of {path.name} from its extension: pass --format csv|jsonl|json")
    return found


def read_records(path: Path, fmt: Format, resource: Resource) -> Iterator[Record]:
    """Every record of ``path`` in order, read lazily (a JSON array is read whole)."""
    table = TABLES[resource]
    if fmt == "csv":
        return _read_csv(path, table)
    if fmt == "jsonl":
        return _read_jsonl(path, table)
    return _read_json(path, table)


def count_records(path: Path, fmt: Format, resource: Resource) -> int:
    """How many records ``path`` holds: a full read, so that a file-level error shows before anything is sent."""
    return sum(1 for _ in read_records(path, fmt, resource))


def _open(path: Path) -> Any:
    try:
        # utf-8-sig: spreadsheet programs often start CSV files with a byte-order mark.
        return path.open(encoding="utf-8-sig", newline="")
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror or exc}") from None


def _known(table: Mapping[str, Field]) -> frozenset[str]:
    return frozenset({"id", *table})


def _read_csv(path: Path, table: Mapping[str, Field]) -> Iterator[Record]:
    with _open(path) as handle:
        reader = csv.reader(handle, strict=True)
        try:
            header = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            raise InputError(f"{path.name}, line 1: not valid CSV: {exc}") from None
        except UnicodeDecodeError:
            raise InputError(f"{path.name}: not UTF-8 text") from None
        names = [name.strip() for name in header]
        unknown = [name for name in names if name and name not in _known(table)]
        if unknown:
            raise InputError(
                f"{path.name}: unknown column(s) {', '.join(repr(n) for n in unknown)}; "
                f"columns are the API's field names: id, {', '.join(table)}"
            )
        seen: set[str] = set()
        for name in names:
            if name in seen:
                raise InputError(f"{path.name}: column {name!r} appears twice")
            seen.add(name)
        start = reader.line_num + 1
        while True:
            try:
                row = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                raise InputError(f"{path.name}, line {start}: not valid CSV: {exc}") from None
            except UnicodeDecodeError:
                raise InputError(f"{path.name}, near line {start}: not UTF-8 text") from None
            line, start = start, reader.line_num + 1
            if not any(cell.strip() for cell in row):
                continue
            if len(row) != len(names):
                yield Record(line, error=f"expected {len(names)} cells as in the header, found {len(row)}")
                continue
            try:
                fields = {
                    name: _cell(name, table.get(name), cell)
                    for name, cell in zip(names, row, strict=True)
                    if cell != ""
                }
            except ValueError as exc:
                yield Record(line, error=str(exc))
                continue
            yield Record(line, fields=fields)


_LIST_KINDS = (Kind.ID_LIST, Kind.WEEKDAYS, Kind.CALLBACK_DELAYS)


def _cell(name: str, spec: Field | None, text: str) -> Any:
    """Convert one CSV cell to the value the field takes; ValueError names the field."""
    kind = Kind.ID if name == "id" else (spec.kind if spec is not None else Kind.STR)
    value = text.strip()
    if kind is Kind.STR or kind is Kind.DATE:
        return text if kind is Kind.STR else value
    if kind is Kind.ID or kind is Kind.COUNT:
        return _int(name, value)
    if kind is Kind.BOOL:
        lowered = value.lower()
        if lowered in ("true", "false"):
            return lowered == "true"
        raise ValueError(f"{name}: expected true or false, got {value[:40]!r}")
    if kind is Kind.OBJECT:
        parsed = _json_cell(name, value)
        if not isinstance(parsed, dict):
            raise ValueError(f"{name}: expected a JSON object, got {value[:40]!r}")
        mapping: dict[str, Any] = parsed
        return mapping
    if kind in _LIST_KINDS:
        if value.startswith("["):
            parsed = _json_cell(name, value)
            if not isinstance(parsed, list):  # pragma: no cover - a '[' that parses is a list
                raise ValueError(f"{name}: expected a JSON array")
            items: list[Any] = parsed
            return items
        if kind is Kind.ID_LIST:
            return [_int(f"{name}[{i}]", part.strip()) for i, part in enumerate(value.split(";"))]
        if kind is Kind.WEEKDAYS:
            return [part.strip() for part in value.split(";")]
        raise ValueError(f"{name}: expected a JSON array, got {value[:40]!r}")
    raise ValueError(f"{name}: cannot be given in a CSV cell")  # pragma: no cover - every kind is handled


def _int(name: str, value: str) -> int:
    try:
        number = int(value, 10)
    except ValueError:
        raise ValueError(f"{name}: expected a whole number, got {value[:40]!r}") from None
    if abs(number) > MAX_INT:
        raise ValueError(f"{name}: number out of range")
    return number


def _json_cell(name: str, value: str) -> Any:
    try:
        return json.loads(value)
    except ValueError as exc:
        raise ValueError(f"{name}: not valid JSON ({exc.args[0].split(':')[0]})") from None


def _check_keys(fields: Mapping[str, Any], table: Mapping[str, Field]) -> str | None:
    known = _known(table)
    unknown = [key for key in fields if key not in known]
    if unknown:
        return f"unknown field(s) {', '.join(repr(k) for k in unknown)}"
    return None


def _record(line: int, value: Any, table: Mapping[str, Field]) -> Record:
    if not isinstance(value, dict):
        return Record(line, error=f"expected a JSON object, got {_json_type(value)}")
    fields = cast("dict[str, Any]", value)
    problem = _check_keys(fields, table)
    if problem is not None:
        return Record(line, error=problem)
    return Record(line, fields=fields)


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    return "an array" if isinstance(value, list) else "a value"


def _read_jsonl(path: Path, table: Mapping[str, Field]) -> Iterator[Record]:
    with _open(path) as handle:
        line = 0
        while True:
            try:
                text = handle.readline()
            except UnicodeDecodeError:
                raise InputError(f"{path.name}, after line {line}: not UTF-8 text") from None
            if not text:
                return
            line += 1
            if not text.strip():
                continue
            try:
                value = json.loads(text)
            except ValueError as exc:
                yield Record(line, error=f"not valid JSON: {exc.args[0]}")
                continue
            yield _record(line, value, table)


def _read_json(path: Path, table: Mapping[str, Field]) -> Iterator[Record]:
    for line, value in _json_array_items(path):
        yield _record(line, value, table)


def _json_array_items(path: Path) -> Iterator[tuple[int, Any]]:
    """The items of a JSON array file, each with the line where it starts."""
    with _open(path) as handle:
        try:
            text: str = handle.read()
        except UnicodeDecodeError:
            raise InputError(f"{path.name}: not UTF-8 text") from None
    decoder = json.JSONDecoder()
    pos = _skip_ws(text, 0)
    if pos >= len(text) or text[pos] != "[":
        raise InputError(f"{path.name}: expected a JSON array of objects (use .jsonl for one object per line)")
    line = 1 + text.count("\n", 0, pos)
    counted = pos
    pos = _skip_ws(text, pos + 1)
    if pos < len(text) and text[pos] == "]":
        return
    while True:
        line += text.count("\n", counted, pos)
        counted = pos
        try:
            value, end = decoder.raw_decode(text, pos)
        except ValueError as exc:
            raise InputError(f"{path.name}, line {line}: not valid JSON: {exc.args[0].split(':')[0]}") from None
        yield line, value
        pos = _skip_ws(text, end)
        if pos < len(text) and text[pos] == ",":
            pos = _skip_ws(text, pos + 1)
            continue
        if pos < len(text) and text[pos] == "]":
            if _skip_ws(text, pos + 1) != len(text):
                raise InputError(f"{path.name}: unexpected text after the closing ]")
            return
        line += text.count("\n", counted, pos)
        raise InputError(f"{path.name}, line {line}: expected ',' or ']' after an item")


def _skip_ws(text: str, pos: int) -> int:
    while pos < len(text) and text[pos] in " \t\r\n":
        pos += 1
    return pos
