"""Intake before the ledger lock: a submitted document checked under its type's newest
version, put in canonical form, its signature verified, then sealed (salt, digest, leaf).

Nothing here reads the ledger: identity decisions are hub.documents.service's, made
under the lock.
"""

import base64
import binascii
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

from nacl.exceptions import BadSignatureError
from nacl.signing import VerifyKey

from hub.documents.canonical import (
    body_digest,
    canonical_json,
    canonical_json_of_checked,
    document_leaf_data,
    is_timestamp,
)
from hub.documents.errors import BadDocument
from hub.documents.pointers import MISSING
from hub.documents.types import TYPE_NAME, DocumentType
from hub.errors import BadInput, BadSignature, Forbidden
from hub.ledger.tree import leaf_hash

__all__ = ["MAX_BODY_BYTES", "Candidate", "IssuerPolicy", "SubmittedDocument", "prepare", "seal"]

MAX_BODY_BYTES = 256 * 1024
_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}")


class SubmittedDocument(Protocol):
    """What `DocumentService.submit` reads of each document: `DocumentInput`, or the
    GraphQL input object as it comes, which is not copied into one per document."""

    @property
    def type(self) -> str: ...
    @property
    def id(self) -> str: ...
    @property
    def body(self) -> object: ...
    @property
    def issued_at(self) -> str | None: ...
    @property
    def supersedes(self) -> int | None: ...
    @property
    def signature(self) -> str | None: ...


@dataclass(frozen=True)
class IssuerPolicy:
    """What the hub knows about the submitting institution: its kind, its signatures,
    and the bill codes it holds (``assigned``: given by the operator, so only those)."""

    keys: tuple[VerifyKey, ...] = ()
    signatures_required: bool = False
    kind: str = "hospital"
    bill_codes: frozenset[str] = frozenset()
    assigned: bool = False
    newest_type: int | None = None  # the registry's mark when the policy was read


@dataclass
class Candidate:
    position: int
    type: str
    id: str
    version: int
    supersedes: int | None
    body: bytes  # JCS
    issued_at: str
    status: str
    subject: str | None
    type_version: int = 1
    # Unique across issuers: a printed-code type's id names one document.
    unique: bool = False
    # A bill code this issuer uses for the first time: bound to it under the ledger lock.
    bind_code: str | None = None
    # Set by `seal`, before the integrating transaction: none of it depends on the ledger.
    salt: bytes = b""
    digest: bytes = b""
    leaf: bytes = b""
    leaf_hash: bytes = b""


def seal(candidate: Candidate, issuer: str, salt: bytes) -> None:
    """Salt, digest and leaf of a version that may be appended.

    Done before the sequencer takes the batch, so the integrating transaction, which every
    caller waits for, holds no more than the choice of leaf indexes and the writes.
    """
    candidate.salt = salt
    candidate.digest = body_digest(salt, candidate.body)
    candidate.leaf = document_leaf_data(
        issuer=issuer,
        type=candidate.type,
        id=candidate.id,
        version=candidate.version,
        digest=candidate.digest,
        issued_at=candidate.issued_at,
    )
    candidate.leaf_hash = leaf_hash(candidate.leaf)


def _check_signature(canonical: bytes, signature: str | None, policy: IssuerPolicy) -> None:
    if signature is None:
        if policy.signatures_required:
            raise BadSignature("this institution must sign its documents: signature is missing")
        return
    try:
        raw = base64.b64decode(signature, validate=True)
    except (binascii.Error, ValueError):
        raise BadSignature("signature is not valid base64") from None
    if not policy.keys:
        raise BadSignature("signature given but the institution has no registered key")
    for key in policy.keys:
        try:
            key.verify(canonical, raw)
            return
        except (BadSignatureError, ValueError):
            continue
    raise BadSignature("signature does not verify with any registered key of the institution")


def _text_of(value: object) -> str | None:
    if isinstance(value, str):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return None


