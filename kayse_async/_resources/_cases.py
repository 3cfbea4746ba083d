"""``/v1/cases``, with bulk delete and the SMS and email routes."""

from __future__ import annotations

from collections.abc import AsyncIterable, Iterable
from typing import Unpack

from .. import _bulk
from .._defaults import CONCURRENCY
from .._wire.fields import CASES, EMAIL, SMS, check_fields
from .._wire.params import CaseCreate, CaseUpdate
from .._wire.protocol import Request, expect
from ..models import Case, DeleteResult
from ._crud import CrudResource


class Cases(CrudResource[Case]):
    """The firm's legal cases: ``kayse.cases``."""

    _path = "/v1/cases"
    _name = "cases"
    _id_name = "case_id"
    _model = Case
    _table = CASES

    async def create(self, **fields: Unpack[CaseCreate]) -> Case:
        """Create a case (``POST /v1/cases``).

        ``case_number``, ``external_source``, ``external_source_id``, ``status`` and ``type`` are
        required; fields not given are not sent. Never retried once it may have reached the server.
        """
        return await self._create(fields)

    async def get(self, case_id: int) -> Case:
        """Get a case by id (``GET /v1/cases/{id}``)."""
        return await self._get(case_id)

    async def update(self, case_id: int, **fields: Unpack[CaseUpdate]) -> Case:
        """Replace a case (``PUT /v1/cases/{id}``): optional fields of the PUT table not given are cleared.

        ``client_ids`` and ``opt_out_voice_calls`` (outside that table) are sent
        only with a value: the links and the opt-out stay as stored otherwise.
        """
        return await self._update(case_id, fields)

    async def patch(self, case_id: int, **changes: Unpack[CaseUpdate]) -> Case:
        """Change the given fields of a case and keep every other (GET, merge, PUT)."""
        return await self._patch(case_id, changes)

    async def delete(self, case_id: int) -> None:
        """Delete a case (``DELETE /v1/cases/{id}``)."""
        await self._delete(case_id)

    async def bulk_delete(
        self,
        ids: Iterable[int] | AsyncIterable[int],
        *,
        with_clients: bool = False,
        concurrency: int = CONCURRENCY,
        max_wait: float | None = None,
        progress: _bulk.ProgressCallback | None = None,
        raise_on_error: bool = True,
    ) -> DeleteResult:
        """Delete cases by id (``POST /v1/cases/bulk_delete``), in chunks of at most 500 ids.

        Ids are checked first and deduplicated; chunks go ``concurrency`` at a time. With
        ``with_clients``, clients linked only to deleted cases go too. Returns a ``DeleteResult`` (the
        ids confirmed deleted, with ``gone``, ``not_found`` and ``failed``). Unless ``raise_on_error``
        is False, ``errors.BulkError`` is raised if a chunk failed.
        """
        options = _bulk.BulkOptions(concurrency=concurrency, max_wait=max_wait, progress=progress)
        return await _bulk.delete(
            self._transport, ids, with_clients=with_clients, options=options, raise_on_error=raise_on_error
        )

    async def send_sms(self, *, case_id: int, client_id: int, message: str) -> str:
        """Send an SMS to a client about a case; returns the server's message (``"sms scheduled"``).

        Never retried once it may have reached the server: a client must not get the same SMS twice.
        """
        body = check_fields(SMS, {"case_id": case_id, "client_id": client_id, "message": message}, mode="create")
        return await self._message(Request(method="POST", path="/v1/cases/communication/sms", json=body))

    async def send_email(self, *, case_id: int, client_id: int, subject: str, message: str) -> str:
        """Send an email to a client about a case; returns the server's message (``"email scheduled"``).

        Never retried once it may have reached the server.
        """
        fields = {"case_id": case_id, "client_id": client_id, "subject": subject, "message": message}
        body = check_fields(EMAIL, fields, mode="create")
        return await self._message(Request(method="POST", path="/v1/cases/communication/email", json=body))

    async def _message(self, request: Request) -> str:
        data = (await self._send(request)).data
        expect(data, dict, "a JSON object with a message", method=request.method, url=request.path)
        message = data.get("message")
        return message if isinstance(message, str) else ""
