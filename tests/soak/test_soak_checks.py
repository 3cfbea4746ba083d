"""The soak's comparison catches what it claims to: each kind of violation, planted in a small store."""

from __future__ import annotations

from typing import Any

import pytest

from .test_soak import SOURCE, Item, Ledger, verify, verify_sms


def _record(item: Item, city: str, record_id: int | None = None) -> dict[str, Any]:
    return {"id": record_id or item.id, "external_source": SOURCE, "external_source_id": item.ext_id, "city": city}


def _items() -> list[Item]:
    items = [Item(i, f"client-{i}", "async", id=100 + i, create="succeeded", allowed={f"c{i}"}) for i in range(4)]
    return items


def _violations(ledger: Ledger) -> list[str]:
    return [v for row in ledger.rows.values() for v in row.violations]


def test_a_clean_store_passes() -> None:
    """The ledger and the store agree: no violation (the checks are not always failing)."""
    items = _items()
    ledger = Ledger()
    verify("clients", items, [_record(i, f"c{i.index}") for i in items], "city", ledger)
    assert _violations(ledger) == []
    assert ledger.rows["clients: values checked"].calls == 4


@pytest.mark.parametrize(
    ("plant", "expected"),
    [
        ("duplicate", "duplicate"),
        ("missing", "silent loss"),
        ("wrong value", "city="),
        ("phantom", "never given"),
        ("stored though rejected", "reported rejected, but stored"),
        ("deleted but present", "reported deleted, still stored"),
        ("delete refused but gone", "delete reported rejected, but gone"),
        ("another id", "stored under id"),
    ],
)
def test_each_planted_violation_is_found(plant: str, expected: str) -> None:
    """Each kind of silent loss, duplicate or misreport, planted once, is reported."""
    items = _items()
    store = [_record(i, f"c{i.index}") for i in items]
    if plant == "duplicate":
        store.append(_record(items[0], "c0", 999))
    elif plant == "missing":
        store.pop(1)
    elif plant == "wrong value":
        store[2]["city"] = "stale"
    elif plant == "phantom":
        store.append({"id": 7, "external_source": SOURCE, "external_source_id": "client-77", "city": "x"})
    elif plant == "stored though rejected":
        items[3].create = "rejected"
    elif plant == "deleted but present":
        items[0].delete = "succeeded"
    elif plant == "delete refused but gone":
        items[1].delete = "rejected"
        store.pop(1)
    elif plant == "another id":
        store[0]["id"] = 555
    ledger = Ledger()
    verify("clients", items, store, "city", ledger)
    found = _violations(ledger)
    assert len(found) >= 1
    assert any(expected in v for v in found), found


def test_an_uncertain_item_may_go_either_way() -> None:
    """An uncertain create or write is counted as applied or not, and is never a violation."""
    items = _items()
    items[0].create = "uncertain"
    items[1].create = "uncertain"
    items[2].wrote("uncertain", "u2")
    store = [_record(items[0], "c0", 1), _record(items[2], "u2"), _record(items[3], "c3")]
    ledger = Ledger()
    verify("clients", items, store, "city", ledger)
    assert _violations(ledger) == []
    row = ledger.rows["clients: bulk create"]
    assert (row.uncertain_applied, row.uncertain_not_applied) == (1, 1)


def test_sms_checks_find_a_double_send_and_misreports() -> None:
    """An SMS sent twice, one reported sent but absent, one reported not sent but present: three violations."""
    ledger = Ledger()
    ledger.sms = {"a": ("succeeded", "async"), "b": ("succeeded", "async"), "c": ("not_attempted", "sync")}
    outbox = [{"kind": "sms", "message": m} for m in ("a", "a", "c")]
    verify_sms(ledger, outbox)
    found = ledger.rows["sms"].violations
    assert any("sent 2 times" in v for v in found)
    assert any(v.startswith("b:") for v in found)
    assert any(v.startswith("c:") for v in found)
