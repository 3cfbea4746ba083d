"""The emulator's in-memory data and the operations on it.

Every operation runs inside :meth:`Store.transaction`: each change records how to undo itself, and an
error anywhere (a clash in the fifth item of a batch) undoes everything the operation did. No ``await``
here, so other requests never see half of an operation.
"""

from __future__ import annotations

import contextlib
import copy
import time
from collections.abc import Callable, Generator, Mapping
from typing import Any, Final

import attrs

from ._validation import CAMPAIGN_FIELDS, CASE_FIELDS, CASE_LIST_FIELDS, CLIENT_FIELDS, Field, Page, Reject, bad

Record = dict[str, Any]

_MISSING: Final = object()


class _Undo:
    """The undo log of one transaction."""

    def __init__(self) -> None:
        self.steps: list[Callable[[], None]] = []

    def set(self, table: dict[Any, Any], key: Any, value: Any) -> None:
        old = table.get(key, _MISSING)
        table[key] = value
        self.steps.append(lambda: table.pop(key) if old is _MISSING else table.__setitem__(key, old))

    def pop(self, table: dict[Any, Any], key: Any) -> None:
        if key in table:
            old = table.pop(key)
            self.steps.append(lambda: table.__setitem__(key, old))

    def append(self, items: list[Any], value: Any) -> None:
        items.append(value)
        self.steps.append(items.pop)

    def remove(self, items: list[Any], value: Any) -> None:
        index = items.index(value)
        del items[index]
        self.steps.append(lambda: items.insert(index, value))

    def rollback(self) -> None:
        while self.steps:
            self.steps.pop()()


@attrs.frozen
class _Linked:
    """How clients or cases are written: each record holds the ids of the other kind's records it is linked to."""

    what: str
    fields: tuple[Field, ...]
    links: str
    other: str
    unique: Mapping[str, tuple[str, ...]]
    """Values no two records share: the field an error names -> the fields that make the value."""


_SOURCE: Final = {"external_source_id": ("external_source", "external_source_id")}
_LINKED: Final = {
    "clients": _Linked("client", CLIENT_FIELDS, "case_ids", "cases", _SOURCE),
    "cases": _Linked("case", CASE_FIELDS, "client_ids", "clients", {**_SOURCE, "case_number": ("case_number",)}),
}

CAMPAIGN_KEYS: Final = ("id", *(field.name for field in CAMPAIGN_FIELDS))


def _by_id(table: dict[int, Record]) -> list[Record]:
    return [table[item_id] for item_id in sorted(table)]


