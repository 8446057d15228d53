"""graphite-web's description of each function we implement, and its argument checks.

``graphite_functions.json`` holds, per function, what graphite-web 1.1.8's
``/functions`` says of it (name, signature, description, group, parameters
with their types, defaults and options); docs/make_graphite_functions.py
writes it from the installed graphite-web. The same parameters check every
call, with graphite-web's rules and messages (``validateParams``), except
that a failed check is always an error here: graphite-web, with its default
``ENFORCE_INPUT_VALIDATION = False``, logs it and calls the function anyway.
"""

from __future__ import annotations

import functools
import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Final

import attrs

from ._grammar import TargetError
from ._series import TimeSeries
from ._times import TimeFormatError, parse_interval

__all__ = ["Param", "bind_arguments", "catalog", "function_index"]

_CATALOG_FILE: Final = Path(__file__).with_name("graphite_functions.json")


@attrs.frozen
class Param:
    """One parameter, as graphite-web's ``Param``."""

    name: str
    type: str
    required: bool = False
    default: Any = None
    multiple: bool = False
    options: tuple[Any, ...] = ()


@attrs.frozen
class FunctionInfo:
    """A function's entry of the catalog."""

    name: str
    document: Mapping[str, Any]
    params: tuple[Param, ...]
    aggregator: bool


@functools.cache
def catalog() -> Mapping[str, FunctionInfo]:
    """Every implemented function's graphite-web description, by name."""
    raw = json.loads(_CATALOG_FILE.read_text(encoding="utf-8"))
    result = {}
    for name, entry in raw.items():
        params = tuple(
            Param(
                name=p["name"],
                type=p["type"],
                required=p.get("required", False),
                default=p.get("default"),
                multiple=p.get("multiple", False),
                options=tuple(p.get("options", ())),
            )
            for p in entry["params"]
        )
        document = {key: entry[key] for key in ("name", "function", "description", "module")}
        document |= {"group": entry["group"], "params": entry["params"]}
        result[name] = FunctionInfo(name, document, params, entry["aggregator"])
    return result


def function_index() -> dict[str, dict[str, Any]]:
    """graphite's ``/functions`` document: ``{name: {name, function, description,
    module, group, params}}`` (a default of ``inf`` is the float infinity)."""
    return {name: dict(info.document) for name, info in sorted(catalog().items())}


def bind_arguments(
    function: str, params: Sequence[Param], args: Sequence[Any], kwargs: Mapping[str, Any]
) -> list[Any]:
    """Check a call's arguments and put them in parameter order: one value per
    parameter (its default, or None, where not given), then the extra values of a
    last ``multiple`` parameter. The messages are graphite-web's."""
    if len(args) + len(kwargs) > len(params):
        if not params or not params[-1].multiple:
            raise TargetError(f'Too many parameters specified for function "{function}"')
        by_position, by_name = list(params), []
    else:
        by_position, by_name = list(params[: len(args)]), list(params[len(args) :])
    bound: list[Any] = []
    for i, value in enumerate(args):
        param = by_position[min(i, len(by_position) - 1)]
        bound.append(_checked(param, value, function))
    named = {}
    for param in by_name:
        value = kwargs.get(param.name)
        if value is None:
            if param.required:
                raise TargetError(
                    f'Missing required parameter "{param.name}" for function "{function}"'
                )
            continue
        named[param.name] = _checked(param, value, function)
    unexpected = [key for key in kwargs if key not in named]
    if unexpected:
        raise TargetError(f"Unexpected key word arguments: {', '.join(unexpected)}")
    for param in by_name:
        if param.multiple:
            if param.name in named:
                bound.append(named[param.name])
        else:
            bound.append(named.get(param.name, param.default))
    # Fill the parameters that were given neither way with their defaults.
    while len(bound) < len(params) and not params[len(bound)].multiple:
        bound.append(params[len(bound)].default)
    return bound


def _checked(param: Param, value: Any, function: str) -> Any:
    if value is None:
        if param.default is not None:
            return param.default
        if not param.required:
            return None
    if param.options and value not in param.options:
        raise TargetError(
            f'Invalid option specified for function "{function}" parameter "{param.name}":'
            f" {value!r}"
        )
    try:
        return _VALIDATORS.get(param.type, _any)(value)
    except (TypeError, ValueError, OverflowError):
        raise TargetError(
            f'Invalid "{param.type}" value specified for function "{function}" parameter'
            f' "{param.name}": {value!r}'
        ) from None


def _any(value: Any) -> Any:
    return value


def _boolean(value: Any) -> bool:
    if isinstance(value, str):
        if value.lower() in ("true", "false"):
            return value.lower() == "true"
        raise ValueError(value)
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float) and value in (0, 1):
        return value == 1
    raise ValueError(value)


def _float(value: Any) -> float:
    if isinstance(value, list):
        raise TypeError("a series list is not a number")
    return float(value)


def _integer(value: Any) -> int:
    # A float is refused rather than silently cut, as graphite-web does.
    if isinstance(value, float | list):
        raise ValueError(value)
    return int(value)


def _int_or_inf(value: Any) -> int | float:
    try:
        return _integer(value)
    except (TypeError, ValueError):
        pass
    if not isinstance(value, list | bool) and float(value) == math.inf:
        return math.inf
    raise ValueError(value)


def _interval(value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError(value)
    try:
        parse_interval(value)
    except TimeFormatError as error:
        raise ValueError(str(error)) from None
    return value


def _series_list(value: Any) -> list[TimeSeries]:
    if not isinstance(value, list) or not all(isinstance(s, TimeSeries) for s in value):
        raise TypeError(value)
    return value


def _string(value: Any) -> str:
    # graphite-web checks nothing here; a number where a name belongs is refused.
    if not isinstance(value, str):
        raise TypeError(value)
    return value


def _node_or_tag(value: Any) -> int | float | str:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise TypeError(value)
    return value


def _int_or_interval(value: Any) -> int | float | str:
    if isinstance(value, str):
        return _interval(value)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise TypeError(value)
    return value


def _scalar(value: Any) -> Any:
    if isinstance(value, list):
        raise TypeError(value)
    return value


_VALIDATORS: Final = {
    "boolean": _boolean,
    "float": _float,
    "integer": _integer,
    "intOrInf": _int_or_inf,
    "interval": _interval,
    "intOrInterval": _int_or_interval,
    "node": _integer,
    "nodeOrTag": _node_or_tag,
    "seriesList": _series_list,
    "string": _string,
    "tag": _string,
    "aggFunc": _string,
    "aggOrSeriesFunc": _string,
    "any": _any,
    "date": _scalar,
}
