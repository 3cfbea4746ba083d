"""The emulator's aiohttp application: routing, keys, rate limits, faults, handlers."""

from __future__ import annotations

import asyncio
import collections
import email.utils
import functools
import hmac
import json
import logging
import math
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Final, Literal

import attrs
from aiohttp import web

from . import _validation as v
from ._faults import FAULT_KINDS, MIN_SPIKE_MS, FaultInjector, FaultKind, parse_kinds
from ._ratelimit import WINDOWS, Decision, RateLimiter, Window
from ._routes import AUTH_HEADERS, Route, match
from ._store import Store

logger = logging.getLogger("kayse_async.testing")

ResetForm = Literal["delta", "epoch"]
RESET_FORMS: Final[tuple[ResetForm, ...]] = ("delta", "epoch")
MAX_BODY_BYTES: Final = 64 * 1024 * 1024


@attrs.define(kw_only=True)
class Settings:
    """What an emulator does (see docs/emulator.md); every field can change while it runs."""

    api_key: str = attrs.field(repr=False)
    calls_api_key: str = attrs.field(repr=False)
    limit: int = 500
    period: float = 3600.0
    window: Window = "fixed"
    reset: ResetForm = "delta"
    fault_rate: float = 0.0
    fault_kinds: tuple[FaultKind, ...] = FAULT_KINDS
    latency_ms: float = 0.0
    seed: int | None = None
    max_batch: int | None = None
    clock_skew: float = 0.0
    extra_fields: tuple[str, ...] = ()
    """Fields a newer server knows on clients and cases beyond the reference's: any JSON value,
    stored and returned, nulled by a full replacement that omits them."""

    def check(self) -> None:
        """Raise ValueError naming the first setting out of range."""
        if not self.api_key or not self.calls_api_key:
            raise ValueError("API keys must not be empty")
        if self.limit < 0:
            raise ValueError("limit must be 0 (off) or more")
        if not self.period > 0:
            raise ValueError("period must be positive")
        if self.window not in WINDOWS:
            raise ValueError(f"window must be one of {', '.join(WINDOWS)}")
        if self.reset not in RESET_FORMS:
            raise ValueError(f"reset must be one of {', '.join(RESET_FORMS)}")
        if not 0.0 <= self.fault_rate <= 1.0:
            raise ValueError("fault_rate must be between 0 and 1")
        self.fault_kinds = parse_kinds(self.fault_kinds)
        if self.latency_ms < 0:
            raise ValueError("latency_ms must not be negative")
        if self.max_batch is not None and self.max_batch < 1:
            raise ValueError("max_batch must be at least 1")
        if not math.isfinite(self.clock_skew):
            raise ValueError("clock_skew must be finite")
        self.extra_fields = tuple(self.extra_fields)
        if not all(isinstance(name, str) and name for name in self.extra_fields):
            raise ValueError("extra_fields must be non-empty field names")

    def public(self) -> dict[str, Any]:
        """The settings without the keys (``GET /_emulator/config``)."""
        return attrs.asdict(self, filter=lambda field, _: field.name in CONFIG_FIELDS)


CONFIG_FIELDS: Final = frozenset(attrs.fields_dict(Settings)) - {"api_key", "calls_api_key"}


@attrs.define
class Stats:
    """Counts of what the emulator served."""

    requests: int = 0
    rate_limited: int = 0
    by_route: collections.Counter[str] = attrs.field(factory=collections.Counter[str])
    by_status: collections.Counter[str] = attrs.field(factory=collections.Counter[str])
    faults: collections.Counter[str] = attrs.field(factory=collections.Counter[str])

    def as_dict(self) -> dict[str, Any]:
        """The body of ``GET /_emulator/stats``."""
        return {
            "requests": self.requests,
            "rate_limited": self.rate_limited,
            "by_route": dict(sorted(self.by_route.items())),
            "by_status": dict(sorted(self.by_status.items())),
            "faults": {kind: self.faults[kind] for kind in FAULT_KINDS},
        }


