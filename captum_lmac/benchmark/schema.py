"""Typed, validated configuration: dataclasses read from JSON-able dicts with clear errors.

:func:`parse` turns a mapping into a dataclass instance, checking every key against the fields
(an unknown key is an :class:`~captum_lmac.errors.InputError` naming the key and the allowed ones)
and every value against the field's type annotation (``int``, ``float``, ``str``, ``bool``,
``Optional``, ``Union``, ``List``, ``Tuple``, ``Dict[str, ...]``, ``Any`` and nested dataclasses).
Defaults come from the dataclasses themselves — the one place they live. :func:`to_dict` is the
inverse (what ``results.json`` and ``benchmarks/*.json`` hold).
"""

from __future__ import annotations

import dataclasses
import difflib
import typing
from typing import Any, Dict, List, Mapping, Optional, Sequence, Type, TypeVar, Union

from ..errors import InputError

T = TypeVar("T")


@dataclasses.dataclass
class Section:
    """Base of a method's configuration section (the ``"lmac"``, ``"l2i"`` ... entries of a suite)."""


def _type_name(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if tp is type(None):
        return "null"
    if origin is Union:
        return " or ".join(_type_name(a) for a in typing.get_args(tp))
    if origin in (list, List, Sequence, tuple):
        args = typing.get_args(tp)
        return f"list of {_type_name(args[0])}" if args else "list"
    if origin in (dict, Dict, Mapping):
        args = typing.get_args(tp)
        return f"object of {_type_name(args[1])}" if args else "object"
    if dataclasses.is_dataclass(tp):
        return "object"
    if tp is Any:
        return "any value"
    return {int: "integer", float: "number", str: "string", bool: "true/false"}.get(tp, getattr(tp, "__name__", str(tp)))


def suggest(key: str, allowed: Sequence[str]) -> str:
    """`` (did you mean 'x'?)`` for a near miss among ``allowed``, else ``""``."""
    close = difflib.get_close_matches(str(key), [str(a) for a in allowed], n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _check(value: Any, tp: Any, where: str) -> Any:
    """``value`` checked against annotation ``tp`` (and nested dataclasses parsed)."""
    if tp is Any:
        return value
    origin = typing.get_origin(tp)
    if origin is Union:
        errors = []
        for arg in typing.get_args(tp):
            try:
                return _check(value, arg, where)
            except InputError as exc:
                errors.append(str(exc))
        raise InputError(f"{where} must be {_type_name(tp)}, got {value!r}")
    if tp is type(None):
        if value is not None:
            raise InputError(f"{where} must be null, got {value!r}")
        return None
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, Mapping):
            raise InputError(f"{where} must be an object with keys {[f.name for f in dataclasses.fields(tp)]}, "
                             f"got {value!r}")
        return parse(tp, value, where)
    if origin in (list, List, Sequence, tuple):
        if not isinstance(value, (list, tuple)):
            raise InputError(f"{where} must be {_type_name(tp)}, got {value!r}")
        args = typing.get_args(tp)
        inner = args[0] if args else Any
        return [_check(v, inner, f"{where}[{i}]") for i, v in enumerate(value)]
    if origin in (dict, Dict, Mapping):
        if not isinstance(value, Mapping):
            raise InputError(f"{where} must be {_type_name(tp)}, got {value!r}")
        args = typing.get_args(tp)
        inner = args[1] if args else Any
        return {str(k): _check(v, inner, f"{where}.{k}") for k, v in value.items()}
    if tp is bool:
        if not isinstance(value, bool):
            raise InputError(f"{where} must be true or false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise InputError(f"{where} must be an integer, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise InputError(f"{where} must be a number, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise InputError(f"{where} must be a string, got {value!r}")
        return value
    return value


def parse(cls: Type[T], data: Mapping[str, Any], where: str = "config", extra: Optional[Dict[str, type]] = None) -> T:
    """Build dataclass ``cls`` from ``data``, validating keys and types.

    Args:
        cls: A dataclass type.
        data: The mapping (missing keys take the field defaults).
        where: The path of ``data`` in messages (``"config.lmac"``).
        extra: Further allowed keys and their dataclass types, returned in the field ``sections``
            of ``cls`` (used for the method sections of a suite).

    Raises:
        InputError: for an unknown key (naming the allowed ones) or a value of the wrong type.
    """
    if not isinstance(data, Mapping):
        raise InputError(f"{where} must be an object, got {data!r}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    extra = dict(extra or {})
    kwargs: Dict[str, Any] = {}
    sections: Dict[str, Any] = {}
    for key, value in data.items():
        if key in fields and key != "sections":
            kwargs[key] = _check(value, hints[key], f"{where}.{key}")
        elif key in extra:
            sections[key] = _check(value, extra[key], f"{where}.{key}")
        else:
            allowed = sorted(k for k in fields if k != "sections") + sorted(extra)
            raise InputError(f"unknown key {where}.{key}{suggest(key, allowed)}; allowed keys: {', '.join(allowed)}")
    if extra:
        for key, tp in extra.items():
            sections.setdefault(key, tp())
        kwargs["sections"] = sections
    try:
        obj = cls(**kwargs)
    except TypeError as exc:
        raise InputError(f"{where}: {exc}") from None
    validate = getattr(obj, "validate", None)
    if callable(validate):
        validate(where)
    return obj


def to_dict(obj: Any) -> Any:
    """A dataclass (with nested ones, lists and dicts) as plain JSON-able data; sections are inlined."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        out: Dict[str, Any] = {}
        for f in dataclasses.fields(obj):
            value = getattr(obj, f.name)
            if f.name == "sections" and isinstance(value, dict):
                out.update({k: to_dict(v) for k, v in value.items()})
            else:
                out[f.name] = to_dict(value)
        return out
    if isinstance(obj, dict):
        return {str(k): to_dict(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_dict(v) for v in obj]
    return obj


__all__ = ["Section", "parse", "to_dict", "suggest"]
