"""Structure + unstructure of client records: kayse_async's converter vs pydantic v2 vs msgspec.

``--records`` client objects (default 100,000), shaped like the reference's
client JSON (dates, ``meta``, ``case_ids``, some nulls), are turned into
models one record at a time, as the SDK does with each response, then back
into JSON-ready dicts:

- kayse_async: ``kayse_async._wire.converter.structure(record, models.Client)`` and
  ``unstructure(client)`` (the one cattrs converter the SDK uses: cattrs' generated
  functions, read leniently, unknown fields kept);
- pydantic v2: an equivalent ``BaseModel`` (``datetime.date`` fields,
  ``extra="allow"`` since our models keep unknown fields too),
  ``model_validate(record)`` and ``model_dump(mode="json")``;
- msgspec: an equivalent ``Struct``, ``msgspec.convert(record, Struct)`` and
  ``msgspec.to_builtins(struct)``.

Before timing, each library's round trip is checked to give back the input
records exactly, so that all three do the same work. The three run in this
one process, interleaved round by round; figures are medians of
``time.process_time()`` over ``--rounds``, with ratios against pydantic v2, and the
verdict gives the range of the round-by-round ratio too.

The 100,000 models stay alive until they are unstructured, as in a batch job,
so the cyclic garbage collector runs during the passes and its cost grows
with the number of tracked containers each library makes per record.
``--gc off`` pauses the collector during the passes to show the conversion
code alone.

Run ``python benchmarks/serialization.py --help`` for the options.
"""

from __future__ import annotations

import argparse
import datetime as dt
import gc
import random
import statistics
import sys
from collections.abc import Callable
from typing import Any

import _common
import msgspec
import pydantic

from kayse_async import models
from kayse_async._wire.converter import structure, unstructure

BASELINE = "pydantic v2"
OURS = "kayse_async (cattrs)"
MSGSPEC = "msgspec"


class PydanticClient(pydantic.BaseModel):
    """``models.Client`` as a pydantic v2 model."""

    model_config = pydantic.ConfigDict(extra="allow")

    id: int | None = None
    email: str | None = None
    mobile: str | None = None
    external_source: str | None = None
    external_source_id: str | None = None
    first_name: str | None = None
    last_name: str | None = None
    gender: str | None = None
    date_of_birth: dt.date | None = None
    city: str | None = None
    state: str | None = None
    postal_code: str | None = None
    address_line1: str | None = None
    address_line2: str | None = None
    voice_calls_opted_out: bool | None = None
    date_of_death: dt.date | None = None
    meta: dict[str, Any] | None = None
    case_ids: list[int] | None = None


class MsgspecClient(msgspec.Struct, kw_only=True):
    """``models.Client`` as a msgspec Struct (msgspec drops unknown fields instead of keeping them)."""

    id: int | None = None
    email: str | None = None
    mobile: str | None = None
    external_source: str | None = None
    external_source_id: str | None = None
    first_name: str | None = None
    last_name: str | None = None
    gender: str | None = None
    date_of_birth: dt.date | None = None
    city: str | None = None
    state: str | None = None
    postal_code: str | None = None
    address_line1: str | None = None
    address_line2: str | None = None
    voice_calls_opted_out: bool | None = None
    date_of_death: dt.date | None = None
    meta: dict[str, Any] | None = None
    case_ids: list[int] | None = None


_FIRST = ["John", "Maria", "Wei", "Aisha", "Carlos", "Olga", "Kwame", "Priya", "Liam", "Sofia", "Yusuf", "Emma"]
_LAST = ["Doe", "Garcia", "Chen", "Okafor", "Silva", "Ivanova", "Mensah", "Patel", "Murphy", "Rossi", "Khan"]
_CITIES = [("New York", "NY", "100"), ("Los Angeles", "CA", "900"), ("Chicago", "IL", "606"), ("Houston", "TX", "770")]
_STREETS = ["Main St", "Oak Ave", "Pine Rd", "Maple Dr", "Cedar Ln", "Elm St"]
_SOURCES = ["manual", "import", "website", "referral"]


