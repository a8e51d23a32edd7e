"""Canonical bytes of documents and of the ledger's leaves.

Bodies are canonicalised with RFC 8785 (JCS). A body commits as
``digest = SHA-256(salt || JCS(body))`` with a fresh 32-byte salt per version.
Leaf data is the JCS of a small object per leaf kind (``document``, ``access``,
``grant``, ``type``), built here and only here, for the writers and the audit alike; it
holds identifiers, digests and times, never personal data, because leaves are served on
the public log endpoints.
"""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
from collections.abc import Sequence
from datetime import date, datetime
from typing import Any

import orjson
import rfc8785

from hub.documents.errors import BadDocument, child_path, index_path

__all__ = [
    "DIGEST_BYTES",
    "GRANT_ACTIONS",
    "LEAF_VERSION",
    "MAX_DEPTH",
    "MAX_NAME_CHARS",
    "SALT_BYTES",
    "access_leaf_data",
    "body_digest",
    "canonical_json",
    "document_leaf_data",
    "grant_leaf_data",
    "is_date",
    "is_timestamp",
    "new_salts",
    "type_leaf_data",
]

LEAF_VERSION = 1
SALT_BYTES = 32
DIGEST_BYTES = 32
# Deeper nesting than this is no real document, and bounds the recursion below.
MAX_DEPTH = 64
# Identifiers, purposes and other names carried in leaf data.
MAX_NAME_CHARS = 200
# A view name as a grant stores it (any view of the grant's type; see hub.documents.types).
_VIEW_NAME = re.compile(r"[a-z][a-z0-9_]{0,15}")
GRANT_ACTIONS = ("create", "revoke")

# JSON numbers are IEEE doubles; JCS (RFC 8785 3.2.2.3) only promises integers in this range.
_INT_LIMIT = 2**53 - 1
_TIMESTAMP = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,6})?(Z|[+-][0-9]{2}:[0-9]{2})"
)
_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def canonical_json(value: object, *, path: str = "body") -> bytes:
    """RFC 8785 bytes of ``value``; BadDocument names the first value JSON cannot carry.

    Floats are refused: money is a decimal string, and a float's text is not what
    the sender wrote. ``path`` names the root in error messages.
    """
    try:
        keys_sort_alike = _check_json(value, 0)
    except _Fault as fault:
        where = path
        for step in reversed(fault.trail):
            where = index_path(where, step) if isinstance(step, int) else child_path(where, step)
        raise BadDocument(where, fault.problem) from None
    if keys_sort_alike:
        return canonical_json_of_checked(value)
    return rfc8785.dumps(value)  # type: ignore[arg-type]


def canonical_json_of_checked(value: object) -> bytes:
    """RFC 8785 bytes of a value already held to what JCS carries and sorts alike: strings
    without lone surrogates, safe integers, booleans, nulls, lists, and objects whose keys
    have no character >= U+D800 — what ``canonical_json`` admits, or a validated invoice.

    orjson writes the same bytes as RFC 8785 for such values: its escaping matches
    ECMAScript's JSON.stringify, and its key order (UTF-8 bytes) equals UTF-16 order for
    those keys. ~100x faster than the pure-Python rfc8785 encoder; tests compare the two.
    """
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)


class _Fault(Exception):
    # Paths are only rendered on failure: the trail grows while the stack unwinds.
    def __init__(self, problem: str) -> None:
        self.problem = problem
        self.trail: list[str | int] = []


