"""The import readers: CSV, JSON Lines and JSON arrays, typed cells, line numbers, bad lines reported not fatal."""

from __future__ import annotations

from pathlib import Path

import pytest

from kayse_async.cli._readers import InputError, Record, detect_format, read_records, scan


def _write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_csv_cells_are_typed_by_the_field_table_and_empty_cells_are_not_given(tmp_path: Path) -> None:
    """CSV text becomes ints, booleans, lists and objects per field; an empty cell leaves the field out."""
    path = _write(
        tmp_path,
        "c.csv",
        "id,first_name,last_name,case_ids,voice_calls_opted_out,meta,email\n"
        '7,Ann,Lee,1;2; 3,TRUE,"{""a"": 1}",\n'
        ',Bo,Kim,"[4, 5]",false,,bo@example.com\n',
    )
    records = list(read_records(path, "csv", "clients"))
    assert records == [
        Record(2, {"id": 7, "first_name": "Ann", "last_name": "Lee", "case_ids": [1, 2, 3],
                   "voice_calls_opted_out": True, "meta": {"a": 1}}),
        Record(3, {"first_name": "Bo", "last_name": "Kim", "case_ids": [4, 5], "voice_calls_opted_out": False,
                   "email": "bo@example.com"}),
    ]  # fmt: skip


def test_csv_bad_cells_reject_their_line_only_with_the_line_number(tmp_path: Path) -> None:
    """A bad cell rejects its record (line number and field named); the following records are still read."""
    path = _write(
        tmp_path,
        "cases.csv",
        'case_number,client_ids,is_obo,name\nA,1;x,false,"two\nlines"\nB,,yes,n\nC,3,true,ok\nD,1\n',
    )
    records = list(read_records(path, "csv", "cases"))
    assert [r.line for r in records] == [2, 4, 5, 6]
    assert records[0].error is not None
    assert "client_ids[1]" in records[0].error
    assert records[1].error is not None
    assert "is_obo" in records[1].error
    assert "yes" in records[1].error
    assert records[2].fields == {"case_number": "C", "client_ids": [3], "is_obo": True, "name": "ok"}
    assert records[3].error is not None
    assert "expected 4 cells" in records[3].error


def test_csv_unknown_column_is_an_error_for_the_whole_file(tmp_path: Path) -> None:
    """A header that is not an API field (a typo) stops the import before anything is read."""
    path = _write(tmp_path, "c.csv", "first_name,lastname\nA,B\n")
    with pytest.raises(InputError, match="'lastname'"):
        list(read_records(path, "csv", "clients"))


def test_jsonl_keeps_json_types_and_reports_bad_lines(tmp_path: Path) -> None:
    """JSON Lines: values as given; invalid JSON, non-objects and unknown fields reject only their line."""
    path = _write(
        tmp_path,
        "c.jsonl",
        '{"first_name": "A", "case_ids": [1]}\n\n{bad\n[1]\n{"nope": 1}\n{"id": 3, "last_name": "Z"}\n',
    )
    records = list(read_records(path, "jsonl", "clients"))
    assert [r.line for r in records] == [1, 3, 4, 5, 6]
    assert records[0].fields == {"first_name": "A", "case_ids": [1]}
    assert records[1].error is not None
    assert "not valid JSON" in records[1].error
    assert records[2].error == "expected a JSON object, got an array"
    assert records[3].error is not None
    assert "'nope'" in records[3].error
    assert records[4].fields == {"id": 3, "last_name": "Z"}


def test_json_array_items_carry_the_line_where_they_start(tmp_path: Path) -> None:
    """A JSON array's items are numbered by the line of their opening brace."""
    path = _write(tmp_path, "l.json", '[\n  {"name": "a"},\n  {\n    "name": "b"\n  }, 5\n]\n')
    records = list(read_records(path, "json", "case-lists"))
    assert records == [
        Record(2, {"name": "a"}),
        Record(3, {"name": "b"}),
        Record(5, error="expected a JSON object, got a number"),
    ]
    assert scan(path, "json", "case-lists") == 3


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('{"name": 1}', "expected a JSON array"),
        ('[{"name": 1} {"name": 2}]', "line 1: expected ','"),
        ("[1] x", "after"),
    ],
)
def test_a_malformed_json_array_is_a_file_error(tmp_path: Path, text: str, message: str) -> None:
    """A JSON file that is not one array cannot be read record by record: it is refused whole."""
    path = _write(tmp_path, "x.json", text)
    with pytest.raises(InputError, match=message):
        scan(path, "json", "case-lists")


def test_format_comes_from_the_extension_or_the_option(tmp_path: Path) -> None:
    """.csv/.jsonl/.ndjson/.json pick the reader; an unknown extension asks for --format."""
    assert detect_format(Path("a.CSV"), None) == "csv"
    assert detect_format(Path("a.ndjson"), None) == "jsonl"
    assert detect_format(Path("a.txt"), "json") == "json"
    with pytest.raises(InputError, match="--format"):
        detect_format(Path("a.txt"), None)


def test_a_byte_order_mark_is_not_part_of_the_first_column(tmp_path: Path) -> None:
    """Spreadsheet exports start with a BOM; the first header must still match its field."""
    path = tmp_path / "bom.csv"
    path.write_bytes("\ufefffirst_name,last_name\nA,B\n".encode())
    assert list(read_records(path, "csv", "clients")) == [Record(2, {"first_name": "A", "last_name": "B"})]
