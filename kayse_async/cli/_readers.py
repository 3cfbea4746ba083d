"""Readers of import files (CSV, JSON Lines, JSON arrays): one :class:`Record` at a time, with its line.

A bad record never stops the reading; a fault of the whole file raises :class:`InputError`. CSV
cells are typed by the resource's public ``schema()``: an empty cell is "not given", ``uint`` a
whole number, ``bool`` ``true``/``false``, arrays ``1;2;3`` or JSON, objects JSON, text as written.
"""

from __future__ import annotations

import codecs
import csv
import functools
import itertools
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import attrs

from .. import AsyncKayse
from ..models import FieldSchema

Format = Literal["csv", "jsonl", "json"]
Resource = Literal["clients", "cases", "case-lists"]

FORMATS: dict[str, Format] = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "json"}
ENCODING = "utf-8-sig"  # UTF-8, with or without the byte-order mark spreadsheets often write first
_SPACE = re.compile(r"[ \t\r\n]*")
_ID = FieldSchema(name="id", type="uint")


class InputError(Exception):
    """The file as a whole cannot be imported (unreadable, not text, unknown format or column, no records)."""


@attrs.frozen
class Record:
    """One record of an import file: its first line, and its fields or the reason it was refused."""

    line: int
    fields: dict[str, Any] | None = None
    error: str | None = None


@functools.cache
def api(resource: Resource) -> Any:
    """The SDK's resource object, for its ``check()`` and ``schema()`` (class methods: they send nothing)."""
    local = "http://127.0.0.1"  # never sent to: the client only lends its resources' class methods
    offline = AsyncKayse("offline", base_url=local, calls_base_url=local, calls_api_key="offline")
    return {"clients": offline.clients, "cases": offline.cases, "case-lists": offline.case_lists}[resource]


def fields_of(resource: Resource) -> dict[str, FieldSchema]:
    """The fields of ``resource`` by name, as its public ``schema()`` describes them."""
    return {field.name: field for field in api(resource).schema().fields}


def detect_format(path: Path, given: Format | None) -> Format:
    """The format of ``path``: ``given`` if set, else from the file's extension."""
    if found := given or FORMATS.get(path.suffix.lower()):
        return found
    raise InputError(f"cannot tell the format of {path.name} from its extension: pass --format csv|jsonl|json")


def open_file(path: Path, fmt: Format | None, resource: Resource, encoding: str) -> tuple[int, Iterator[Record]]:
    """The number of records of ``path`` (read whole and checked first, see :func:`scan`) and a reader of them."""
    fmt = detect_format(path, fmt)
    try:  # UTF-8 always accepts a byte-order mark
        encoding = ENCODING if codecs.lookup(encoding).name == "utf-8" else codecs.lookup(encoding).name
    except LookupError:
        raise InputError(f"unknown encoding {encoding!r} (for example utf-8, latin-1, cp1252)") from None
    if not path.is_file():
        raise InputError(f"no such file: {path}")
    return scan(path, fmt, resource, encoding), read_records(path, fmt, resource, encoding)


def read_records(path: Path, fmt: Format, resource: Resource, encoding: str = ENCODING) -> Iterator[Record]:
    """Every record of ``path`` in order, read lazily (a JSON array is read whole)."""
    table, lines = fields_of(resource), _lines(path, encoding)
    if fmt == "csv":
        return _read_csv(path.name, lines, table)
    if fmt == "jsonl":
        return (_record(n, text, table) for n, text in enumerate(lines, start=1) if text.strip())
    return (_record(n, value, table) for n, value in _json_array(path.name, "".join(lines)))


def scan(path: Path, fmt: Format, resource: Resource, encoding: str = ENCODING) -> int:
    """The number of records, the file read whole before anything is sent; :class:`InputError` for what would
    fail every record: a fault of the file, no record, a field required to create that no record gives."""
    total, creates, given = 0, 0, set[str]()
    for record in read_records(path, fmt, resource, encoding):
        total += 1
        if record.fields is not None and record.fields.get("id") is None:
            creates += 1
            given.update(record.fields)
    if not total:
        raise InputError(f"{path.name} holds no records: nothing to import")
    missing = [name for name, spec in fields_of(resource).items() if spec.required and name not in given]
    if creates and missing:
        many = len(missing) > 1
        raise InputError(
            f"{path.name}: the {'column' if fmt == 'csv' else 'field'}{'s' if many else ''} "
            f"{', '.join(map(repr, missing))} {'are' if many else 'is'} required to create {resource} "
            f"(records without an id), and no record gives {'them' if many else 'it'}"
        )
    return total


