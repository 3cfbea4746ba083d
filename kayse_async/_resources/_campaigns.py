"""``/v1/campaigns``: AI voice-call campaigns."""

from __future__ import annotations

from typing import Unpack

from .._wire.fields import CAMPAIGNS, prepare
from .._wire.params import CampaignCreate
from .._wire.protocol import Request, expect, structure_response
from ..errors import ValidationError
from ..models import Campaign
from ._base import TableResource, outgoing, without_extras

_PATH = "/v1/campaigns"


class Campaigns(TableResource):
    """AI voice-call campaigns: ``kayse.campaigns``."""

    _table = CAMPAIGNS

    async def create(self, **fields: Unpack[CampaignCreate]) -> Campaign:
        """Create a campaign (``POST /v1/campaigns`` on the main host).

        ``name``, ``agent_id``, ``case_list_id``, ``send_sms_before_call`` and
        ``sms_before_call_text`` are required. Never retried once it may have reached the server.
        """
        named, extras = without_extras(fields)
        body = prepare(CAMPAIGNS, named, mode="create", extra_body=extras.get("extra_body"))
        request = outgoing("POST", _PATH, body, extras)
        data = (await self._send(request)).data
        expect(data, dict, "a JSON object", method="POST", url=_PATH)
        return structure_response(data, Campaign, method="POST", url=_PATH)

    async def list(self, *, key: str | None = None) -> list[Campaign]:
        """Every campaign, optionally searched by ``key`` (``GET /v1/campaigns``)."""
        if key is not None and not isinstance(key, str):
            raise ValidationError("key", f"expected a string, got {type(key).__name__}")
        request = Request(method="GET", path=_PATH, params={"key": key} if key is not None else None, idempotent=True)
        data = (await self._send(request)).data
        expect(data, list, "a JSON array of campaigns", method="GET", url=_PATH)
        return structure_response(data, list[Campaign], method="GET", url=_PATH)
