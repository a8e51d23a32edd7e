"""Document types: a definition the operator registers, checked once, compiled once.

A definition (DESIGN.md, "Document types") says what a body of the type must be (a JSON
Schema 2020-12), which JSON Pointers make its id, its time, its subject and its printed
check code, which institution kinds may issue it, and its named views. `parse_definition`
refuses a definition that could not work, naming the reason; the result holds the
compiled validator, so a body costs one validation and a few pointer reads.
"""

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from functools import cached_property
from typing import Any, Final

import jsonschema
import jsonschema_rs
from jsonschema.exceptions import best_match

from hub.documents.canonical import canonical_json
from hub.documents.errors import BadDocument
from hub.documents.pointers import MISSING, child_pointer, parse_pointer, resolve, schema_at
from hub.documents.rules import RULE_SETS, RuleSet
from hub.errors import BadInput

__all__ = [
    "FULL_VIEW",
    "KIND",
    "TYPE_NAME",
    "VIEW_NAME",
    "DocumentType",
    "claimable_amount",
    "parse_definition",
]

# The one pattern for type names (documents, grants, definitions).
TYPE_NAME: Final = re.compile(r"[a-z][a-z0-9_]{0,63}")
# Institution kinds and view names: stored in 16-character columns.
KIND: Final = re.compile(r"[a-z][a-z0-9_]{0,15}")
VIEW_NAME: Final = re.compile(r"[a-z][a-z0-9_]{0,15}")
FULL_VIEW: Final = "full"
SCOPES: Final = ("issuer", "national")
_SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"
_KEYS: Final = frozenset(
    {
        "name",
        "version",
        "title",
        "description",
        "issuerKinds",
        "schema",
        "id",
        "issuedAt",
        "subject",
        "subjectScope",
        "checkCode",
        "status",
        "amount",
        "claimable",
        "views",
        "labels",
        "rules",
    }
)
# Pointers the schema must require (every document has them), and those it must only have.
_REQUIRED_POINTERS = ("issuedAt", "subject", "checkCode")
_OPTIONAL_POINTERS = ("status", "amount", "claimable")


@dataclass(frozen=True, eq=False)
class DocumentType:
    """One version of a registered type, ready to validate bodies."""

    name: str
    version: int
    title: dict[str, str]
    issuer_kinds: tuple[str, ...]
    schema: dict[str, Any]
    id: tuple[tuple[str, ...], ...]
    issued_at: tuple[str, ...]
    subject: tuple[str, ...] | None
    subject_scope: str
    check_code: tuple[str, ...] | None
    status: tuple[str, ...] | None
    amount: tuple[str, ...] | None
    claimable: tuple[str, ...] | None
    views: dict[str, tuple[tuple[str, ...], ...]]
    labels: dict[str, dict[str, str]]
    rules: RuleSet | None
    definition: dict[str, Any]
    canonical: bytes  # JCS of the definition: what GET /types/<name>/<version> serves
    digest: bytes  # SHA-256 of `canonical`, in the type's leaf
    leaf_index: int | None = None
    # Compiled once per type version: jsonschema-rs decides (a few µs a body, where the
    # pure-Python validator took ~250 µs: bench/document_types.py); jsonschema explains a refusal.
    validator: Any = field(default=None, repr=False)

    @cached_property
    def explainer(self) -> jsonschema.Draft202012Validator:
        return jsonschema.Draft202012Validator(self.schema)

    @property
    def national(self) -> bool:
        return self.subject_scope == "national"

    @property
    def view_names(self) -> tuple[str, ...]:
        return (FULL_VIEW, *self.views)

    def with_leaf(self, leaf_index: int) -> "DocumentType":
        return DocumentType(**{**self.__dict__, "leaf_index": leaf_index})

    def check_body(self, body: object) -> None:
        """BadDocument naming the JSON Pointer of the first bad field, unless ``body`` is
        valid (the rule set, where the type has one, also checks its arithmetic)."""
        if self.rules is not None:
            self.rules.validate(body)
            return
        if self.validator.is_valid(body):
            return
        error = best_match(self.explainer.iter_errors(body))
        if error is None:  # the two validators disagree: refuse, as the deciding one did
            raise BadDocument("body", "does not satisfy the type's schema")
        pointer, problem = describe(error)
        raise BadDocument(pointer or "body", problem)

    def value(self, body: object, tokens: tuple[str, ...] | None) -> Any:
        """The value at a pointer of the definition's (``id``, ``subject``, ...), or MISSING."""
        if tokens is None:
            return MISSING
        if len(tokens) == 1 and type(body) is dict:  # most pointers name a top-level field
            return body.get(tokens[0], MISSING)
        return resolve(body, tokens)