def _dumps(payload: Any) -> bytes:
    # ASCII escapes: a lone surrogate sent in a request ("\\ud800") comes back escaped, never as a crash.
    return json.dumps(payload, separators=(",", ":")).encode()


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def parse_json(raw: bytes) -> Any:
    """A request body as JSON, or a 400 (malformed JSON is never a 500)."""
    if not raw.strip():
        raise v.bad(None, "request body is required")
    try:
        return json.loads(raw.decode("utf-8"), parse_constant=_reject_constant)
    except UnicodeDecodeError:
        raise v.bad(None, "request body is not valid UTF-8") from None
    except ValueError as error:
        # json.JSONDecodeError is a ValueError; its message holds a position, not the body.
        detail = error.msg if isinstance(error, json.JSONDecodeError) else str(error)
        raise v.bad(None, f"malformed JSON: {detail}") from None
    except RecursionError:
        raise v.bad(None, "malformed JSON: nested too deeply") from None


class Service:
    """One emulator's state and behaviour, independent of how its server runs."""

    def __init__(self, settings: Settings, *, clock: Callable[[], float] = time.monotonic) -> None:
        settings.check()
        self.settings = settings
        self.clock = clock
        """The rate limiter's monotonic clock; may be replaced before the first request."""
        self.store = Store(self.now)
        self.stats = Stats()
        self.faults = FaultInjector(settings.fault_rate, settings.fault_kinds, seed=settings.seed)
        self.limiter = self._new_limiter()
        self._handlers = self._operations()

    # -- settings ----------------------------------------------------------------------------

    def now(self) -> float:
        """The server's wall clock: real time plus the configured skew."""
        return time.time() + self.settings.clock_skew

    def _new_limiter(self) -> RateLimiter | None:
        s = self.settings
        return RateLimiter(s.limit, s.period, s.window, clock=lambda: self.clock()) if s.limit > 0 else None

    def configure(self, **changes: Any) -> None:
        """Change settings (names of :class:`Settings`, keys excepted), all or nothing; a change of ``limit``,
        ``period`` or ``window`` starts every budget afresh, a ``seed`` restarts the fault sequence."""
        unknown = set(changes) - CONFIG_FIELDS
        if unknown:
            raise ValueError(f"unknown setting(s): {', '.join(sorted(unknown))}")
        if "fault_kinds" in changes:
            kinds = changes["fault_kinds"]
            changes["fault_kinds"] = tuple(kinds.split(",") if isinstance(kinds, str) else kinds)
        candidate = attrs.evolve(self.settings, **changes)
        candidate.check()
        self.settings = candidate
        self.faults.rate = candidate.fault_rate
        self.faults.kinds = candidate.fault_kinds
        if "seed" in changes:
            self.faults.reseed(candidate.seed)
        if {"limit", "period", "window"} & set(changes):
            self.limiter = self._new_limiter()

    def reset(self, *, store: bool = False, limits: bool = False) -> None:
        """Empty the stats; with ``store`` all data too; with ``limits`` every rate budget."""
        self.stats = Stats()
        if store:
            self.store.clear()
        if limits and self.limiter is not None:
            self.limiter.reset()

    # -- the application ---------------------------------------------------------------------

    def application(self) -> web.Application:
        """A new aiohttp application serving this emulator."""
        app = web.Application(client_max_size=MAX_BODY_BYTES)
        app.router.add_get("/_emulator/stats", self._introspect(lambda _: self.stats.as_dict()))
        app.router.add_get("/_emulator/store", self._introspect(lambda _: self.store.snapshot()))
        app.router.add_get("/_emulator/outbox", self._introspect(lambda _: list(self.store.outbox)))
        app.router.add_post("/_emulator/reset", self._introspect(self._reset_route))
        app.router.add_get("/_emulator/config", self._introspect(lambda _: self.settings.public()))
        app.router.add_post("/_emulator/config", self._config_route)
        app.router.add_route("*", "/{tail:.*}", self.dispatch)
        app.on_response_prepare.append(self._stamp_date)
        return app

    async def _stamp_date(self, _request: web.Request, response: web.StreamResponse) -> None:
        response.headers["Date"] = email.utils.formatdate(self.now(), usegmt=True)

    def _introspect(self, produce: Callable[[web.Request], Any]) -> Callable[[web.Request], Awaitable[web.Response]]:
        async def handler(request: web.Request) -> web.Response:
            return _json(200, produce(request))

        return handler

    def _reset_route(self, request: web.Request) -> dict[str, Any]:
        flags = {name: request.query.get(name, "").lower() in ("1", "true") for name in ("store", "limits")}
        self.reset(**flags)
        return {"message": "reset", **flags}

    async def _config_route(self, request: web.Request) -> web.Response:
        try:
            changes = v.require_object(parse_json(await request.read()))
            self.configure(**changes)
        except v.Reject as reject:
            return _json(reject.status, reject.body())
        except (ValueError, TypeError) as error:
            return _error(400, str(error))
        return _json(200, self.settings.public())

    async def dispatch(self, request: web.Request) -> web.StreamResponse:
        """Serve one request to any path other than the introspection routes."""
        path = request.path
        if path != "/v1" and not path.startswith("/v1/"):
            return self._stamp(_error(404, "not found"), self._peek(request))
        self.stats.requests += 1
        if self.settings.latency_ms > 0:
            await asyncio.sleep(self.settings.latency_ms / 1000)
        found = match(path)
        if found is None:
            return self._finish(_error(404, "no such endpoint"), self._peek(request))
        where, params = found
        self.stats.by_route[f"{request.method} {where.template}"] += 1
        route = where.routes.get(request.method)
        if route is None:
            allow = ", ".join(sorted(where.routes))
            response = _error(405, f"method {request.method} not allowed", headers={"Allow": allow})
            return self._finish(response, self._peek(request))
        key = self._authenticate(request, route)
        if isinstance(key, web.Response):
            return self._finish(key, self._peek(request))
        decision = self.limiter.hit(key) if self.limiter is not None else None
        if decision is not None and not decision.allowed:
            self.stats.rate_limited += 1
            response = _error(429, "rate limit exceeded", headers={"Retry-After": str(decision.retry_after)})
            return self._finish(response, decision)
        return await self._serve(request, route, params, decision)

    def _authenticate(self, request: web.Request, route: Route) -> str | web.Response:
        header = AUTH_HEADERS[route.auth]
        expected = self.settings.calls_api_key if route.auth == "calls" else self.settings.api_key
        given = request.headers.get(header)
        if not given:
            return _error(401, f"missing API key: send it in the {header} header", header)
        if not hmac.compare_digest(given.encode("utf-8", "surrogateescape"), expected.encode()):
            return _error(401, "invalid API key", header)
        return expected

    async def _serve(
        self, request: web.Request, route: Route, params: dict[str, int], decision: Decision | None
    ) -> web.StreamResponse:
        fault = self.faults.draw()
        if fault is not None:
            self.stats.faults[fault] += 1
        if fault == "500":
            return self._finish(_error(500, "internal server error (injected)"), decision)
        if fault == "503":
            return self._finish(_error(503, "service unavailable (injected)", headers={"Retry-After": "1"}), decision)
        if fault == "drop":
            return _cut(request)
        if fault == "latency":
            await asyncio.sleep(max(3 * self.settings.latency_ms, MIN_SPIKE_MS) / 1000)
        try:
            body: Any = None
            if route.has_body:
                try:
                    raw = await request.read()
                except web.HTTPRequestEntityTooLarge:
                    raise v.Reject(413, "request body too large", None) from None
                body = parse_json(raw)
            with self.store.transaction():
                # Serialised inside the transaction: a response that cannot be written undoes the change.
                call = Call(params.get("id", 0), request.query, body)
                response = _json(200, self._handlers[route.operation](call))
        except v.Reject as reject:
            response = _json(reject.status, reject.body())
        except (ConnectionError, asyncio.CancelledError) as exc:
            # The client went away mid-request (Ctrl-C, a kill): nothing to answer, nothing wrong here.
            logger.debug("client left during %s %s: %s", route.method, route.template, type(exc).__name__)
            raise
        except Exception:
            # A bug of the emulator, never a reaction to input: log it (no headers, no body).
            logger.exception("emulator error in %s %s", route.method, route.template)
            response = _error(500, "internal server error")
        if fault == "lost":
            return _cut(request)
        return self._finish(response, decision)

    def _peek(self, request: web.Request) -> Decision | None:
        """The budget of the key a request presented, unspent: answers that do not count still report it."""
        if self.limiter is None:
            return None
        given = request.headers.get(AUTH_HEADERS["main"]) or request.headers.get(AUTH_HEADERS["calls"]) or ""
        return self.limiter.hit(given, spend=False)

    def _finish(self, response: web.Response, decision: Decision | None) -> web.Response:
        self.stats.by_status[str(response.status)] += 1
        return self._stamp(response, decision)

    def _stamp(self, response: web.Response, decision: Decision | None) -> web.Response:
        """Add the ``X-RateLimit-*`` headers of ``decision`` (none when rate limiting is off)."""
        if decision is not None:
            epoch = self.settings.reset == "epoch"
            reset = math.ceil(self.now() + decision.reset_after) if epoch else decision.reset_seconds
            response.headers["X-RateLimit-Limit"] = str(decision.limit)
            response.headers["X-RateLimit-Remaining"] = str(decision.remaining)
            response.headers["X-RateLimit-Reset"] = str(reset)
        return response

    # -- operations ----------------------------------------------------------------------------

    def _operations(self) -> dict[str, Handler]:
        """The handler of each operation of the route table, by name: the body of a 200 answer, or a Reject."""
        store = self.store
        return {
            "create_client": lambda call: self._write("clients", None, call.body),
            "get_client": lambda call: store.require(store.clients, call.id, "client"),
            "update_client": lambda call: self._write("clients", call.id, call.body),
            "delete_client": lambda call: _deleted(store.delete_client, call.id, "client"),
            "bulk_upsert_clients": lambda call: self._write_many("clients", call.body),
            "create_case": lambda call: self._write("cases", None, call.body),
            "get_case": lambda call: store.require(store.cases, call.id, "case"),
            "update_case": lambda call: self._write("cases", call.id, call.body),
            "delete_case": lambda call: _deleted(store.delete_case, call.id, "case"),
            "bulk_upsert_cases": lambda call: self._write_many("cases", call.body),
            "bulk_delete_cases": self._bulk_delete,
            "send_sms": lambda call: self._send("sms", call, v.SMS_FIELDS),
            "send_email": lambda call: self._send("email", call, v.EMAIL_FIELDS),
            "list_case_lists": self._list_case_lists,
            "create_case_list": lambda call: store.put_case_list(
                None, v.check_case_list(v.require_object(call.body), require=True)
            ),
            "bulk_upsert_case_lists": self._upsert_case_lists,
            "list_campaigns": lambda call: store.list_campaigns(call.query.get("key") or None),
            "create_campaign": lambda call: store.campaign_view(
                store.create_campaign(_fields(call, v.CAMPAIGN_FIELDS))
            ),
            "schedule_call": self._schedule_call,
            "metadata_objects": lambda _call: v.metadata_objects(),
        }

    def _write(self, kind: str, item_id: int | None, body: Any) -> Any:
        """Create (``item_id`` None) or fully replace one client or case."""
        data = v.require_object(body)
        if item_id is not None:
            data = _without_own_id(data, item_id)
            self.store.require(getattr(self.store, kind), item_id, kind[:-1])  # a 404 before any 400
        extra = frozenset(self.settings.extra_fields)
        values = _CHECKS[kind](data, require=item_id is None, extra_fields=extra)
        return self.store.put(kind, item_id, values, extra_fields=extra)

    def _write_many(self, kind: str, body: Any) -> Any:
        """A bulk upsert of clients or cases: every item checked, then all applied or none."""
        extra = frozenset(self.settings.extra_fields)
        check = functools.partial(_CHECKS[kind], extra_fields=extra)
        items = v.check_items(body, kind, check, max_batch=self.settings.max_batch)
        return {
            kind: [
                self.store.put(kind, item_id, values, prefix=f"{kind}[{index}].", extra_fields=extra)
                for index, (item_id, values) in enumerate(items)
            ]
        }

    def _bulk_delete(self, call: Call) -> Any:
        ids, with_clients = v.check_bulk_delete(call.body)
        return {"deleted_ids": self.store.delete_cases(ids, with_clients=with_clients)}

    def _send(self, kind: str, call: Call, fields: tuple[v.Field, ...]) -> Any:
        data = _fields(call, fields)
        self.store.send(kind, data.pop("case_id"), data.pop("client_id"), **data)
        return {"message": f"{kind} scheduled"}

    def _list_case_lists(self, call: Call) -> Any:
        page = v.check_case_list_query(call.query)
        lists, total = self.store.list_case_lists(page)
        return {"case_lists": lists, "page": page.page, "page_size": page.page_size, "total": total}

    def _upsert_case_lists(self, call: Call) -> Any:
        items = v.check_items(call.body, "lists", v.check_case_list, max_batch=self.settings.max_batch)
        results: list[dict[str, Any]] = []
        for index, (item_id, values) in enumerate(items):
            record = self.store.put_case_list(item_id, values, prefix=f"lists[{index}].")
            results.append({"id": record["id"], "action": "created" if item_id is None else "updated"})
        return {"lists": results}

    def _schedule_call(self, call: Call) -> Any:
        data = _fields(call, v.CALL_FIELDS)
        scheduled = self.store.schedule_call(data["campaign_id"], data["case_id"])
        return {key: scheduled[key] for key in ("campaign_id", "client_id", "case_id")}


