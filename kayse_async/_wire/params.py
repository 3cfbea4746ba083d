"""Typed keyword arguments of the create, update and patch calls (PEP 692 ``Unpack``), with their :class:`Extras`.

For editors and type checkers; at run time the tables of ``fields`` check the fields (a test holds both alike).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any, Required, TypedDict

from ..models import CallbackDelay

Date = dt.date | str
"""A ``datetime.date``, or a ``"YYYY-MM-DD"`` string."""


class Extras(TypedDict, total=False):
    """What the API does not describe yet: body fields (JSON), query parameters and headers, sent as given."""

    extra_body: Mapping[str, Any] | None
    extra_query: Mapping[str, str] | None
    extra_headers: Mapping[str, str] | None


class _ClientOptional(Extras, total=False):
    email: str | None
    mobile: str | None
    gender: str | None
    date_of_birth: Date | None
    city: str | None
    state: str | None
    postal_code: str | None
    address_line1: str | None
    address_line2: str | None
    date_of_death: Date | None
    meta: Mapping[str, Any] | None
    case_ids: Sequence[int] | None
    voice_calls_opted_out: bool | None


class ClientUpdate(_ClientOptional, total=False):
    """The fields of a client, every one optional (update, patch)."""

    external_source: str
    external_source_id: str
    first_name: str
    last_name: str


class ClientCreate(_ClientOptional, total=False):
    """The fields of a new client: the four identity fields are required."""

    external_source: Required[str]
    external_source_id: Required[str]
    first_name: Required[str]
    last_name: Required[str]


class _CaseOptional(Extras, total=False):
    external_source_data: Mapping[str, Any] | None
    name: str | None
    court_name: str | None
    jurisdiction: str | None
    description: str | None
    is_obo: bool | None
    created_date: Date | None
    court_date: Date | None
    end_date: Date | None
    client_ids: Sequence[int] | None
    opt_out_voice_calls: bool | None


class CaseUpdate(_CaseOptional, total=False):
    """The fields of a case, every one optional (update, patch)."""

    case_number: str
    external_source: str
    external_source_id: str
    status: str
    type: str


class CaseCreate(_CaseOptional, total=False):
    """The fields of a new case."""

    case_number: Required[str]
    external_source: Required[str]
    external_source_id: Required[str]
    status: Required[str]
    type: Required[str]


class CaseListCreate(Extras, total=False):
    """The fields of a new case list; ``include_ids`` and ``exclude_ids`` need a ``filter``."""

    name: Required[str]
    description: str | None
    filter: Mapping[str, Any] | None
    include_ids: Sequence[int] | None
    exclude_ids: Sequence[int] | None
    is_obo: bool | None


class CallbackDelayFields(TypedDict, total=False):
    """A callback delay as a mapping."""

    minutes: int
    hours: int
    days: int


class CampaignCreate(Extras, total=False):
    """The fields of a new campaign."""

    name: Required[str]
    agent_id: Required[str]
    case_list_id: Required[int]
    start_time: str | None
    end_time: str | None
    callback_delays: Sequence[CallbackDelay | CallbackDelayFields] | None
    days: Sequence[str] | None
    send_sms_before_call_delay_minutes: int | None
    send_sms_before_call: Required[bool]
    sms_before_call_text: Required[str]
    send_sms_after_successful_call: bool | None
    sms_after_successful_call_text: str | None
    send_sms_after_failed_call: bool | None
    sms_after_failed_call_text: str | None
    is_obo: bool | None
    calls_scheduled_externally: bool | None
