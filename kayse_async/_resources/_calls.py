"""``POST /v1/calls`` on the calls host: AI calls."""

from __future__ import annotations

from .._wire.fields import CALLS, check_fields
from .._wire.protocol import Request, expect, structure_response
from ..models import ScheduledCall
from ._base import Resource


class Calls(Resource):
    """AI voice calls: ``kayse.calls``. Sent to ``calls_base_url`` with ``X-Public-Api-Key``."""

    async def schedule(self, *, campaign_id: int, case_id: int) -> ScheduledCall:
        """Schedule an AI call for a case within a campaign.

        Never retried once it may have reached the server: a client must not be called twice.
        """
        body = check_fields(CALLS, {"campaign_id": campaign_id, "case_id": case_id}, mode="create")
        request = Request(method="POST", path="/v1/calls", host="calls", json=body)
        data = (await self._send(request)).data
        expect(data, dict, "a JSON object", method="POST", url=request.path)
        return structure_response(data, ScheduledCall, method="POST", url=request.path)
