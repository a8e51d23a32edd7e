"""FHIR JSON with exact decimals: ``load_fhir_json`` reads numbers as ``Decimal`` and
refuses NaN, Infinity and repeated keys; ``dump_fhir_json`` writes a Decimal as the
number it is."""

from __future__ import annotations

import json
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from adapters.errors import MappingError
from adapters.fhir.codes import _ECHOABLE, _MAX_EXPONENT
from adapters.fhir.structure import _clip


def load_fhir_json(data: bytes | str) -> Any:
    """Parse FHIR JSON with exact decimals; MappingError (empty path) if it is not JSON.

    Numbers with a fraction or exponent become ``Decimal``; NaN and Infinity, which
    JSON does not have, and repeated keys in an object are refused.
    """
    try:
        return json.loads(
            data,
            parse_float=Decimal,
            parse_constant=_refuse_constant,
            object_pairs_hook=_unique_keys,
        )
    except (ValueError, RecursionError) as exc:
        detail = str(exc) if isinstance(exc, ValueError) else "nested too deeply"
        raise MappingError("", f"not valid JSON: {_clip(detail)}", code="structure") from None


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            shown = key if _ECHOABLE.fullmatch(key) else "?"
            raise ValueError(f"the key {shown} appears twice in one object")
        result[key] = value
    return result


def dump_fhir_json(value: Any, *, indent: int | None = None) -> str:
    """FHIR JSON text of ``value``; a ``Decimal`` is written as the number it is.

    ``json.dumps`` cannot write a Decimal as a number without going through float,
    which would turn 25.00 into 25.0 (the scale is part of a FHIR decimal).
    """
    parts: list[str] = []
    _dump(value, parts, indent, 0)
    return "".join(parts)


def _dump(value: Any, out: list[str], indent: int | None, depth: int) -> None:
    if isinstance(value, dict):
        _dump_container("{", "}", list(value.items()), out, indent, depth, _dump_pair)
    elif isinstance(value, list | tuple):
        _dump_container("[", "]", list(value), out, indent, depth, _dump)
    elif isinstance(value, Decimal):
        if not value.is_finite():
            raise ValueError("NaN and Infinity are not JSON numbers")
        out.append(f"{value:f}" if abs(value.adjusted()) <= _MAX_EXPONENT else str(value))
    else:
        out.append(json.dumps(value, ensure_ascii=False, allow_nan=False))


def _dump_pair(pair: tuple[str, Any], out: list[str], indent: int | None, depth: int) -> None:
    key, value = pair
    out.append(json.dumps(key, ensure_ascii=False))
    out.append(": " if indent is not None else ":")
    _dump(value, out, indent, depth)


def _dump_container(
    opening: str,
    closing: str,
    members: list[Any],
    out: list[str],
    indent: int | None,
    depth: int,
    dump_member: Callable[[Any, list[str], int | None, int], None],
) -> None:
    out.append(opening)
    for index, member in enumerate(members):
        if index:
            out.append(",")
        if indent is not None:
            out.append("\n" + " " * (indent * (depth + 1)))
        dump_member(member, out, indent, depth + 1)
    if members and indent is not None:
        out.append("\n" + " " * (indent * depth))
    out.append(closing)