def describe(error: jsonschema.ValidationError) -> tuple[str, str]:
    """The pointer and a problem that never echoes the value (it may be personal)."""
    pointer = ""
    for step in error.absolute_path:
        pointer = child_pointer(pointer, step)
    keyword, expected = error.validator, error.validator_value
    instance = error.instance
    if keyword == "required" and isinstance(instance, Mapping):
        missing = [name for name in expected if name not in instance]
        if missing:
            return child_pointer(pointer, missing[0]), "required field is missing"
    if keyword in ("additionalProperties", "unevaluatedProperties") and isinstance(
        instance, Mapping
    ):
        known = error.schema.get("properties", {}) if isinstance(error.schema, Mapping) else {}
        extra = [name for name in instance if name not in known]
        if extra:
            return child_pointer(pointer, str(extra[0])[:40]), "unknown field"
    problems = {
        "type": lambda: f"must be of type {_listed(expected)}",
        "enum": lambda: f"must be one of {_listed(expected)}",
        "const": lambda: f"must be {expected!r}",
        "pattern": lambda: f"does not match the pattern {expected}",
        "format": lambda: f"must be a {expected}",
        "minLength": lambda: f"shorter than {expected} characters",
        "maxLength": lambda: f"longer than {expected} characters",
        "minItems": lambda: f"must have at least {expected} items",
        "maxItems": lambda: f"must have at most {expected} items",
        "minimum": lambda: f"must be at least {expected}",
        "maximum": lambda: f"must be at most {expected}",
    }
    make = problems.get(str(keyword))
    return pointer, make() if make else f"does not satisfy '{keyword}' of the type's schema"


def _listed(value: object) -> str:
    if isinstance(value, list):
        return ", ".join(str(v) for v in value)
    return str(value)


def claimable_amount(definition: DocumentType, body: object) -> Decimal | None:
    """What claims may book against a document with ``body``: its rule set's amount (the
    invoice: personalAccount + personalCash), else the value at its `claimable` pointer;
    None when the type has no claimable amount or the body does not carry one."""
    if definition.rules is not None:
        amount = definition.rules.claimable(body)
        if amount is not None:
            return amount
    value = definition.value(body, definition.claimable)
    if not isinstance(value, str):
        return None
    try:
        return Decimal(value)
    except InvalidOperation:
        return None


def _fail(problem: str) -> BadInput:
    return BadInput(f"definition: {problem}")


def _pointer(definition: Mapping[str, Any], key: str) -> tuple[str, ...] | None:
    raw = definition.get(key)
    if raw is None:
        return None
    try:
        return parse_pointer(raw)
    except ValueError as exc:
        raise _fail(f"{key}: {exc}") from None


def _title(raw: object, where: str) -> dict[str, str]:
    if isinstance(raw, str) and raw:
        return {"en": raw}
    if (
        isinstance(raw, Mapping)
        and raw
        and all(isinstance(k, str) and isinstance(v, str) and v for k, v in raw.items())
    ):
        return dict(raw)
    raise _fail(f"{where}: a string, or an object of language -> text such as en, zh")