def _check_json(value: object, depth: int) -> bool:
    """Refuse what JCS cannot carry; True when every key sorts alike by code point and UTF-16.

    One walk does both because this runs on every submitted body.
    """
    if type(value) is str:
        _check_unicode(value)
        return True
    if type(value) is dict:
        if depth >= MAX_DEPTH:
            raise _Fault(f"nested deeper than {MAX_DEPTH} levels")
        alike = True
        for key, item in value.items():
            if type(key) is not str:
                raise _Fault("object keys must be strings")
            try:
                if not key.isascii():
                    _check_unicode(key)
                    alike = alike and max(key) < "\ud800"
                alike = _check_json(item, depth + 1) and alike
            except _Fault as fault:
                fault.trail.append(key)
                raise
        return alike
    if type(value) is list or type(value) is tuple:
        if depth >= MAX_DEPTH:
            raise _Fault(f"nested deeper than {MAX_DEPTH} levels")
        alike = True
        for i, item in enumerate(value):
            try:
                alike = _check_json(item, depth + 1) and alike
            except _Fault as fault:
                fault.trail.append(i)
                raise
        return alike
    if type(value) is int:
        if not -_INT_LIMIT <= value <= _INT_LIMIT:
            raise _Fault("integer outside the JSON safe range ±(2**53-1)")
        return True
    if type(value) is bool or value is None:
        return True
    if isinstance(value, float):
        raise _Fault("numbers must be decimal strings, not floats")
    # Subclasses (enums, OrderedDict, ...) are refused too: their JSON form is ambiguous.
    raise _Fault(f"{type(value).__name__} is not a JSON value")


def _check_unicode(text: str) -> None:
    # Lone surrogates have no UTF-8 form, so JCS cannot carry them.
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            raise _Fault("text is not valid Unicode (lone surrogate)") from None


def new_salts(count: int) -> list[bytes]:
    """``count`` fresh random salts, one per document version, from one read of the
    system's CSPRNG (a batch of 100 would otherwise make 100 getrandom calls)."""
    pool = secrets.token_bytes(SALT_BYTES * count)
    return [pool[i : i + SALT_BYTES] for i in range(0, len(pool), SALT_BYTES)]


def body_digest(salt: bytes, canonical_body: bytes) -> bytes:
    """``SHA-256(salt || canonical_body)``; ``canonical_body`` is already JCS."""
    if len(salt) != SALT_BYTES:
        raise ValueError(f"salt must be {SALT_BYTES} bytes, got {len(salt)}")
    return hashlib.sha256(salt + canonical_body).digest()


def is_timestamp(value: object) -> bool:
    """An ISO-8601 date-time with seconds and an explicit offset (``Z`` or ``±hh:mm``)."""
    if not isinstance(value, str) or not _TIMESTAMP.fullmatch(value):
        return False
    try:
        datetime.fromisoformat(value)
    except ValueError:
        return False
    return True


def is_date(value: object) -> bool:
    """A calendar date ``YYYY-MM-DD``."""
    if not isinstance(value, str) or not _DATE.fullmatch(value):
        return False
    try:
        date.fromisoformat(value)
    except ValueError:
        return False
    return True


def document_leaf_data(
    *, issuer: str, type: str, id: str, version: int, digest: bytes, issued_at: str
) -> bytes:
    """Leaf data of one document version."""
    fields = {
        "v": LEAF_VERSION,
        "kind": "document",
        "issuer": _name(issuer, "issuer"),
        "type": _name(type, "type"),
        "id": _name(id, "id"),
        "version": _version(version, "version"),
        "digest": _digest(digest, "digest"),
        "issuedAt": _timestamp(issued_at, "issuedAt"),
    }
    # Checked above to the field; ASCII names leave JCS nothing more to refuse or reorder.
    # This runs for every submitted document, so the general walk is kept for the rest.
    if issuer.isascii() and type.isascii() and id.isascii():
        return canonical_json_of_checked(fields)
    return _leaf(fields)


def access_leaf_data(
    *,
    agency: str,
    issuer: str,
    type: str,
    id: str,
    version: int,
    purpose: str,
    at: str,
) -> bytes:
    """Leaf data recording that ``agency`` read the body of one document version."""
    return _leaf(
        {
            "v": LEAF_VERSION,
            "kind": "access",
            "agency": _name(agency, "agency"),
            "document": {
                "issuer": _name(issuer, "document.issuer"),
                "type": _name(type, "document.type"),
                "id": _name(id, "document.id"),
                "version": _version(version, "document.version"),
            },
            "purpose": _name(purpose, "purpose"),
            "at": _timestamp(at, "at"),
        }
    )