@attrs.frozen
class Call:
    """What an operation is given: the id in its path (0 when the path has none), the query, the JSON body."""

    id: int
    query: Mapping[str, str]
    body: Any


Handler = Callable[[Call], Any]

_CHECKS: Final = {"clients": v.check_client, "cases": v.check_case}


def _fields(call: Call, fields: tuple[v.Field, ...]) -> dict[str, Any]:
    return v.check_fields(v.require_object(call.body), fields, require=True)


def _deleted(delete: Callable[[int], None], item_id: int, what: str) -> dict[str, str]:
    delete(item_id)
    return {"message": f"{what} deleted successfully"}


def _without_own_id(data: dict[str, Any], item_id: int) -> dict[str, Any]:
    """A PUT body may repeat the path's id (as a GET returned it), and nothing else."""
    if "id" not in data:
        return data
    if data["id"] != item_id or isinstance(data["id"], bool):
        raise v.bad("id", "id must match the id in the path")
    return {key: value for key, value in data.items() if key != "id"}


def _json(status: int, payload: Any, headers: Mapping[str, str] | None = None) -> web.Response:
    return web.Response(status=status, body=_dumps(payload), content_type="application/json", headers=headers)


def _error(
    status: int, message: str, field: str | None = None, headers: Mapping[str, str] | None = None
) -> web.Response:
    return _json(status, {"message": message, "field": field}, headers)


def _cut(request: web.Request) -> web.Response:
    """Close the connection without a response (the returned response is never written)."""
    transport = request.transport
    if transport is not None:
        transport.close()
    return web.Response(status=500)
