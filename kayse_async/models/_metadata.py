"""Metadata models: the public objects and their fields."""

from __future__ import annotations

from typing import Any

import attrs

from ._base import Model


@attrs.frozen(kw_only=True)
class FieldSchema(Model):
    """One field of a public object: its name, type, whether a create needs it."""

    name: str
    type: str | None = None
    required: bool = False
    description: str | None = None
    extra: dict[str, Any] = attrs.field(factory=dict)


@attrs.frozen(kw_only=True)
class ObjectSchema(Model):
    """A public object (``cases``, ``clients``, ``case_lists``) and its fields."""

    name: str
    fields: list[FieldSchema] = attrs.field(factory=list)
    extra: dict[str, Any] = attrs.field(factory=dict)
