"""Static checks of the async API's types: mypy --strict and pyright read this file.

Nothing here runs against a server; the functions exist to be type-checked.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import date
from typing import Any, assert_type

from kayse_async import AsyncKayse, RetryEvent, errors, models


async def check_async_api(kayse: AsyncKayse) -> None:
    new: dict[str, Any] = {"external_source": "m", "external_source_id": "e", "first_name": "A", "last_name": "B"}
    assert_type(await kayse.clients.create(**new), models.Client)
    assert_type(
        await kayse.clients.create(
            external_source="m", external_source_id="e", first_name="A", last_name="B", date_of_birth=date(1990, 1, 2)
        ),
        models.Client,
    )
    await kayse.clients.create(first_name="A")  # type: ignore[call-arg]
    await kayse.clients.update(1, city=5)  # type: ignore[arg-type]
    assert_type(await kayse.clients.get(1), models.Client)
    assert_type(await kayse.clients.update(1, city="X"), models.Client)
    assert_type(await kayse.clients.patch(1, city="X"), models.Client)
    assert_type(await kayse.clients.delete(1), None)
    assert_type(await kayse.clients.bulk_upsert([]), models.BulkResult[models.Client])
    assert_type(kayse.clients.bulk_upsert_iter([]), AsyncIterator[models.BulkItem[models.Client]])
    case = await kayse.cases.create(
        case_number="C", external_source="o", external_source_id="e", status="active", type="civil"
    )
    assert_type(case, models.Case)
    assert_type(await kayse.cases.get(1), models.Case)
    assert_type(await kayse.cases.bulk_upsert([]), models.BulkResult[models.Case])
    assert_type(await kayse.cases.bulk_delete([1]), models.DeleteResult)
    assert_type(await kayse.cases.send_sms(case_id=1, client_id=2, message="m"), str)
    assert_type(await kayse.cases.send_email(case_id=1, client_id=2, subject="s", message="m"), str)
    assert_type(kayse.case_lists.list(), AsyncIterator[models.CaseList])
    assert_type(kayse.case_lists.pages(page=2, page_size=50), AsyncIterator[list[models.CaseList]])
    assert_type(kayse.clients.check({"first_name": "A"}, mode="update"), dict[str, Any])
    assert_type(kayse.campaigns.schema(), models.ObjectSchema)
    await kayse.clients.update(1, city="X", extra_body={"new": 1}, extra_query={"q": "1"}, extra_headers={"X-A": "b"})
    kayse.clients.check({}, mode="replace")  # type: ignore[arg-type]
    assert_type(await kayse.case_lists.create(name="n"), models.CaseList)
    assert_type(await kayse.case_lists.bulk_upsert([]), list[models.CaseListUpsert])
    campaign = await kayse.campaigns.create(
        name="n", agent_id="a", case_list_id=1, send_sms_before_call=False, sms_before_call_text="t"
    )
    assert_type(campaign, models.Campaign)
    assert_type(await kayse.campaigns.list(), list[models.Campaign])
    assert_type(await kayse.calls.schedule(campaign_id=1, case_id=2), models.ScheduledCall)
    assert_type(await kayse.metadata.objects(), list[models.ObjectSchema])
    assert_type(kayse.quota, models.QuotaSnapshot)
    result = await kayse.clients.bulk_upsert([], raise_on_error=False)
    assert_type(result.succeeded, list[models.Client])
    assert_type(result.failures, list[models.BulkItem[models.Client]])
    assert_type(result.ok, bool)
    assert_type(result.requests, int)
    item = result.items[0]
    assert_type(item.error, errors.KayseError | None)
    assert_type(item.value, models.Client | None)
    assert_type(item.resolved, models.Resolution | None)
    assert_type(result.resolved_stored_before, int)
    deleted = await kayse.cases.bulk_delete([1], raise_on_error=False)
    assert_type(deleted.confirmed, list[int])
    assert_type(deleted.gone, list[int])
    assert_type(deleted.not_found, list[int])
    assert_type(deleted.failed, list[models.BulkItem[int]])
    assert_type(list(deleted), list[int])


async def check_context_manager() -> None:
    async with AsyncKayse("k") as kayse:
        assert_type(kayse, AsyncKayse)


def check_options_and_errors(kayse: AsyncKayse, error: errors.APIError) -> None:
    def hook(event: RetryEvent) -> None:
        assert_type(event.attempt, int)
        assert_type(event.delay, float)
        assert_type(event.error, errors.KayseError)

    AsyncKayse("k", on_retry=hook)
    assert_type(kayse.with_options(timeout=5.0), AsyncKayse)
    assert_type(kayse.with_options(max_retries=0, max_wait=None), AsyncKayse)
    kayse.with_options(timeout="5")  # type: ignore[arg-type]
    kayse.with_options(5.0)  # type: ignore[call-arg]
    assert_type(error.headers, dict[str, str])
    assert_type(error.request_id, str | None)
    assert_type(errors.ResponseFormatError("m", status=200), errors.ResponseFormatError)
