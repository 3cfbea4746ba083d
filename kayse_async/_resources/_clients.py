"""``/v1/clients``."""

from __future__ import annotations

from typing import Unpack

from .._wire.fields import CLIENTS
from .._wire.params import ClientCreate, ClientUpdate
from ..models import Client
from ._crud import CrudResource


class Clients(CrudResource[Client]):
    """The firm's clients: ``kayse.clients``."""

    _path = "/v1/clients"
    _name = "clients"
    _id_name = "client_id"
    _model = Client
    _table = CLIENTS

    async def create(self, **fields: Unpack[ClientCreate]) -> Client:
        """Create a client (``POST /v1/clients``); never retried once it may have reached the server.

        The API's fields as keyword arguments (``external_source``, ``external_source_id``,
        ``first_name`` and ``last_name`` required; dates as ``datetime.date`` or ``"YYYY-MM-DD"``);
        a field this SDK does not know yet goes in ``extra_body``, another name is refused.
        """
        return await self._create(fields)

    async def get(self, client_id: int) -> Client:
        """Get a client by id (``GET /v1/clients/{id}``)."""
        return await self._get(client_id)

    async def update(self, client_id: int, **fields: Unpack[ClientUpdate]) -> Client:
        """Replace a client (``PUT /v1/clients/{id}``).

        A full replacement: every optional field of the PUT table not given is sent as null and
        cleared by the server; ``gender`` and ``voice_calls_opted_out`` (outside that table) are
        sent only with a value. To change a few fields and keep the rest, use :meth:`patch`.
        """
        return await self._update(client_id, fields)

    async def patch(self, client_id: int, **changes: Unpack[ClientUpdate]) -> Client:
        """Change the given fields of a client and keep every other (GET, merge, PUT: two requests).

        Fields the server sent that this SDK does not know are sent back unchanged.
        """
        return await self._patch(client_id, changes)

    async def delete(self, client_id: int) -> None:
        """Delete a client (``DELETE /v1/clients/{id}``)."""
        await self._delete(client_id)
