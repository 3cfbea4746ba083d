"""The one cattrs converter of kayse_async."""

from __future__ import annotations

import datetime as dt
import typing
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import attrs
import cattrs

from .. import models

T = TypeVar("T")

EXTRA = "extra"
"""The attribute in which every model keeps the fields it does not know."""

MODEL_CLASSES: tuple[type[Any], ...] = (
    models.Client,
    models.Case,
    models.CaseList,
    models.CaseListUpsert,
    models.Agent,
    models.CampaignStats,
    models.CallbackDelay,
    models.Campaign,
    models.ScheduledCall,
    models.FieldSchema,
    models.ObjectSchema,
)


def _structure_date(value: Any, _: Any) -> dt.date:
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    if isinstance(value, str):
        # The API sends "YYYY-MM-DD"; a timestamp is cut to its date part.
        return dt.date.fromisoformat(value[:10])
    raise TypeError(f"expected a YYYY-MM-DD date, got {type(value).__name__}")


def _all_ints(values: list[Any]) -> bool:
    # A plain loop: cheaper than all() over a generator, on every response with ids.
    for item in values:  # noqa: SIM110
        if type(item) is not int:
            return False
    return True


def _unstructure_date(value: dt.date) -> str:
    return value.isoformat()


def _structure_int(value: Any, _: Any) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    raise TypeError(f"expected an integer, got {type(value).__name__} {str(value)[:40]!r}")


def _structure_float(value: Any, _: Any) -> float:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    raise TypeError(f"expected a number, got {type(value).__name__} {str(value)[:40]!r}")


def _structure_bool(value: Any, _: Any) -> bool:
    if isinstance(value, bool):
        return value
    raise TypeError(f"expected true or false, got {type(value).__name__} {str(value)[:40]!r}")


def _structure_str(value: Any, _: Any) -> str:
    if isinstance(value, str):
        return value
    raise TypeError(f"expected a string, got {type(value).__name__} {str(value)[:40]!r}")


_STR, _INT, _BOOL, _HOOK = range(4)
_INLINE: dict[Any, int] = {str: _STR, int: _INT, bool: _BOOL}


def _list_hook(conv: cattrs.Converter) -> Callable[[Any, Any], list[Any]]:
    def structure_list(value: Any, cls: Any) -> list[Any]:
        if not isinstance(value, list):
            raise TypeError(f"expected an array, got {type(value).__name__} {str(value)[:40]!r}")
        args = getattr(cls, "__args__", None)
        if not args:
            return list(value)
        if args[0] is int:
            if not all(type(item) is int for item in value):
                raise TypeError(f"expected an array of integers, got {str(value)[:40]!r}")
            return list(value)
        return [conv.structure(item, args[0]) for item in value]

    return structure_list


class _LazyHook:
    """A cattrs structure hook resolved on first use, so nested models may be registered in any order."""

    __slots__ = ("_conv", "_hook", "_type")

    def __init__(self, conv: cattrs.Converter, tp: Any) -> None:
        self._conv = conv
        self._type = tp
        self._hook: Callable[[Any, Any], Any] | None = None

    def __call__(self, value: Any, name: str) -> Any:
        hook = self._hook
        if hook is None:
            hook = self._hook = self._conv.get_structure_hook(self._type)
        try:
            return hook(value, self._type)
        except (TypeError, ValueError) as exc:
            raise TypeError(f"{name}: {exc}") from None


def _wrong(name: str, expected: str, value: Any) -> typing.NoReturn:
    raise TypeError(f"{name}: expected {expected}, got {type(value).__name__} {str(value)[:40]!r}")


_EXPECTED = {_STR: "a string", _INT: "an integer", _BOOL: "true or false"}
_PYTYPE = {_STR: "str", _INT: "int", _BOOL: "bool"}


_builders: dict[type[Any], type[Any] | None] = {}