class Store:
    """All the data of one emulator: ``clients``, ``cases``, ``case_lists`` and ``campaigns`` (records by id, as the
    API returns them) and the ``outbox``. Read them freely; change them only through the API (see docs/emulator.md)."""

    def __init__(self, wall_clock: Callable[[], float] = time.time) -> None:
        self._wall = wall_clock
        self._undo: _Undo | None = None
        self.clear()

    def clear(self) -> None:
        """Forget all data (ids start again at 1)."""
        self.clients: dict[int, Record] = {}
        self.cases: dict[int, Record] = {}
        self.case_lists: dict[int, Record] = {}
        self.campaigns: dict[int, Record] = {}
        self.outbox: list[Record] = []
        self.lookups: dict[str, dict[str, int]] = {"statuses": {}, "types": {}, "agents": {}}
        self._next: dict[str, int] = {}
        self._taken: dict[tuple[Any, ...], int] = {}
        """The uniqueness index: (kind, field, value) -> the id of the record holding the value."""

    # -- transactions ------------------------------------------------------------------------

    @contextlib.contextmanager
    def transaction(self) -> Generator[None]:
        """Run one operation: all of its changes, or none of them."""
        assert self._undo is None, "transactions do not nest"
        self._undo = _Undo()
        try:
            yield
        except BaseException:
            self._undo.rollback()
            raise
        finally:
            self._undo = None

    @property
    def _u(self) -> _Undo:
        assert self._undo is not None, "store changes need a transaction"
        return self._undo

    def _set(self, record: Record, name: str, value: Any) -> None:
        if record.get(name, _MISSING) is not value:
            self._u.set(record, name, value)

    def _new_id(self, kind: str) -> int:
        value = self._next.get(kind, 1)
        self._u.set(self._next, kind, value + 1)
        return value

    def _lookup(self, table: str, name: str | None) -> None:
        ids = self.lookups[table]
        if name is not None and name not in ids:
            self._u.set(ids, name, len(ids) + 1)

    # -- clients and cases -------------------------------------------------------------------

    def _link(self, kind: str, item_id: int, other_id: int, *, linked: bool = True) -> None:
        """Link a client and a case both ways (``item_id`` is of ``kind``), or unlink them."""
        client_id, case_id = (item_id, other_id) if kind == "clients" else (other_id, item_id)
        ends = ((self.clients[client_id]["case_ids"], case_id), (self.cases[case_id]["client_ids"], client_id))
        for links, value in ends:
            if linked and value not in links:
                self._u.append(links, value)
            elif not linked and value in links:
                self._u.remove(links, value)

    def _require_all(self, table: dict[int, Record], ids: list[int], path: str, what: str) -> None:
        for index, item in enumerate(ids):
            if item not in table:
                # A single id (a client's "case_id" alias, a campaign_id) is named without an index.
                where = path if path.endswith("_id") else f"{path}[{index}]"
                raise bad(where, f"{what} {item} not found")

    def _keys(self, kind: str, record: Record) -> dict[str, tuple[Any, ...]]:
        unique = _LINKED[kind].unique
        return {field: (kind, field, tuple(record[name] for name in names)) for field, names in unique.items()}

    def put(
        self,
        kind: str,
        item_id: int | None,
        values: dict[str, Any],
        *,
        prefix: str = "",
        extra_fields: frozenset[str] = frozenset(),
    ) -> Record:
        """Create (``item_id`` None) or fully replace a client or a case (``kind``); return the stored record.

        The links given replace the record's; opting out spreads at write time (see docs/emulator.md).
        """
        spec, table = _LINKED[kind], getattr(self, kind)
        via = spec.links
        if "case_id" in values:  # a client's single-id alias of case_ids
            via, single = "case_id", values["case_id"]
            values = {key: value for key, value in values.items() if key != "case_id"}
            values["case_ids"] = None if single is None else [single]
        old = self._existing(table, item_id, spec.what, prefix)
        merged = self._replace(old, values, spec.fields)
        merged.update({name: values.get(name) for name in extra_fields})
        keys = self._keys(kind, merged)
        for field, key in keys.items():
            holder = self._taken.get(key)
            if holder is not None and holder != item_id:
                raise bad(prefix + field, f"{field} is already used by another record")
        links: list[int] = list(merged.pop(spec.links) or [])
        self._require_all(getattr(self, spec.other), links, prefix + via, _LINKED[spec.other].what)
        if old is None:
            item_id = self._new_id(kind)
            record: Record = {"id": item_id, **merged, spec.links: []}
            self._u.set(table, item_id, record)
        else:
            assert item_id is not None
            record = old
            for key in self._keys(kind, old).values():
                self._u.pop(self._taken, key)
            for name, value in merged.items():
                self._set(record, name, value)
        for key in keys.values():
            self._u.set(self._taken, key, item_id)
        for other_id in list(record[spec.links]):
            if other_id not in links:
                self._link(kind, item_id, other_id, linked=False)
        for other_id in links:
            self._link(kind, item_id, other_id)
        if kind == "cases":
            self._lookup("statuses", record["status"])
            self._lookup("types", record["type"])
            if record["opt_out_voice_calls"] is True:
                self._opt_out_case(item_id)
        else:
            if record["voice_calls_opted_out"] is None:
                self._u.set(record, "voice_calls_opted_out", False)
            if values.get("voice_calls_opted_out") is True:
                for case_id in record["case_ids"]:
                    self._set(self.cases[case_id], "opt_out_voice_calls", True)
                    self._opt_out_case(case_id)
        return record

    def _opt_out_case(self, case_id: int) -> None:
        for client_id in self.cases[case_id]["client_ids"]:
            self._set(self.clients[client_id], "voice_calls_opted_out", True)

    def _drop(self, kind: str, item_id: int) -> None:
        """Delete a client or a case (``kind``), its links and its unique values."""
        table: dict[int, Record] = getattr(self, kind)
        for other_id in list(table[item_id][_LINKED[kind].links]):
            self._link(kind, item_id, other_id, linked=False)
        for key in self._keys(kind, table[item_id]).values():
            self._u.pop(self._taken, key)
        self._u.pop(table, item_id)

    def delete_client(self, client_id: int) -> None:
        """Delete a client (404 when unknown)."""
        self.require(self.clients, client_id, "client")
        self._drop("clients", client_id)

    def delete_cases(self, case_ids: list[int], *, with_clients: bool = False) -> list[int]:
        """Delete the cases that exist among ``case_ids``; return their ids in input order. ``with_clients``:
        also the clients linked to a deleted case and to no case that survives."""
        found = [case_id for case_id in dict.fromkeys(case_ids) if case_id in self.cases]
        doomed = set(found)
        orphans: dict[int, None] = {}
        if with_clients:
            for case_id in found:
                for client_id in self.cases[case_id]["client_ids"]:
                    if doomed.issuperset(self.clients[client_id]["case_ids"]):
                        orphans[client_id] = None
        for case_id in found:
            self._drop("cases", case_id)
        for case_list in self.case_lists.values():
            members: list[int] = case_list["case_ids"]
            for case_id in [member for member in members if member in doomed]:
                self._u.remove(members, case_id)
        for client_id in orphans:
            self.delete_client(client_id)
        return found

    def delete_case(self, case_id: int) -> None:
        """Delete one case (404 when unknown)."""
        self.require(self.cases, case_id, "case")
        self.delete_cases([case_id])

    # -- case lists --------------------------------------------------------------------------

    def _matches(self, case: Record, filter_: dict[str, Any]) -> bool:
        statuses, types = self.lookups["statuses"], self.lookups["types"]
        checks: list[bool] = [
            "status_ids" not in filter_ or statuses.get(case["status"]) in filter_["status_ids"],
            "case_type_ids" not in filter_ or types.get(case["type"]) in filter_["case_type_ids"],
            "statuses" not in filter_ or case["status"] in filter_["statuses"],
            "types" not in filter_ or case["type"] in filter_["types"],
            "is_obo" not in filter_ or bool(case["is_obo"]) is filter_["is_obo"],
            "jurisdiction" not in filter_ or case["jurisdiction"] == filter_["jurisdiction"],
        ]
        return all(checks)

    def members(self, filter_: dict[str, Any] | None, include: list[int], exclude: list[int]) -> list[int]:
        """The cases a list with this filter and these overrides holds now, by id."""
        if filter_ is None:
            return []
        chosen = {case_id for case_id, case in self.cases.items() if self._matches(case, filter_)}
        chosen.update(case_id for case_id in include if case_id in self.cases)
        chosen.difference_update(exclude)
        return sorted(chosen)

    def put_case_list(self, list_id: int | None, values: dict[str, Any], *, prefix: str = "") -> Record:
        """Create or update a case list, applying its filter now ("set": members are replaced); a non-null
        ``is_obo`` is written to every member case."""
        old = self._existing(self.case_lists, list_id, "case list", prefix)
        merged = self._replace(old, values, CASE_LIST_FIELDS)
        include: list[int] = merged["include_ids"] or []
        exclude: list[int] = merged["exclude_ids"] or []
        merged["include_ids"], merged["exclude_ids"] = include, exclude
        self._require_all(self.cases, include, prefix + "include_ids", "case")
        members = self.members(merged["filter"], include, exclude)
        if old is None:
            list_id = self._new_id("case_lists")
            record: Record = {"id": list_id, **merged, "case_ids": members}
            self._u.set(self.case_lists, list_id, record)
        else:
            record = old
            for name, value in {**merged, "case_ids": members}.items():
                self._u.set(record, name, value)
        if merged["is_obo"] is not None:
            for case_id in members:
                self._set(self.cases[case_id], "is_obo", merged["is_obo"])
        return record

    def list_case_lists(self, page: Page) -> tuple[list[Record], int]:
        """One page of the case lists matching ``page``'s search, and the number matching."""
        key = page.key.casefold() if page.key else None
        chosen = [
            record
            for record in _by_id(self.case_lists)
            if (key is None or key in (record["name"] or "").casefold()) and (record["case_ids"] or not page.hide_empty)
        ]
        start = (page.page - 1) * page.page_size
        return chosen[start : start + page.page_size], len(chosen)

    # -- campaigns, messages, calls ----------------------------------------------------------

    def create_campaign(self, values: dict[str, Any]) -> Record:
        """Create a campaign over an existing case list."""
        self._require_all(self.case_lists, [values["case_list_id"]], "case_list_id", "case list")
        merged = self._replace(None, values, CAMPAIGN_FIELDS)
        campaign_id = self._new_id("campaigns")
        record = {"id": campaign_id, **merged}
        self._u.set(self.campaigns, campaign_id, record)
        self._lookup("agents", merged["agent_id"])
        return record

    def campaign_view(self, record: Record) -> Record:
        """A campaign as the API returns it: with its list's name and its agent (stats stay empty)."""
        case_list = self.case_lists.get(record["case_list_id"])
        view: Record = {}
        for key in CAMPAIGN_KEYS:
            view[key] = record[key]
            if key == "case_list_id":
                view["case_list_name"] = case_list["name"] if case_list else None
            elif key == "end_time":
                view["agent"] = {
                    "id": self.lookups["agents"].get(record["agent_id"]),
                    "name": record["agent_id"],
                    "voice_id": None,
                    "avatar_url": None,
                }
                view["stats"] = {}
        return view

    def list_campaigns(self, key: str | None) -> list[Record]:
        """Every campaign whose name holds ``key`` (any case), by id."""
        folded = key.casefold() if key else None
        return [
            self.campaign_view(record)
            for record in _by_id(self.campaigns)
            if folded is None or folded in record["name"].casefold()
        ]

    def send(self, kind: str, case_id: int, client_id: int, **text: str) -> Record:
        """Record an SMS or an email (``kind``) to a client of a case (never sent); ``text``: its subject, message."""
        self._require_all(self.cases, [case_id], "case_id", "case")
        self._require_all(self.clients, [client_id], "client_id", "client")
        if case_id not in self.clients[client_id]["case_ids"]:
            raise bad("client_id", f"client {client_id} is not linked to case {case_id}")
        return self._record(kind=kind, case_id=case_id, client_id=client_id, **text)

    def _record(self, **fields: Any) -> Record:
        entry: Record = {
            "id": len(self.outbox) + 1,
            "kind": fields.pop("kind"),
            "case_id": None,
            "client_id": None,
            "campaign_id": None,
            "subject": None,
            "message": None,
            "at": self._wall(),
        }
        entry.update(fields)
        self._u.append(self.outbox, entry)
        return entry

    def schedule_call(self, campaign_id: int, case_id: int) -> Record:
        """Record an AI call for a case in a campaign, to its first linked client not opted out."""
        self._require_all(self.campaigns, [campaign_id], "campaign_id", "campaign")
        self._require_all(self.cases, [case_id], "case_id", "case")
        linked = self.cases[case_id]["client_ids"]
        client_id = next((c for c in linked if self.clients[c]["voice_calls_opted_out"] is not True), None)
        return self._record(kind="call", campaign_id=campaign_id, case_id=case_id, client_id=client_id)

    # -- helpers and views -------------------------------------------------------------------

    @staticmethod
    def require(table: dict[int, Record], item_id: int, what: str, field: str | None = None) -> Record:
        """The record ``item_id`` of ``table``, or a 404 (naming ``field`` for an id inside a body)."""
        record = table.get(item_id)
        if record is None:
            raise Reject(404, f"{what} {item_id} not found", field)
        return record

    def _existing(self, table: dict[int, Record], item_id: int | None, what: str, prefix: str) -> Record | None:
        """None for a create; for an update, the record it replaces."""
        if item_id is None:
            return None
        return self.require(table, item_id, what, f"{prefix}id" if prefix else None)

    @staticmethod
    def _replace(old: Record | None, values: dict[str, Any], fields: tuple[Field, ...]) -> dict[str, Any]:
        """The field values after a create or a full replacement by ``values``: a replacement keeps each
        required field it omits, and each field outside the PUT table it omits or nulls (an update that
        forgot the opt-out flag never calls someone who opted out); other fields omitted become null."""
        merged: dict[str, Any] = {}
        for field in fields:
            name = field.name
            if name in values and (values[name] is not None or field.put):
                merged[name] = values[name]
            elif old is not None and (field.required or not field.put):
                merged[name] = old[name]
            else:
                merged[name] = None
        return merged

    def snapshot(self) -> dict[str, Any]:
        """A deep copy of all data, JSON-ready (``GET /_emulator/store``)."""
        return copy.deepcopy(
            {
                "clients": _by_id(self.clients),
                "cases": _by_id(self.cases),
                "case_lists": _by_id(self.case_lists),
                "campaigns": [self.campaign_view(record) for record in _by_id(self.campaigns)],
                "outbox": self.outbox,
                "lookups": self.lookups,
            }
        )
