"""Case list models."""

from __future__ import annotations

from typing import Any, Literal

import attrs

from ._base import Model


@attrs.frozen(kw_only=True)
class CaseList(Model):
    """A saved case filter, as ``/v1/case_lists`` returns it.

    ``case_ids`` are the cases the list holds now: the filter's result plus
    ``include_ids``, less ``exclude_ids``.
    """

    id: int | None = None
    name: str | None = None
    description: str | None = None
    filter: dict[str, Any] | None = None
    include_ids: list[int] | None = None
    exclude_ids: list[int] | None = None
    is_obo: bool | None = None
    case_ids: list[int] | None = None
    extra: dict[str, Any] = attrs.field(factory=dict)


@attrs.frozen(kw_only=True)
class CaseListUpsert(Model):
    """What ``/v1/case_lists/bulk`` did with one input list: its id and the action taken."""

    id: int
    action: Literal["created", "updated"]
    extra: dict[str, Any] = attrs.field(factory=dict)
