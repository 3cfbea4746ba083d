"""The one cattrs converter of kayse_async: JSON data to models and back, leniently."""

from __future__ import annotations

import datetime as dt
import logging
import re
import types
import typing
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import attrs
import cattrs
from cattrs.fns import identity
from cattrs.gen import make_dict_structure_fn, make_dict_unstructure_fn, override

T = TypeVar("T")

EXTRA = "extra"
"""The attribute in which every model keeps the fields it does not know (and values it could not read)."""

logger = logging.getLogger("kayse_async")

_PLAIN = (str, int, bool, float, type(None))
_warned: set[tuple[type[Any], str]] = set()


def _is_union(tp: Any) -> bool:
    return typing.get_origin(tp) in (typing.Union, types.UnionType)


def _is_list(tp: Any) -> bool:
    return typing.get_origin(tp) is list


def _is_dict(tp: Any) -> bool:
    return typing.get_origin(tp) is dict


def _is_json_object(tp: Any) -> bool:
    return bool(tp == dict[str, Any])


def _is_plain(tp: Any) -> bool:
    """A JSON scalar type, or a union of them: ``int | str | None``."""
    return all(arg in _PLAIN for arg in (typing.get_args(tp) if _is_union(tp) else (tp,)))


def _is_model(tp: Any) -> bool:
    return isinstance(tp, type) and attrs.has(tp) and EXTRA in attrs.fields_dict(tp)


def _warn_once(cls: type[Any], name: str, value: Any, tp: Any, where: str) -> None:
    """One WARNING per model field per process, naming the value's type only (a value may be personal data)."""
    if (cls, name) not in _warned:
        _warned.add((cls, name))
        logger.warning(
            "%s.%s: the server sent %s, which does not fit %s; kept as sent in %s",
            cls.__name__,
            name,
            "null (or nothing)" if value is None else f"a value of type {type(value).__name__}",
            tp.__name__ if isinstance(tp, type) else re.sub(r"[\w.]+\.(\w+)", r"\1", str(tp)),
            where,
        )


def _structure_date(value: Any, _: Any) -> dt.date:
    # The API sends "YYYY-MM-DD"; a timestamp is cut to its date part.
    if type(value) is not str:
        raise TypeError(f"expected a YYYY-MM-DD date, got {type(value).__name__}")
    return dt.date.fromisoformat(value[:10] if len(value) > 10 and value[10] in "T " else value)


def _json_types(tp: Any, conv: cattrs.BaseConverter) -> Callable[[Any, Any], Any]:
    """Structure a union (``int | str | None``, ``Agent | None``) or a scalar: the value's JSON type picks the member.

    Scalars pass as they are (an integer where a float is expected too), others through their own
    hooks; a value of any other type is an error, never coerced.
    """
    plain: set[type[Any]] = set()
    hooks: dict[type[Any], tuple[Callable[[Any, Any], Any], Any]] = {}
    for arg in typing.get_args(tp) if _is_union(tp) else (tp,):
        if arg in _PLAIN:
            plain.update((arg, int) if arg is float else (arg,))
        else:
            json_type = str if arg is dt.date else dict if _is_model(arg) else typing.get_origin(arg)
            hooks[json_type] = (conv.get_structure_hook(arg), arg)

    def structure(value: Any, _: Any) -> Any:
        if type(value) in plain:
            return value
        try:
            hook, arg = hooks[type(value)]
        except KeyError:
            raise TypeError(f"expected {tp}, got {type(value).__name__}") from None
        return hook(value, arg)

    return structure


def _list(tp: Any, conv: cattrs.BaseConverter) -> Callable[[Any, Any], list[Any]]:
    (item,) = typing.get_args(tp) or (Any,)
    hook = conv.get_structure_hook(item)

    def structure(value: Any, _: Any) -> list[Any]:
        if type(value) is not list:
            raise TypeError(f"expected an array, got {type(value).__name__}")
        return [hook(x, item) for x in value]

    return structure


def _dict(tp: Any, conv: cattrs.BaseConverter) -> Callable[[Any, Any], dict[str, Any]]:
    _, item = typing.get_args(tp) or (str, Any)
    hook = None if item is Any else conv.get_structure_hook(item)

    def structure(value: Any, _: Any) -> dict[str, Any]:
        if not isinstance(value, Mapping):
            raise TypeError(f"expected a JSON object, got {type(value).__name__}")
        return dict(value) if hook is None else {k: hook(v, item) for k, v in value.items()}

    return structure