def grant_leaf_data(
    *,
    id: str,
    agency: str,
    type: str,
    issuers: Sequence[str],
    view: str,
    purpose: str,
    valid_from: str,
    valid_until: str | None,
    action: str,
    at: str,
    claims: bool = False,
) -> bytes:
    """Leaf data recording that a grant was created or revoked.

    ``issuers`` is kept in the order given (``["*"]`` for every issuer);
    ``valid_from``/``valid_until`` are dates or timestamps, ``valid_until`` None = open.
    A grant that allows claims says ``"claims": true``; one that does not leaves the key
    out, so the leaves of grants from before claims existed still verify.
    """
    if isinstance(issuers, str) or not isinstance(issuers, Sequence) or not issuers:
        raise BadDocument("issuers", "must be a non-empty list of institution ids or ['*']")
    if not isinstance(view, str) or not _VIEW_NAME.fullmatch(view):
        raise BadDocument("view", "must be a view name such as full, financial or summary")
    if action not in GRANT_ACTIONS:
        raise BadDocument("action", f"must be one of {', '.join(GRANT_ACTIONS)}")
    fields: dict[str, Any] = {
        "v": LEAF_VERSION,
        "kind": "grant",
        "id": _name(id, "id"),
        "agency": _name(agency, "agency"),
        "type": _name(type, "type"),
        "issuers": [_name(issuer, f"issuers[{i}]") for i, issuer in enumerate(issuers)],
        "view": view,
        "purpose": _name(purpose, "purpose"),
        "validFrom": _moment(valid_from, "validFrom"),
        "validUntil": None if valid_until is None else _moment(valid_until, "validUntil"),
        "action": action,
        "at": _timestamp(at, "at"),
    }
    if claims:
        fields["claims"] = True
    return _leaf(fields)


def type_leaf_data(*, name: str, version: int, digest: bytes) -> bytes:
    """Leaf data recording that version ``version`` of type ``name`` was registered;
    ``digest`` is SHA-256 of the definition's JCS bytes (GET /types/<name>/<version>)."""
    return _leaf(
        {
            "v": LEAF_VERSION,
            "kind": "type",
            "name": _name(name, "name"),
            "version": _version(version, "version"),
            "digest": _digest(digest, "digest"),
        }
    )


def _leaf(fields: dict[str, Any]) -> bytes:
    return canonical_json(fields, path="leaf")


def _name(value: object, field: str) -> str:
    if not isinstance(value, str) or not value:
        raise BadDocument(field, "must be a non-empty string")
    if len(value) > MAX_NAME_CHARS:
        raise BadDocument(field, f"longer than {MAX_NAME_CHARS} characters")
    if not value.isprintable() and _CONTROL.search(value):
        raise BadDocument(field, "must not contain control characters")
    return value


def _version(value: object, field: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= _INT_LIMIT:
        raise BadDocument(field, "must be a positive integer")
    return value


def _digest(value: object, field: str) -> str:
    if not isinstance(value, bytes) or len(value) != DIGEST_BYTES:
        raise BadDocument(field, f"must be {DIGEST_BYTES} bytes (SHA-256)")
    return base64.b64encode(value).decode("ascii")


def _timestamp(value: object, field: str) -> str:
    if not is_timestamp(value):
        raise BadDocument(
            field, "must be an ISO-8601 date-time with offset, e.g. 2026-11-20T10:15:00+08:00"
        )
    assert isinstance(value, str)
    return value


def _moment(value: object, field: str) -> str:
    if not (is_date(value) or is_timestamp(value)):
        raise BadDocument(field, "must be a date YYYY-MM-DD or an ISO-8601 date-time with offset")
    assert isinstance(value, str)
    return value
