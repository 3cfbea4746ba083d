"""Static checks of the blocking API's types: mypy --strict and pyright read this file.

Every call returns its value, not a coroutine; iterators are plain generators.
Nothing here runs against a server; the functions exist to be type-checked
(tests/sync runs the same calls against the emulator).
"""

from __future__ import annotations

import contextlib
from collections.abc import Generator
from datetime import date
from typing import Any, assert_type

import aiohttp

from kayse_async import Kayse, errors, models


def check_sync_api(kayse: Kayse) -> None:
    new: dict[str, Any] = {"external_source": "m", "external_source_id": "e", "first_name": "A", "last_name": "B"}
    assert_type(kayse.clients.create(**new), models.Client)
    assert_type(
        kayse.clients.create(
            external_source="m", external_source_id="e", first_name="A", last_name="B", date_of_birth=date(1990, 1, 2)
        ),
        models.Client,
    )
    kayse.clients.create(first_name="A")  # type: ignore[call-arg]
    kayse.clients.update(1, city=5)  # type: ignore[arg-type]
    kayse.clients.get("1")  # type: ignore[arg-type]
    kayse.clients.bulk_upsert([], chunk=5)  # type: ignore[call-arg]
    assert_type(kayse.clients.get(1), models.Client)
    assert_type(kayse.with_options(timeout=5.0), Kayse)
    assert_type(kayse.with_options(max_retries=0, max_wait=None).clients.get(1), models.Client)
    kayse.with_options(timeout="5")  # type: ignore[arg-type]
    assert_type(kayse.clients.update(1, city="X"), models.Client)
    assert_type(kayse.clients.patch(1, city="X"), models.Client)
    assert_type(kayse.clients.delete(1), None)
    assert_type(kayse.clients.bulk_upsert([]), models.BulkResult[models.Client])
    assert_type(kayse.clients.bulk_upsert_iter([]), Generator[models.BulkItem[models.Client], None, None])
    case = kayse.cases.create(
        case_number="C", external_source="o", external_source_id="e", status="active", type="civil"
    )
    assert_type(case, models.Case)
    assert_type(kayse.cases.get(1), models.Case)
    assert_type(kayse.cases.bulk_upsert([]), models.BulkResult[models.Case])
    assert_type(kayse.cases.bulk_upsert_iter([]), Generator[models.BulkItem[models.Case], None, None])
    assert_type(kayse.cases.bulk_delete([1]), models.DeleteResult)
    assert_type(kayse.cases.send_sms(case_id=1, client_id=2, message="m"), str)
    assert_type(kayse.cases.send_email(case_id=1, client_id=2, subject="s", message="m"), str)
    assert_type(kayse.case_lists.list(), Generator[models.CaseList, None, None])
    for case_list in kayse.case_lists.list(key="k", page_size=10):
        assert_type(case_list, models.CaseList)
    with contextlib.closing(kayse.case_lists.list()) as pages:
        assert_type(next(pages), models.CaseList)
    assert_type(kayse.case_lists.pages(page=2), Generator[list[models.CaseList], None, None])
    assert_type(kayse.cases.check({"status": "open"}), dict[str, Any])
    assert_type(kayse.case_lists.schema(), models.ObjectSchema)
    assert_type(kayse.case_lists.create(name="n", extra_body={"new": 1}), models.CaseList)
    assert_type(kayse.case_lists.bulk_upsert([]), list[models.CaseListUpsert])
    campaign = kayse.campaigns.create(
        name="n", agent_id="a", case_list_id=1, send_sms_before_call=False, sms_before_call_text="t"
    )
    assert_type(campaign, models.Campaign)
    assert_type(kayse.campaigns.list(), list[models.Campaign])
    assert_type(kayse.calls.schedule(campaign_id=1, case_id=2), models.ScheduledCall)
    assert_type(kayse.metadata.objects(), list[models.ObjectSchema])
    assert_type(kayse.quota, models.QuotaSnapshot)
    assert_type(kayse.closed, bool)
    result = kayse.clients.bulk_upsert([], raise_on_error=False)
    assert_type(result.succeeded, list[models.Client])
    assert_type(result.items[0].error, errors.KayseError | None)
    assert_type(kayse.close(), None)


def check_context_manager() -> None:
    with Kayse("k", timeout=5.0, max_retries=0, max_wait=1.0) as kayse:
        assert_type(kayse, Kayse)
    Kayse("k", session_factory=lambda: aiohttp.ClientSession(trust_env=True)).close()
    Kayse("k", session_factory=aiohttp.ClientSession).close()
    Kayse("k", session_factory=lambda: "not a session")  # type: ignore[arg-type, return-value]
    Kayse("k", timeout="5")  # type: ignore[arg-type]
    Kayse("k", base="http://127.0.0.1")  # type: ignore[call-arg]