def make_records(count: int, seed: int = 20240) -> list[dict[str, Any]]:
    """``count`` client objects as the API returns them (the reference's example, varied), reproducibly."""
    rng = random.Random(seed)
    records: list[dict[str, Any]] = []
    for i in range(count):
        first, last = rng.choice(_FIRST), rng.choice(_LAST)
        city, state, zip_prefix = rng.choice(_CITIES)
        born = dt.date(1930, 1, 1) + dt.timedelta(days=rng.randrange(30_000))
        died = born + dt.timedelta(days=rng.randrange(20_000, 30_000)) if rng.random() < 0.05 else None
        records.append(
            {
                "id": 1000 + i,
                "email": f"{first}.{last}{i}@example.com".lower() if rng.random() < 0.9 else None,
                "mobile": f"+1{rng.randrange(2_000_000_000, 9_999_999_999)}",
                "external_source": rng.choice(_SOURCES),
                "external_source_id": f"ext_{i}",
                "first_name": first,
                "last_name": last,
                "gender": rng.choice(["male", "female", None]),
                "date_of_birth": born.isoformat(),
                "city": city,
                "state": state,
                "postal_code": f"{zip_prefix}{rng.randrange(100):02d}",
                "address_line1": f"{rng.randrange(1, 9999)} {rng.choice(_STREETS)}",
                "address_line2": f"Apt {rng.randrange(1, 40)}{rng.choice('ABCD')}" if rng.random() < 0.4 else None,
                "voice_calls_opted_out": rng.random() < 0.1,
                "date_of_death": died.isoformat() if died else None,
                "meta": {"notes": "Client prefers email communication", "source": rng.choice(_SOURCES)},
                "case_ids": [rng.randrange(10_000, 99_999) for _ in range(rng.randrange(4))],
            }
        )
    return records


def ours_structure(records: list[dict[str, Any]]) -> list[Any]:
    """kayse_async: dicts to ``models.Client``."""
    return [structure(record, models.Client) for record in records]


def ours_unstructure(objects: list[Any]) -> list[dict[str, Any]]:
    """kayse_async: ``models.Client`` to dicts."""
    return [unstructure(obj) for obj in objects]


def pydantic_structure(records: list[dict[str, Any]]) -> list[Any]:
    """pydantic v2: dicts to models."""
    validate = PydanticClient.model_validate
    return [validate(record) for record in records]


def pydantic_unstructure(objects: list[Any]) -> list[dict[str, Any]]:
    """pydantic v2: models to JSON-ready dicts."""
    return [obj.model_dump(mode="json") for obj in objects]


def msgspec_structure(records: list[dict[str, Any]]) -> list[Any]:
    """msgspec: dicts to Structs."""
    convert = msgspec.convert
    return [convert(record, MsgspecClient) for record in records]


def msgspec_unstructure(objects: list[Any]) -> list[dict[str, Any]]:
    """msgspec: Structs to builtins."""
    to_builtins = msgspec.to_builtins
    return [to_builtins(obj) for obj in objects]


Codec = tuple[Callable[[list[dict[str, Any]]], list[Any]], Callable[[list[Any]], list[dict[str, Any]]]]

CODECS: dict[str, Codec] = {
    BASELINE: (pydantic_structure, pydantic_unstructure),
    OURS: (ours_structure, ours_unstructure),
    MSGSPEC: (msgspec_structure, msgspec_unstructure),
}


def check_round_trips(records: list[dict[str, Any]]) -> None:
    """Every codec gives back the input records, with typed dates in between: they do the same work."""
    for name, (to_models, to_dicts) in CODECS.items():
        objects = to_models(records)
        if not isinstance(objects[0].date_of_birth, dt.date):
            raise AssertionError(f"{name}: date_of_birth was not structured into a date")
        back = to_dicts(objects)
        if back != records:
            bad = next(i for i, (a, b) in enumerate(zip(back, records, strict=True)) if a != b)
            raise AssertionError(f"{name}: round trip changed record {bad}: {back[bad]!r} != {records[bad]!r}")


def run_codec(
    codec: Codec, records: list[dict[str, Any]], *, collector: bool = True
) -> tuple[_common.Timing, _common.Timing]:
    """One measured structure pass then one unstructure pass over every record.

    With ``collector=False`` the cyclic garbage collector is paused during
    the passes, leaving the conversion code alone in the figures.
    """
    to_models, to_dicts = codec
    # Collect the previous run's garbage now, not inside someone else's measurement.
    gc.collect()
    if not collector:
        gc.disable()
    try:
        with _common.measure() as s:
            objects = to_models(records)
        with _common.measure() as u:
            back = to_dicts(objects)
    finally:
        gc.enable()
    assert len(back) == len(records)
    assert s.timing is not None
    assert u.timing is not None
    return s.timing, u.timing


