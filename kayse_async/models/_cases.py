"""The case model."""

from __future__ import annotations

import datetime as dt
from typing import Any

import attrs

from ._base import Model


@attrs.frozen(kw_only=True)
class Case(Model):
    """A legal case, as ``/v1/cases`` returns it; ``extra`` keeps the fields this SDK does not know."""

    id: int | None = None
    case_number: str | None = None
    external_source: str | None = None
    external_source_id: str | None = None
    external_source_data: dict[str, Any] | None = None
    name: str | None = None
    court_name: str | None = None
    jurisdiction: str | None = None
    description: str | None = None
    status: str | None = None
    type: str | None = None
    is_obo: bool | None = None
    created_date: dt.date | None = None
    court_date: dt.date | None = None
    end_date: dt.date | None = None
    client_ids: list[int] | None = None
    opt_out_voice_calls: bool | None = None
    extra: dict[str, Any] = attrs.field(factory=dict)
