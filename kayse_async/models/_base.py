"""What every model shares: its JSON form."""

from __future__ import annotations

import json
from typing import Any


class Model:
    """Base of the models: ``to_dict()`` and ``to_json()``, through the converter imported on the first call."""

    __slots__ = ()

    def to_dict(self) -> dict[str, Any]:
        """The wire form: every field (None as null), dates as ISO strings, unknown fields (``extra``) back in place."""
        from .._wire.converter import unstructure

        data: dict[str, Any] = unstructure(self)
        return data

    def to_json(self, *, indent: int | None = None) -> str:
        """:meth:`to_dict` as JSON text (``json.dumps(model)`` does not know attrs classes)."""
        return json.dumps(self.to_dict(), indent=indent)