def builder_class(cls: type[Any]) -> type[Any] | None:
    """A subclass of ``cls`` whose instances take plain attribute stores, to become ``cls`` once filled; else None.

    That holds for a slotted attrs class with no validator, converter,
    on_setattr hook or ``__attrs_post_init__``: its ``__init__`` only stores
    the arguments (or the defaults). An instance is made with
    ``object.__new__(builder)``, given every field by ``obj.name = value``
    (the interpreter's fastest store, which a frozen class's ``__setattr__``
    forbids), then turned into a plain ``cls`` by ``obj.__class__ = cls``:
    the subclass adds no slot, so the object is laid out alike, and is frozen
    from then on. Several times cheaper than ``__init__``'s keyword arguments
    on models of twenty fields. Made once per class.
    """
    if cls in _builders:
        return _builders[cls]
    builder: type[Any] | None = None
    if (
        getattr(cls, "__attrs_attrs__", None)
        and "__slots__" in cls.__dict__
        and not hasattr(cls, "__attrs_post_init__")
        and not hasattr(cls, "__attrs_pre_init__")
        and all(f.validator is None and f.converter is None and f.init for f in attrs.fields(cls))
    ):
        # Both hooks back to object's: CPython then stores slots directly (one of them left to the
        # frozen class would route every store through Python).
        namespace = {"__slots__": (), "__setattr__": object.__setattr__, "__delattr__": object.__delattr__}
        candidate: type[Any] = type(f"_{cls.__name__}Builder", (cls,), namespace)
        probe: Any = object.__new__(candidate)
        try:
            probe.__class__ = cls
        except TypeError:  # pragma: no cover - a layout CPython refuses to swap
            pass
        else:
            builder = candidate
    _builders[cls] = builder
    return builder