def _lines(path: Path, encoding: str) -> Iterator[str]:
    """The lines of ``path``, each with its ``\\n``; bytes that are not ``encoding`` text name their exact line."""
    decode = codecs.getincrementaldecoder(encoding)().decode
    number, rest = 1, ""
    try:
        handle = path.open("rb")
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror or exc}") from None
    with handle:
        for raw in itertools.chain(handle, (b"",)):
            try:
                parts = (rest + decode(raw, final=not raw)).split("\n")
            except UnicodeDecodeError as exc:
                bad = exc.object[exc.start : exc.start + 1].hex()
                raise InputError(
                    f"{path.name}, line {number}: byte 0x{bad} is not {encoding.removesuffix('-sig')} text; "
                    "pass the file's encoding with --encoding (a spreadsheet export is often cp1252)"
                ) from None
            rest = parts.pop()
            for part in parts:
                yield part + "\n"
                number += 1
    if rest:
        yield rest


def _read_csv(name: str, lines: Iterator[str], table: dict[str, FieldSchema]) -> Iterator[Record]:
    reader = csv.reader(lines, strict=True)
    try:
        header = [cell.strip() for cell in next(reader, [])]
        unknown = [column for column in header if column and column != "id" and column not in table]
        if unknown:
            raise InputError(
                f"{name}: unknown column(s) {', '.join(map(repr, unknown))}; "
                f"columns are the API's field names: id, {', '.join(table)}"
            )
        twice = sorted({column for column in header if column and header.count(column) > 1})
        if twice:
            raise InputError(f"{name}: column(s) {', '.join(map(repr, twice))} given twice")
        start = reader.line_num + 1
        for row in reader:
            line, start = start, reader.line_num + 1
            if not any(cell.strip() for cell in row):
                continue
            if len(row) != len(header):
                yield Record(line, error=f"expected {len(header)} cells as in the header, found {len(row)}")
                continue
            try:
                cells = zip(header, row, strict=True)
                yield Record(line, fields={col: _cell(col, table.get(col, _ID), cell) for col, cell in cells if cell})
            except ValueError as exc:
                yield Record(line, error=str(exc))
    except csv.Error as exc:
        raise InputError(f"{name}, line {reader.line_num}: not valid CSV: {exc}") from None


def _cell(name: str, spec: FieldSchema, text: str) -> Any:
    """One CSV cell as the value its field takes (by the schema's type); ValueError names the field."""
    value, items = text.strip(), spec.extra.get("items")
    if spec.type == "uint":
        return _int(name, value)
    if spec.type == "bool":
        if value.lower() in ("true", "false"):
            return value.lower() == "true"
        raise ValueError(f"{name}: expected true or false, got {value[:40]!r}")
    if spec.type == "object" or (spec.type == "array" and (value.startswith("[") or items not in ("uint", "string"))):
        try:  # of the right shape or not: the resource's check() says
            return json.loads(value)
        except ValueError as exc:
            raise ValueError(f"{name}: not valid JSON ({exc.args[0].split(':')[0]})") from None
    if spec.type == "array":
        parts = [part.strip() for part in value.split(";")]
        return [_int(f"{name}[{i}]", part) for i, part in enumerate(parts)] if items == "uint" else parts
    return value if spec.type == "date" else text


def _int(name: str, value: str) -> int:
    try:
        return int(value, 10)
    except ValueError:
        raise ValueError(f"{name}: expected a whole number, got {value[:40]!r}") from None


def _record(line: int, value: Any, table: dict[str, FieldSchema]) -> Record:
    """A record from a JSON value (or a JSON Lines line, still text)."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError as exc:
            return Record(line, error=f"not valid JSON: {exc.args[0]}")
    if not isinstance(value, dict):
        kinds = {type(None): "null", bool: "a boolean", int: "a number", float: "a number", str: "a string"}
        return Record(line, error=f"expected a JSON object, got {kinds.get(type(value), 'an array')}")
    unknown = [key for key in value if key != "id" and key not in table]
    if unknown:
        return Record(line, error=f"unknown field(s) {', '.join(repr(k) for k in unknown)}")
    return Record(line, fields=value)


def _json_array(name: str, text: str) -> Iterator[tuple[int, Any]]:
    """The items of a JSON array, each with the line where it starts."""
    decoder, pos, line, counted = json.JSONDecoder(), _skip(text, 0), 1, 0
    if text[pos : pos + 1] != "[":
        raise InputError(f"{name}: expected a JSON array of objects (use .jsonl for one object per line)")
    pos = _skip(text, pos + 1)
    while text[pos : pos + 1] != "]":
        line, counted = line + text.count("\n", counted, pos), pos
        try:
            value, end = decoder.raw_decode(text, pos)
        except ValueError as exc:
            raise InputError(f"{name}, line {line}: not valid JSON: {exc.args[0].split(':')[0]}") from None
        yield line, value
        pos = _skip(text, end)
        if text[pos : pos + 1] == ",":
            pos = _skip(text, pos + 1)
        elif text[pos : pos + 1] != "]":
            raise InputError(f"{name}, line {line + text.count(chr(10), counted, pos)}: expected ',' or ']'")
    if _skip(text, pos + 1) != len(text):
        raise InputError(f"{name}: unexpected text after the closing ]")


def _skip(text: str, pos: int) -> int:
    return _SPACE.match(text, pos).end()  # type: ignore[union-attr]  # the pattern matches an empty run too