def _structure_model(cls: Any, conv: cattrs.BaseConverter) -> Callable[[Any, Any], Any]:
    """Structure a model from a mapping with cattrs' generated function; never raise over a field.

    Unknown keys go into ``extra``. A value its field does not allow is kept as sent in ``extra``
    under the field's name, the field keeping its default (a required field keeps the value itself);
    one WARNING per model field per process names it. Only a value that is no mapping raises ``TypeError``.
    """
    attrs.resolve_types(cls)
    fields = [a for a in attrs.fields(cls) if a.name != EXTRA]
    known = frozenset(a.name for a in fields)
    required = [a for a in fields if a.default is attrs.NOTHING]
    checks = {a.name: (conv.get_structure_hook(a.type), a.type) for a in fields if a.default is not attrs.NOTHING}

    def kept_in_field(a: attrs.Attribute[Any]) -> Callable[[Any, Any], Any]:
        hook = conv.get_structure_hook(a.type)

        def structure(value: Any, tp: Any) -> Any:
            try:
                return hook(value, tp)
            except Exception:
                _warn_once(cls, a.name, value, tp, "the field itself")
                return value

        return structure

    overrides: dict[str, Any] = {a.name: override(struct_hook=kept_in_field(a)) for a in required}
    generated = make_dict_structure_fn(cls, conv, **overrides)

    def fits(key: str, item: Any) -> bool:
        hook, tp = checks[key]
        try:
            hook(item, tp)
        except Exception:
            _warn_once(cls, key, item, tp, f"extra[{key!r}]")
            return False
        return True

    def salvage(value: Mapping[str, Any]) -> Any:
        # A value was refused: the fields are sorted one by one, and the refused ones go to extra as sent.
        data: dict[str, Any] = {a.name: None for a in required}  # missing: None, noted by the field's hook
        kept: dict[str, Any] = {}
        for key, item in value.items():
            if key in known and (key not in checks or fits(key, item)):
                data[key] = item
            else:
                kept[key] = item
        data[EXTRA] = kept
        return generated(data, cls)

    def structure(value: Any, _: Any) -> Any:
        if type(value) is not dict and not isinstance(value, Mapping):
            raise TypeError(f"expected a JSON object for {cls.__name__}, got {type(value).__name__}")
        data = value
        if not value.keys() <= known:
            data = {key: item for key, item in value.items() if key in known}
            data[EXTRA] = {key: item for key, item in value.items() if key not in known}
        try:
            return generated(data, cls)
        except Exception:
            return salvage(value)

    return structure


def _default(a: attrs.Attribute[Any]) -> Any:
    """The value a field takes when it is not given (NOTHING when that depends on the instance)."""
    default: Any = a.default
    if isinstance(default, attrs.Factory):  # type: ignore[arg-type]
        return attrs.NOTHING if default.takes_self else default.factory()
    return default


def _unstructure_model(cls: type[Any], conv: cattrs.BaseConverter) -> Callable[[Any], dict[str, Any]]:
    """Unstructure a model with cattrs' generated function (every field, None as null), ``extra`` merged back.

    A known field wins over an ``extra`` entry of its name, unless it holds its default: then the
    value kept there (one the converter could not read) goes back, so that an update never wipes it.
    """
    attrs.resolve_types(cls)
    generated = make_dict_unstructure_fn(cls, conv, extra=override(omit=True))
    defaults = {a.name: _default(a) for a in attrs.fields(cls)}

    def unstructure(value: Any) -> dict[str, Any]:
        data = generated(value)
        extra = value.extra
        if extra:
            data.update({k: v for k, v in extra.items() if k not in data or data[k] == defaults[k]})
        return data

    return unstructure


def make_converter() -> cattrs.Converter:
    """Build the converter between models and JSON data.

    Models go through cattrs' generated functions, wrapped as ``_structure_model`` and
    ``_unstructure_model`` say; scalars and unions of JSON types are never coerced (``"12"`` is
    not 12); ``list[X]`` and ``dict[str, X]`` take their items through ``X``'s hook (a
    ``dict[str, Any]`` is copied as it is); dates are ``"YYYY-MM-DD"`` both ways.
    """
    conv = cattrs.Converter(detailed_validation=False)
    for scalar in (str, int, bool, float):
        conv.register_structure_hook(scalar, _json_types(scalar, conv))
    conv.register_structure_hook_factory(_is_union, _json_types)
    conv.register_structure_hook_factory(_is_list, _list)
    conv.register_structure_hook_factory(_is_dict, _dict)
    conv.register_structure_hook(dt.date, _structure_date)
    conv.register_structure_hook_factory(_is_model, _structure_model)
    conv.register_unstructure_hook_func(_is_plain, identity)
    conv.register_unstructure_hook(dt.date, lambda value: value.isoformat())
    conv.register_unstructure_hook_func(_is_json_object, dict)
    conv.register_unstructure_hook_factory(_is_model, _unstructure_model)
    return conv


converter = make_converter()
"""The converter every layer of kayse_async uses."""


def structure(data: Any, cls: type[T]) -> T:
    """Structure ``data`` into ``cls`` with the shared converter."""
    return converter.structure(data, cls)


def unstructure(value: Any) -> Any:
    """Unstructure ``value`` into JSON-ready data with the shared converter."""
    return converter.unstructure(value)
