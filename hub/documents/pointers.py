"""JSON Pointers (RFC 6901) into document bodies and into the JSON Schemas that describe them.

A document type names its fields by pointer (`/billCode`, `/totals/total`): the id, the
subject, the views. Here are reading a pointer's value, projecting a body onto a list of
pointers (a view), and following a pointer through a schema's `properties` and `items`.
"""

from collections.abc import Mapping, Sequence
from typing import Any

__all__ = [
    "MISSING",
    "child_pointer",
    "parse_pointer",
    "project",
    "resolve",
    "schema_at",
]


class _Missing:
    def __repr__(self) -> str:
        return "MISSING"


MISSING: Any = _Missing()


def parse_pointer(pointer: object) -> tuple[str, ...]:
    """The reference tokens of ``pointer``; ValueError if it is not a JSON Pointer to a field.

    The whole document (``""``) is not a field, so it is refused too.
    """
    if not isinstance(pointer, str) or not pointer.startswith("/") or len(pointer) > 200:
        raise ValueError(f"{pointer!r} is not a JSON Pointer such as /billCode")
    tokens = []
    for raw in pointer[1:].split("/"):
        if "~" in raw.replace("~0", "").replace("~1", ""):
            raise ValueError(f"{pointer!r}: '~' must be escaped as ~0 (RFC 6901)")
        tokens.append(raw.replace("~1", "/").replace("~0", "~"))
    if any(token == "" for token in tokens):
        raise ValueError(f"{pointer!r} has an empty step")
    return tuple(tokens)


def child_pointer(parent: str, token: str | int) -> str:
    return f"{parent}/{str(token).replace('~', '~0').replace('/', '~1')}"


def resolve(body: object, tokens: Sequence[str]) -> Any:
    """The value at ``tokens`` in ``body``, or MISSING."""
    value = body
    for token in tokens:
        if isinstance(value, Mapping):
            if token not in value:
                return MISSING
            value = value[token]
        elif isinstance(value, list) and token.isdigit():
            index = int(token)
            if index >= len(value):
                return MISSING
            value = value[index]
        else:
            return MISSING
    return value


def project(body: Mapping[str, Any], paths: Sequence[tuple[str, ...]]) -> dict[str, Any]:
    """A new object holding just the fields ``paths`` point at, nested as in ``body``.

    A pointer to an object shows all of it; a field missing from the body stays missing.
    Only object members are followed (a view names fields, not array positions).
    """
    out: dict[str, Any] = {}
    for tokens in paths:
        source: Any = body
        target = out
        for depth, token in enumerate(tokens):
            if not isinstance(source, Mapping) or token not in source:
                break
            source = source[token]
            if depth == len(tokens) - 1:
                target[token] = _copy(source)
                break
            existing = target.get(token)
            if not isinstance(existing, dict):
                existing = target[token] = {}
            target = existing
    return out


def _copy(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_copy(v) for v in value]
    return value


def schema_at(
    schema: object, tokens: Sequence[str], root: Mapping[str, Any] | None = None
) -> tuple[Mapping[str, Any] | None, bool]:
    """The subschema a pointer leads to through ``properties`` (and ``items`` for an array
    position), and whether every step is ``required`` by its parent.

    Local ``$ref``s (``#/$defs/...``) are followed. None when the schema has no such field.
    """
    root = root if root is not None else (schema if isinstance(schema, Mapping) else {})
    node = _deref(schema, root)
    required = True
    for token in tokens:
        if node is None:
            return None, False
        properties = node.get("properties")
        if isinstance(properties, Mapping) and token in properties:
            listed = node.get("required")
            required = required and isinstance(listed, list) and token in listed
            node = _deref(properties[token], root)
            continue
        items = node.get("items")
        if token.isdigit() and isinstance(items, Mapping):
            required = False
            node = _deref(items, root)
            continue
        return None, False
    return node, required


def _deref(node: object, root: Mapping[str, Any]) -> Mapping[str, Any] | None:
    seen = 0
    while isinstance(node, Mapping) and isinstance(node.get("$ref"), str) and seen < 16:
        ref = node["$ref"]
        if not ref.startswith("#/"):
            return None
        target: Any = root
        for token in ref[2:].split("/"):
            token = token.replace("~1", "/").replace("~0", "~")
            if not isinstance(target, Mapping) or token not in target:
                return None
            target = target[token]
        node = target
        seen += 1
    return node if isinstance(node, Mapping) else None