def _structure_hook_keeping_extra(conv: cattrs.Converter, cls: type[T]) -> Callable[[Any, Any], T]:
    """Structure ``cls`` from a mapping, keeping unknown keys in ``extra``.

    Generated once per class (as cattrs does): one lookup per field; strings,
    integers and booleans checked inline by exact type, and dates and lists of
    ids taken inline in their usual form (the hot path of every response);
    other types through their hooks. The instance is filled slot by slot when
    the class allows it (``builder_class``), else built through ``__init__``.
    Both the wire name and the Python name of every field are the same (the
    models use the API's snake_case names), so ``extra`` never shadows one; a
    server field literally named "extra" lands in ``extra["extra"]`` and goes
    back out as "extra".
    """
    hints = typing.get_type_hints(cls)
    known = frozenset(a.name for a in attrs.fields(cls) if a.name != EXTRA)  # type: ignore[arg-type]
    builder = builder_class(cls)
    namespace: dict[str, Any] = {
        "Mapping": Mapping,
        "KNOWN": known,
        "wrong": _wrong,
        "cls": cls,
        "new": object.__new__,
        "builder": builder,
        "str": str,
        "int": int,
        "bool": bool,
        "list": list,
        "dict": dict,
        "len": len,
        "date": dt.date.fromisoformat,
        "all_ints": _all_ints,
    }

    def put(name: str, expr: str) -> str:
        return f"o.{name} = {expr}" if builder is not None else f"k[{name!r}] = {expr}"

    lines = [
        "def structure(value, _):",
        # An exact dict (every JSON object) skips the abstract-class check; any other mapping is
        # read through a plain copy (a defaultdict would grow a key on every subscript).
        "    if type(value) is not dict:",
        "        if not isinstance(value, Mapping):",
        f"            raise TypeError('expected a JSON object for {cls.__name__}, got ' + type(value).__name__)",
        "        value = dict(value)",
        "    o = new(builder)" if builder is not None else "    k = {}",
        f"    n = {len(known)}",
    ]
    for field in attrs.fields(cls):  # type: ignore[arg-type]
        name = field.name
        if name == EXTRA:
            continue
        tp = hints[name]
        args = typing.get_args(tp)
        nullable = type(None) in args
        inner = next(a for a in args if a is not type(None)) if nullable and len(args) == 2 else tp
        code = _INLINE.get(inner, _HOOK)
        # Read by subscript (specialized for dicts, cheaper than .get); a field left out is the
        # rare case, counted down from the number of fields so that present ones cost nothing.
        lines += ["    try:", f"        x = value[{name!r}]", "    except KeyError:"]
        missing_at = len(lines)
        lines += ["        n -= 1", "    else:"]
        first = f"if x is None:\n            {put(name, 'None')}\n        el" if nullable else ""
        hook = put(name, f"h_{name}(x, {name!r})")
        if code == _HOOK:
            namespace[f"h_{name}"] = _LazyHook(conv, inner)
        if code == _HOOK and inner is dt.date:
            # Other types common in responses, taken inline in their usual form: a
            # "YYYY-MM-DD" string, a list of ids, a JSON object; else through their hooks.
            usual = (
                f"if type(x) is str and len(x) == 10:\n            try:\n                {put(name, 'date(x)')}\n"
                f"            except ValueError:\n                {hook}"
            )
            lines.append(f"        {first}{usual}\n        else:\n            {hook}")
        elif code == _HOOK and inner == list[int]:
            usual = f"if type(x) is list and all_ints(x):\n            {put(name, 'list(x)')}"
            lines.append(f"        {first}{usual}\n        else:\n            {hook}")
        elif code == _HOOK and inner == dict[str, Any]:
            usual = f"if type(x) is dict or isinstance(x, Mapping):\n            {put(name, 'dict(x)')}"
            lines.append(f"        {first}{usual}\n        else:\n            wrong({name!r}, 'a JSON object', x)")
        elif code == _HOOK:
            lines.append(f"        {first}if True:\n            {hook}")
        else:
            # The value's type is asked first (it is rarely null) and the store comes after the
            # check, shared by both good cases: the fewest steps for the commonest fields.
            allowed = f"type(x) is not {_PYTYPE[code]}" + (" and x is not None" if nullable else "")
            lines.append(
                f"        if {allowed}:\n            wrong({name!r}, {_EXPECTED[code]!r}, x)\n        {put(name, 'x')}"
            )
        if builder is not None:
            # A field the server left out takes its default, as __init__ would give it.
            if isinstance(field.default, attrs.Factory):  # type: ignore[arg-type]
                namespace[f"d_{name}"] = field.default.factory
                missing = f"        {put(name, f'd_{name}()')}"
            elif field.default is attrs.NOTHING:
                missing = f"        raise TypeError('{name}: missing') from None"
            else:
                namespace[f"d_{name}"] = field.default
                missing = f"        {put(name, f'd_{name}')}"
            lines.insert(missing_at + 1, missing)
    unknown = "{key: item for key, item in value.items() if key not in KNOWN}"
    lines += ["    if n != len(value):", f"        {put(EXTRA, unknown)}"]
    if builder is not None:
        # Every slot needs a value; __init__ would give extra its own empty dict.
        lines += ["    else:", f"        {put(EXTRA, '{}')}", "    o.__class__ = cls", "    return o"]
    else:
        lines.append("    return cls(**k)")
    source = "\n".join(lines)
    exec(compile(source, f"<kayse_async structure {cls.__name__}>", "exec"), namespace)  # noqa: S102 - built above from field names
    function: Callable[[Any, Any], T] = namespace["structure"]
    return function