def measure_all(
    records: list[dict[str, Any]], rounds: int, *, collector: bool = True
) -> tuple[_common.Samples, _common.Samples]:
    """Interleaved rounds of every codec: (structure samples, unstructure samples)."""
    structure_samples = _common.Samples()
    unstructure_samples = _common.Samples()

    def runner(name: str) -> Callable[[], _common.Timing]:
        def run() -> _common.Timing:
            s, u = run_codec(CODECS[name], records, collector=collector)
            structure_samples.add(name, s)
            unstructure_samples.add(name, u)
            return _common.Timing(cpu=s.cpu + u.cpu, wall=s.wall + u.wall)

        return run

    _common.interleave(rounds, [(name, runner(name)) for name in CODECS])
    return structure_samples, unstructure_samples


def report(structure_samples: _common.Samples, unstructure_samples: _common.Samples, count: int) -> str:
    """The figures table (µs per record, CPU time) and the verdict line."""

    def total(name: str) -> float:
        # The median of per-round totals, not the sum of the two medians.
        pairs = zip(structure_samples.by_name[name], unstructure_samples.by_name[name], strict=True)
        return statistics.median(s.cpu + u.cpu for s, u in pairs)

    base_s = structure_samples.median_cpu(BASELINE)
    base_u = unstructure_samples.median_cpu(BASELINE)
    base_t = total(BASELINE)
    rows: list[list[str]] = []
    for name in (BASELINE, OURS, MSGSPEC):
        s = structure_samples.median_cpu(name)
        u = unstructure_samples.median_cpu(name)
        t = total(name)
        rows.append(
            [
                name,
                f"{s / count * 1e6:.2f}",
                _common.ratio(s, base_s),
                f"{u / count * 1e6:.2f}",
                _common.ratio(u, base_u),
                f"{t / count * 1e6:.2f}",
                _common.ratio(t, base_t),
            ]
        )
    headers = [
        "library",
        "structure µs/record",
        "vs pydantic",
        "unstructure µs/record",
        "vs pydantic",
        "total µs/record",
        "vs pydantic",
    ]
    ours = total(OURS) / base_t
    # Round by round (the contenders ran side by side in each): the spread of the ratio.
    per_round = [
        (s.cpu + u.cpu) / (bs.cpu + bu.cpu)
        for s, u, bs, bu in zip(
            structure_samples.by_name[OURS],
            unstructure_samples.by_name[OURS],
            structure_samples.by_name[BASELINE],
            unstructure_samples.by_name[BASELINE],
            strict=True,
        )
    ]
    verdict = (
        f"kayse_async structure + unstructure: {ours:.2f}x pydantic v2 "
        f"(rounds {min(per_round):.2f}x to {max(per_round):.2f}x; target <= 1.00x): "
        + ("met" if ours <= 1.0 else "MISSED")
    )
    return _common.table(headers, rows) + "\n\n" + verdict


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--records", type=int, default=100_000, help="client records per pass (default: 100000)")
    parser.add_argument("--rounds", type=int, default=7, help="interleaved rounds; medians are reported (default: 7)")
    parser.add_argument(
        "--gc",
        choices=("on", "off"),
        default="on",
        help="on: the garbage collector runs as in any program (default); off: paused during the passes",
    )
    args = parser.parse_args(argv)
    for name in ("records", "rounds"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print its table."""
    args = parse_args(argv)
    records = make_records(args.records)
    check_round_trips(records[: min(len(records), 2000)])
    structure_samples, unstructure_samples = measure_all(records, args.rounds, collector=args.gc == "on")
    print(
        f"# serialization: {args.records} client records, one at a time, median of {args.rounds} rounds "
        f"(CPU time; garbage collector {args.gc} during the passes)"
    )
    print("# " + _common.environment(["cattrs", "attrs", "pydantic", "pydantic-core", "msgspec", "kayse-async"]))
    print()
    print(report(structure_samples, unstructure_samples, args.records))
    return 0


if __name__ == "__main__":
    sys.exit(main())
