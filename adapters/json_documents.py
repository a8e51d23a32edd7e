"""Documents of any registered type from JSON (``hub adapter json``): one body per file
or NDJSON lines, their id and issue time taken from the body as the type's definition
says (DESIGN.md "Document types": ``id`` pointers joined by ``-``, ``issuedAt``).

The definition comes from the hub's public ``GET /types`` and
``GET /types/<name>/<version>`` (the newest version), or from a file (``--definition``).
A line ``{"body": {...}, "supersedes": N}`` (those keys only) is a new version of a
document: a correction or reversal of version N. The adapter checks only what it needs
to queue a document (a JSON object holding the
id and issue-time pointers); the hub validates the body against the type's schema.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import httpx

from adapters.errors import AdapterError
from adapters.hub_client import has_credentials

__all__ = ["JsonLine", "TypeDefinition", "fetch_definition", "read_json_documents"]

_MAX_POINTER_TEXT = 200
# The keys of an envelope line: a body and the version it supersedes.
_ENVELOPE = frozenset({"body", "supersedes"})


@dataclass(frozen=True, slots=True)
class TypeDefinition:
    """What the adapter needs of a type's definition: its id and issue-time pointers."""

    name: str
    version: int
    id: tuple[str, ...]
    issued_at: str

    @classmethod
    def from_json(cls, definition: object) -> TypeDefinition:
        """Raises AdapterError when the definition lacks ``name``, ``id`` or ``issuedAt``."""
        if not isinstance(definition, dict):
            raise AdapterError("a type definition must be a JSON object")
        name, version = definition.get("name"), definition.get("version", 1)
        pointers, issued_at = definition.get("id"), definition.get("issuedAt")
        if not isinstance(name, str) or not isinstance(version, int):
            raise AdapterError("a type definition needs a name and a version")
        if (
            not isinstance(pointers, list)
            or not pointers
            or not all(isinstance(p, str) and p.startswith("/") for p in pointers)
        ):
            raise AdapterError(f"type {name}: its definition has no id pointers")
        if not isinstance(issued_at, str) or not issued_at.startswith("/"):
            raise AdapterError(f"type {name}: its definition has no issuedAt pointer")
        return cls(name, version, tuple(pointers), issued_at)

    def document_id(self, body: dict[str, Any]) -> str:
        """The id: the values at the id pointers, joined by ``-``. Raises ValueError."""
        return "-".join(_text_at(body, pointer) for pointer in self.id)

    def issued(self, body: dict[str, Any]) -> str:
        return _text_at(body, self.issued_at)


@dataclass(frozen=True, slots=True)
class JsonLine:
    """One document read, or the problem of its line (``body`` None); ``supersedes`` the
    version a correction or reversal replaces (an envelope ``{"body", "supersedes"}``)."""

    line: int
    body: dict[str, Any] | None
    problem: str = ""
    supersedes: int | None = None


def read_json_documents(data: bytes) -> list[JsonLine]:
    """The documents of a file: one JSON object (line 1), or one per NDJSON line (blank
    lines skipped). A line that is not a JSON object is reported by its number."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return [JsonLine(1, None, "not UTF-8 text")]
    try:
        whole = json.loads(text)
    except ValueError:
        whole = None
    else:
        if isinstance(whole, dict):
            return [_document(1, whole)]
        if text.count("\n") < 1 or text.strip().startswith("["):
            return [JsonLine(1, None, "must be a JSON object (one document) or NDJSON")]
    found = []
    for number, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except ValueError:
            found.append(JsonLine(number, None, "not JSON"))
            continue
        if not isinstance(value, dict):
            found.append(JsonLine(number, None, "must be a JSON object"))
        else:
            found.append(_document(number, value))
    return found


def _document(line: int, value: dict[str, Any]) -> JsonLine:
    """A body, or an envelope ``{"body": {...}, "supersedes": N}`` for a new version."""
    if "body" not in value or not set(value) <= _ENVELOPE:
        return JsonLine(line, value)
    body, version = value["body"], value.get("supersedes")
    if not isinstance(body, dict):
        return JsonLine(line, None, "body: must be a JSON object")
    if version is not None and (
        isinstance(version, bool) or not isinstance(version, int) or version < 1
    ):
        return JsonLine(line, None, "supersedes: must be a version number, 1 or more")
    return JsonLine(line, body, supersedes=version)


async def fetch_definition(hub: str, name: str, version: int | None = None) -> TypeDefinition:
    """The definition of type ``name`` (its newest version unless ``version``) from the
    hub's public ``/types`` endpoints. Raises AdapterError."""
    if has_credentials(hub):
        raise AdapterError("--hub must not hold a user or password")
    base = hub.rstrip("/")
    async with httpx.AsyncClient(timeout=30.0) as client:
        try:
            if version is None:
                listed = await client.get(f"{base}/types")
                listed.raise_for_status()
                versions = [
                    int(row["version"])
                    for row in listed.json()
                    if isinstance(row, dict) and row.get("name") == name
                ]
                if not versions:
                    raise AdapterError(f"the hub has no document type {name}")
                version = max(versions)
            answer = await client.get(f"{base}/types/{name}/{version}")
            if answer.status_code == 404:
                raise AdapterError(f"the hub has no document type {name} version {version}")
            answer.raise_for_status()
            definition = answer.json()
        except (httpx.HTTPError, ValueError, KeyError, TypeError) as error:
            raise AdapterError(f"could not read type {name} from the hub: {error}") from None
    return TypeDefinition.from_json(definition)


def _text_at(body: dict[str, Any], pointer: str) -> str:
    """The string (or integer) at JSON Pointer ``pointer``. Raises ValueError naming it."""
    value: Any = body
    for token in pointer[1:].split("/"):
        token = token.replace("~1", "/").replace("~0", "~")
        if isinstance(value, dict) and token in value:
            value = value[token]
        elif isinstance(value, list) and token.isdigit() and int(token) < len(value):
            value = value[int(token)]
        else:
            raise ValueError(f"{pointer}: required field is missing")
    if isinstance(value, bool) or not isinstance(value, str | int) or value == "":
        raise ValueError(f"{pointer}: must be a non-empty string")
    text = str(value)
    if len(text) > _MAX_POINTER_TEXT:
        raise ValueError(f"{pointer}: longer than {_MAX_POINTER_TEXT} characters")
    return text