def _unstructure_hook_merging_extra(conv: cattrs.Converter, cls: type[Any]) -> Callable[[Any], dict[str, Any]]:
    """Unstructure ``cls`` to a dict of every field (None as null), with ``extra`` merged back.

    Known fields win over an ``extra`` entry of the same name. The function is
    generated once per class, one dict display with a term per field (as cattrs
    does): plain JSON values go as they are, dates as ISO strings, dicts and
    lists as shallow copies, anything else through its hook, None as null.
    """
    hints = typing.get_type_hints(cls)
    namespace: dict[str, Any] = {}
    terms: list[str] = []
    for field in attrs.fields(cls):
        name = field.name
        if name == EXTRA:
            continue
        tp = hints[name]
        args = typing.get_args(tp)
        inner = next(a for a in args if a is not type(None)) if type(None) in args and len(args) == 2 else tp
        origin = typing.get_origin(inner)
        get = f"v.{name}"
        if inner in (str, int, bool, float) or typing.get_origin(inner) is typing.Literal:
            term = get
        elif inner is dt.date:
            term = f"(None if {get} is None else {get}.isoformat())"
        elif origin in (dict, list) and typing.get_args(inner)[-1] in (Any, int, str):
            term = f"(None if {get} is None else {origin.__name__}({get}))"
        else:
            namespace[f"h_{name}"] = conv.get_unstructure_hook(inner)
            term = f"(None if {get} is None else h_{name}({get}))"
        terms.append(f"        {name!r}: {term},")
    source = "\n".join(
        [
            "def unstructure(v):",
            "    d = {",
            *terms,
            "    }",
            "    e = v.extra",
            "    if e:",
            "        m = dict(e)",
            "        m.update(d)",
            "        return m",
            "    return d",
        ]
    )
    exec(compile(source, f"<kayse_async unstructure {cls.__name__}>", "exec"), namespace)  # noqa: S102 - code built above from field names
    function: Callable[[Any], dict[str, Any]] = namespace["unstructure"]
    return function


def make_converter() -> cattrs.Converter:
    """Build the converter between models and JSON-ready data.

    Hooks:

    - ``int``, ``float``, ``bool``, ``str``, ``list[...]``: strict: a value of
      another JSON type is an error, never coerced (``"12"`` is not 12, and
      ``"false"`` is not True).
    - ``datetime.date``: unstructured to ``"YYYY-MM-DD"``; structured from an ISO
      date string (a longer timestamp is cut to its date) or a date.
    - every model class in ``MODEL_CLASSES``: structured from a mapping with
      unknown keys kept in the model's ``extra`` dict (a new server field is
      never dropped); unstructured to a dict holding every field, ``None`` as
      null (what a PUT needs, since the server nulls omitted fields), with
      ``extra`` merged back in so that a new server field survives an update.
    - ``dict[str, CampaignStats]``, lists and nested models: cattrs' defaults,
      through the hooks above.

    Creates omit the fields that were not given: that is decided by the
    request builders (they pass only given fields), not by this converter.
    """
    conv = cattrs.Converter(detailed_validation=False)
    # Strict primitives: cattrs would call int("12"), bool("false") or str({...}) and hand back a
    # wrong value; a response of the wrong type must be an error instead.
    conv.register_structure_hook(int, _structure_int)
    conv.register_structure_hook(float, _structure_float)
    conv.register_structure_hook(bool, _structure_bool)
    conv.register_structure_hook(str, _structure_str)
    conv.register_structure_hook_func(lambda t: t is list or getattr(t, "__origin__", None) is list, _list_hook(conv))
    conv.register_structure_hook(dt.date, _structure_date)
    conv.register_unstructure_hook(dt.date, _unstructure_date)
    for cls in MODEL_CLASSES:
        conv.register_structure_hook(cls, _structure_hook_keeping_extra(conv, cls))
        conv.register_unstructure_hook(cls, _unstructure_hook_merging_extra(conv, cls))
    return conv


converter = make_converter()
"""The converter every layer of kayse_async uses."""


_hooks: dict[Any, Callable[[Any, Any], Any]] = {}


def structure_hook(cls: type[T]) -> Callable[[Any, Any], T]:
    """The shared converter's structure hook for ``cls``, looked up once: call it as ``hook(data, cls)``."""
    hook = _hooks.get(cls)
    if hook is None:
        hook = _hooks[cls] = converter.get_structure_hook(cls)
    return hook


def structure(data: Any, cls: type[T]) -> T:
    """Structure ``data`` into ``cls`` with the shared converter."""
    result: T = structure_hook(cls)(data, cls)
    return result


def unstructure(value: Any) -> Any:
    """Unstructure ``value`` into JSON-ready data with the shared converter."""
    return converter.unstructure(value)
