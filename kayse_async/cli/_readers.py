"""Readers of import files: CSV, JSON Lines and JSON arrays, one record at a time with its line number.

Every reader yields :class:`Record` objects: the line where the record starts
and either its fields (typed as the API wants them) or the reason it could not
be read. A bad record never stops the reading: it is reported, and the rest
goes. What stops it is a fault of the whole file (:class:`InputError`): bytes
that are not text in the file's encoding (named by their exact line), an
unknown CSV column, a JSON file that is not one array.

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

import codecs
import csv
import itertools
import json
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, Literal

import attrs

from .._wire.fields import CASE_LISTS, CASES, CLIENTS, MAX_INT, Field, Kind

Format = Literal["csv", "jsonl", "json"]
Resource = Literal["clients", "cases", "case-lists"]

FORMATS: dict[str, Format] = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "json"}
"""File extensions and the format each implies."""
TABLES: dict[Resource, Mapping[str, Field]] = {
    "clients": CLIENTS.by_name,
    "cases": CASES.by_name,
    "case-lists": CASE_LISTS.by_name,
}
"""The field table of each importable resource."""
_SPACE = re.compile(r"[ \t\r\n]*")
ENCODING = "utf-8-sig"
"""UTF-8, with or without the byte-order mark spreadsheet programs often write first."""


class InputError(Exception):
    """The file as a whole cannot be imported (unreadable, not text, unknown format or column, no records)."""


@attrs.frozen
class Record:
    """One record of an import file: its first line, and its fields or the reason it was refused."""

    line: int
    fields: dict[str, Any] | None = None
    error: str | None = None


def detect_format(path: Path, given: Format | None) -> Format:
    """The format of ``path``: ``given`` if set, else from the file's extension."""
    found = given or FORMATS.get(path.suffix.lower())
    if found is None:
        raise InputError(f"cannot tell the format of {path.name} from its extension: pass --format csv|jsonl|json")
    return found


def check_encoding(name: str) -> str:
    """The codec to read files with: ``name`` checked (UTF-8 always accepts a byte-order mark)."""
    try:
        found = codecs.lookup(name).name
    except LookupError:
        raise InputError(f"unknown encoding {name!r} (for example utf-8, latin-1, cp1252)") from None
    return ENCODING if found == "utf-8" else found


def read_records(path: Path, fmt: Format, resource: Resource, encoding: str = ENCODING) -> Iterator[Record]:
    """Every record of ``path`` in order, read lazily (a JSON array is read whole)."""
    table = TABLES[resource]
    lines = _lines(path, encoding)
    if fmt == "csv":
        return _read_csv(path.name, lines, table)
    if fmt == "jsonl":
        return (_record(n, text, table) for n, text in enumerate(lines, start=1) if text.strip())
    return (_record(n, value, table) for n, value in _json_array(path.name, "".join(lines)))


def scan(path: Path, fmt: Format, resource: Resource, encoding: str = ENCODING) -> int:
    """Read the whole file once, before anything is sent; return its number of records.

    Raises :class:`InputError` for what would fail every record: a fault of
    the file, no record at all, or a field required to create a record
    (one without an id) that no record gives (a missing CSV column).
    """
    total, creates, given = 0, 0, set[str]()
    for record in read_records(path, fmt, resource, encoding):
        total += 1
        if record.fields is not None and record.fields.get("id") is None:
            creates += 1
            given.update(record.fields)
    if not total:
        raise InputError(f"{path.name} holds no records: nothing to import")
    missing = [name for name, spec in TABLES[resource].items() if spec.required and name not in given]
    if creates and missing:
        what = f"the {'column' if fmt == 'csv' else 'field'}{'s' if len(missing) > 1 else ''}"
        raise InputError(
            f"{path.name}: {what} {', '.join(map(repr, missing))} {'are' if len(missing) > 1 else 'is'} required to "
            f"create {resource} (records without an id), and no record gives {'them' if len(missing) > 1 else 'it'}"
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


def _read_csv(name: str, lines: Iterator[str], table: Mapping[str, Field]) -> Iterator[Record]:
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
                fields = {col: _cell(col, table.get(col), cell) for col, cell in zip(header, row, strict=True) if cell}
            except ValueError as exc:
                yield Record(line, error=str(exc))
                continue
            yield Record(line, fields=fields)
    except csv.Error as exc:
        raise InputError(f"{name}, line {reader.line_num}: not valid CSV: {exc}") from None


def _cell(name: str, spec: Field | None, text: str) -> Any:
    """Convert one CSV cell to the value the field takes; ValueError names the field."""
    kind = Kind.ID if name == "id" else (spec.kind if spec is not None else Kind.STR)
    value = text.strip()
    if kind is Kind.STR:
        return text
    if kind is Kind.DATE:
        return value
    if kind in (Kind.ID, Kind.COUNT):
        return _int(name, value)
    if kind is Kind.BOOL:
        if value.lower() in ("true", "false"):
            return value.lower() == "true"
        raise ValueError(f"{name}: expected true or false, got {value[:40]!r}")
    if kind is Kind.OBJECT or value.startswith("["):
        shape = (dict, "object") if kind is Kind.OBJECT else (list, "array")
        try:
            parsed = json.loads(value)
        except ValueError as exc:
            raise ValueError(f"{name}: not valid JSON ({exc.args[0].split(':')[0]})") from None
        if not isinstance(parsed, shape[0]):
            raise ValueError(f"{name}: expected a JSON {shape[1]}, got {value[:40]!r}")
        return parsed
    if kind is Kind.ID_LIST:
        return [_int(f"{name}[{i}]", part.strip()) for i, part in enumerate(value.split(";"))]
    if kind is Kind.WEEKDAYS:
        return [part.strip() for part in value.split(";")]
    raise ValueError(f"{name}: expected a JSON array, got {value[:40]!r}")


def _int(name: str, value: str) -> int:
    try:
        number = int(value, 10)
    except ValueError:
        raise ValueError(f"{name}: expected a whole number, got {value[:40]!r}") from None
    if abs(number) > MAX_INT:
        raise ValueError(f"{name}: number out of range")
    return number


def _record(line: int, value: Any, table: Mapping[str, Field]) -> Record:
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
