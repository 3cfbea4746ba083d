"""``/v1/metadata/objects``: the public objects and their fields."""

from __future__ import annotations

from .._wire.protocol import Request, expect, structure_response
from ..models import ObjectSchema
from ._base import Resource

_PATH = "/v1/metadata/objects"


class Metadata(Resource):
    """The API's own description of its objects: ``kayse.metadata``."""

    async def objects(self) -> list[ObjectSchema]:
        """Every public object (cases, clients, case lists) with its fields, types and required flags."""
        request = Request(method="GET", path=_PATH, idempotent=True)
        data = (await self._send(request)).data
        expect(data, list, "a JSON array of objects", method="GET", url=_PATH)
        return structure_response(data, list[ObjectSchema], method="GET", url=_PATH)
