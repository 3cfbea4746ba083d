"""Campaign and call models."""

from __future__ import annotations

from typing import Any

import attrs

from ._base import Model


@attrs.frozen(kw_only=True)
class Agent(Model):
    """The AI voice agent a campaign uses (``id`` is 123 here in the reference, ``"abc_123123"`` as ``agent_id``)."""

    id: int | str | None = None
    name: str | None = None
    voice_id: str | None = None
    avatar_url: str | None = None
    extra: dict[str, Any] = attrs.field(factory=dict)


@attrs.frozen(kw_only=True)
class CampaignStats(Model):
    """Call statistics of a campaign, as the server reports them."""

    total_calls: int | None = None
    finished_calls: int | None = None
    called_clients: int | None = None
    total_clients: int | None = None
    success_calls: int | None = None
    success_calls_percentage: float | None = None
    failed_calls: int | None = None
    failed_calls_percentage: float | None = None
    average_sentiment_score: float | None = None
    average_call_duration: str | None = None
    total_call_duration: str | None = None
    disqualified_clients: int | None = None
    disqualification_rate: float | None = None
    converted_clients: int | None = None
    conversion_rate: float | None = None
    in_progress_rate: float | None = None
    extra: dict[str, Any] = attrs.field(factory=dict)


@attrs.frozen(kw_only=True)
class CallbackDelay(Model):
    """How long a campaign waits before calling again after a failed call."""

    minutes: int = 0
    hours: int = 0
    days: int = 0
    extra: dict[str, Any] = attrs.field(factory=dict)


@attrs.frozen(kw_only=True)
class Campaign(Model):
    """An AI voice-call campaign over a case list (the types chosen: docs/reference-notes.md).

    ``start_time`` and ``end_time`` are kept as the strings sent. ``agent_id`` and ``case_list_id``
    are ``int | str``, as the reference types each both ways; for other such fields the example's
    type is kept, and a value of the table's type lands in ``extra``.
    """

    id: int | None = None
    name: str | None = None
    agent_id: int | str | None = None
    case_list_id: int | str | None = None
    case_list_name: str | None = None
    start_time: str | None = None
    end_time: str | None = None
    agent: Agent | None = None
    stats: dict[str, CampaignStats] | None = None
    callback_delays: list[CallbackDelay] | None = None
    days: list[str] | None = None
    send_sms_before_call_delay_minutes: int | None = None
    send_sms_before_call: bool | None = None
    sms_before_call_text: str | None = None
    send_sms_after_successful_call: bool | None = None
    sms_after_successful_call_text: str | None = None
    send_sms_after_failed_call: bool | None = None
    sms_after_failed_call_text: str | None = None
    is_obo: bool | None = None
    calls_scheduled_externally: bool | None = None
    extra: dict[str, Any] = attrs.field(factory=dict)


@attrs.frozen(kw_only=True)
class ScheduledCall(Model):
    """An AI call scheduled by ``POST /v1/calls`` (``case_id``: the reference types it both ways)."""

    campaign_id: int | None = None
    client_id: int | None = None
    case_id: int | str | None = None
    extra: dict[str, Any] = attrs.field(factory=dict)
