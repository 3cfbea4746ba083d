"""The client model."""

from __future__ import annotations

import datetime as dt
from typing import Any

import attrs

from ._base import Model


@attrs.frozen(kw_only=True)
class Client(Model):
    """A client of the firm, as ``/v1/clients`` returns it; ``extra`` keeps the fields this SDK does not know."""

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
    extra: dict[str, Any] = attrs.field(factory=dict)