def parse_definition(raw: object) -> DocumentType:
    """Check a definition and compile its validator; BadInput names what is wrong."""
    if not isinstance(raw, Mapping):
        raise _fail("must be a JSON object")
    unknown = sorted(set(raw) - _KEYS)
    if unknown:
        raise _fail(f"unknown field {unknown[0]!r}")
    name = raw.get("name")
    if not isinstance(name, str) or not TYPE_NAME.fullmatch(name):
        raise _fail("name: a lower-case name such as fiscal_receipt (letters, digits, _)")
    version = raw.get("version")
    if isinstance(version, bool) or not isinstance(version, int) or not 1 <= version <= 10**6:
        raise _fail("version: a positive integer")
    title = _title(raw.get("title", name), "title")
    kinds = raw.get("issuerKinds")
    if (
        not isinstance(kinds, list)
        or not kinds
        or not all(isinstance(k, str) and KIND.fullmatch(k) for k in kinds)
    ):
        raise _fail("issuerKinds: a non-empty list of institution kinds such as hospital")
    schema = raw.get("schema")
    if not isinstance(schema, Mapping):
        raise _fail("schema: a JSON Schema 2020-12 object")
    dialect = schema.get("$schema", _SCHEMA_DIALECT)
    if dialect != _SCHEMA_DIALECT:
        raise _fail(f"schema: $schema must be {_SCHEMA_DIALECT}")
    try:
        jsonschema.Draft202012Validator.check_schema(schema)
    except jsonschema.SchemaError as exc:
        where = "/".join(str(p) for p in exc.absolute_path)
        raise _fail(f"schema is not valid JSON Schema 2020-12 at /{where}: {exc.message}") from None
    if schema.get("type") != "object":
        raise _fail("schema: a document body is an object (type: object)")
    ids = raw.get("id")
    if not isinstance(ids, list) or not ids or len(ids) > 8:
        raise _fail("id: a list of 1-8 JSON Pointers whose values make the document id")
    id_tokens = []
    for i, pointer in enumerate(ids):
        try:
            tokens = parse_pointer(pointer)
        except ValueError as exc:
            raise _fail(f"id[{i}]: {exc}") from None
        _must_require(schema, tokens, f"id {pointer}")
        id_tokens.append(tokens)
    if raw.get("issuedAt") is None:
        raise _fail("issuedAt: the JSON Pointer of the document's date-time")
    pointers: dict[str, tuple[str, ...] | None] = {}
    for key in _REQUIRED_POINTERS:
        pointers[key] = _pointer(raw, key)
        if pointers[key] is not None:
            _must_require(schema, pointers[key], f"{key} {raw[key]}")  # type: ignore[arg-type]
    for key in _OPTIONAL_POINTERS:
        pointers[key] = _pointer(raw, key)
        if pointers[key] is not None and schema_at(schema, pointers[key])[0] is None:  # type: ignore[arg-type]
            raise _fail(f"{key}: the schema has no field {raw[key]}")
    scope = raw.get("subjectScope", "issuer")
    if scope not in SCOPES:
        raise _fail("subjectScope: issuer (the default) or national")
    if scope == "national" and pointers["subject"] is None:
        raise _fail("subjectScope: national needs a subject pointer")
    views = _views(raw.get("views", {}), schema)
    labels = _labels(raw.get("labels", {}), schema)
    rules = None
    if raw.get("rules") is not None:
        rules = RULE_SETS.get(raw["rules"]) if isinstance(raw["rules"], str) else None
        if rules is None:
            raise _fail(f"rules: no rule set named {raw['rules']!r}; known: {', '.join(RULE_SETS)}")
    try:
        canonical = canonical_json(dict(raw), path="definition")
    except BadDocument as exc:
        raise _fail(str(exc)) from None
    issued_at = pointers["issuedAt"]
    assert issued_at is not None
    return DocumentType(
        name=name,
        version=version,
        title=title,
        issuer_kinds=tuple(kinds),
        schema=dict(schema),
        id=tuple(id_tokens),
        issued_at=issued_at,
        subject=pointers["subject"],
        subject_scope=scope,
        check_code=pointers["checkCode"],
        status=pointers["status"],
        amount=pointers["amount"],
        claimable=pointers["claimable"],
        views=views,
        labels=labels,
        rules=rules,
        definition=dict(raw),
        canonical=canonical,
        digest=hashlib.sha256(canonical).digest(),
        validator=jsonschema_rs.Draft202012Validator(dict(schema)),
    )


def _must_require(schema: Mapping[str, Any], tokens: tuple[str, ...], what: str) -> None:
    node, required = schema_at(schema, tokens)
    if node is None:
        raise _fail(f"{what}: the schema has no such field")
    if not required:
        raise _fail(f"{what}: the schema must require it (list it in required)")


def _views(raw: object, schema: Mapping[str, Any]) -> dict[str, tuple[tuple[str, ...], ...]]:
    if not isinstance(raw, Mapping):
        raise _fail("views: an object of view name -> list of JSON Pointers")
    views = {}
    for name, pointers in raw.items():
        if not isinstance(name, str) or not VIEW_NAME.fullmatch(name) or name == FULL_VIEW:
            raise _fail(
                f"views: {name!r} is not a view name (lower-case, at most 16 characters;"
                " full always exists and is never listed)"
            )
        if not isinstance(pointers, list) or not pointers:
            raise _fail(f"views.{name}: a non-empty list of JSON Pointers")
        tokens_list = []
        for pointer in pointers:
            try:
                tokens = parse_pointer(pointer)
            except ValueError as exc:
                raise _fail(f"views.{name}: {exc}") from None
            if schema_at(schema, tokens)[0] is None:
                raise _fail(f"views.{name}: the schema has no field {pointer}")
            tokens_list.append(tokens)
        views[name] = tuple(tokens_list)
    return views


def _labels(raw: object, schema: Mapping[str, Any]) -> dict[str, dict[str, str]]:
    if not isinstance(raw, Mapping):
        raise _fail("labels: an object of JSON Pointer -> {en, zh}")
    labels = {}
    for pointer, text in raw.items():
        try:
            tokens = parse_pointer(pointer)
        except ValueError as exc:
            raise _fail(f"labels: {exc}") from None
        if schema_at(schema, tokens)[0] is None:
            raise _fail(f"labels: the schema has no field {pointer}")
        labels[pointer] = _title(text, f"labels.{pointer}")
    return labels