def _where(t: DocumentType, tokens: tuple[str, ...]) -> str:
    # The invoice keeps its dotted paths (body.issuedAt); other types name JSON Pointers.
    if t.rules is not None:
        return "body." + ".".join(tokens)
    return "/" + "/".join(tokens)


def _id_rule(t: DocumentType) -> str:
    return "-".join(f"<{'/'.join(tokens)}>" for tokens in t.id)


def prepare(
    doc: SubmittedDocument, policy: IssuerPolicy, types: Mapping[str, DocumentType]
) -> Candidate:
    """Validate one input under its type's newest version and put it in canonical form;
    raises a HubError naming the field."""
    if not isinstance(doc.type, str) or not TYPE_NAME.fullmatch(doc.type):
        raise BadInput("type: must be a lower-case name such as medical_invoice")
    if not isinstance(doc.id, str) or not _ID.fullmatch(doc.id):
        raise BadInput("id: must be 1-128 letters, digits or . _ : -")
    if doc.supersedes is not None and doc.supersedes < 1:
        raise BadInput("supersedes: must name a version (1 or more)")
    t = types.get(doc.type)
    if t is None:
        raise BadInput(f"type: no document type {doc.type} is registered (see documentTypes)")
    if policy.kind not in t.issuer_kinds:
        raise Forbidden(
            f"type: {doc.type} is issued by institutions of kind {', '.join(t.issuer_kinds)},"
            f" not {policy.kind}"
        )
    body = doc.body
    if not isinstance(body, dict):
        raise BadDocument("body", "must be a JSON object")
    t.check_body(body)
    parts = [_text_of(t.value(body, tokens)) for tokens in t.id]
    document_id = "-".join(p for p in parts if p is not None)
    if None in parts or doc.id != document_id:
        title = t.title.get("en", t.name).lower()
        raise BadInput(f"id: a {title}'s id must be {_id_rule(t)}")
    issued_at = t.value(body, t.issued_at)
    # A rule set checks its type's time itself (the invoice's issuedAt): not twice.
    if t.rules is None and not is_timestamp(issued_at):
        raise BadDocument(
            _where(t, t.issued_at),
            "must be an ISO-8601 date-time with offset, e.g. 2026-11-20T10:15:00+08:00",
        )
    if doc.issued_at is not None and doc.issued_at != issued_at:
        raise BadInput(f"issuedAt: differs from {_where(t, t.issued_at)}")
    status = t.value(body, t.status)
    if status is MISSING:
        status = "issued"
    elif status not in ("issued", "reversed"):
        raise BadDocument(_where(t, t.status or ()), "must be issued or reversed")
    if status == "reversed" and doc.supersedes is None:
        raise BadInput("supersedes: a reversal must name the version it reverses")
    subject = _text_of(t.value(body, t.subject))
    bind_code = None
    if t.rules is not None and t.rules.issuer_code is not None:
        code = body[t.rules.issuer_code]
        if code not in policy.bill_codes:
            if policy.assigned:
                raise BadInput(
                    f"body.{t.rules.issuer_code}: {code} is not one of the bill codes assigned"
                    " to this institution"
                )
            bind_code = code
    # A rule set admits only what JCS carries as is (strings, nulls, lists, objects with
    # ASCII keys): its canonical form needs no second walk.
    canonical = canonical_json_of_checked(body) if t.rules is not None else canonical_json(body)
    if len(canonical) > MAX_BODY_BYTES:
        raise BadInput(f"body: larger than {MAX_BODY_BYTES} bytes in canonical form")
    _check_signature(canonical, doc.signature, policy)
    version = (doc.supersedes or 0) + 1
    assert isinstance(issued_at, str)
    return Candidate(
        0,
        doc.type,
        doc.id,
        version,
        doc.supersedes,
        canonical,
        issued_at,
        str(status),
        subject,
        type_version=t.version,
        unique=t.check_code is not None,
        bind_code=bind_code,
    )
