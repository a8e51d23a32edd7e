"""RFC 8785 canonical JSON, salted commitments and the ledger's leaf data."""

import base64
import hashlib
import json
from collections import OrderedDict
from enum import StrEnum

import pytest
import rfc8785
from hypothesis import given
from hypothesis import strategies as st

from hub.documents.canonical import (
    MAX_DEPTH,
    SALT_BYTES,
    access_leaf_data,
    body_digest,
    canonical_json,
    document_leaf_data,
    grant_leaf_data,
    new_salts,
)
from hub.documents.errors import BadDocument

SALT = bytes(range(32))
DIGEST = hashlib.sha256(b"any body").digest()


# --- RFC 8785 vectors -------------------------------------------------------------------


def test_rfc8785_property_sorting_is_by_utf16_code_units():
    # RFC 8785 section 3.2.3; the emoji (a surrogate pair) sorts before U+FB33,
    # which code-point order would get wrong.
    value = {
        "\u20ac": "Euro Sign",
        "\r": "Carriage Return",
        "\ufb33": "Hebrew Letter Dalet With Dagesh",
        "1": "One",
        "\U0001f600": "Emoji: Grinning Face",
        "\u0080": "Control",
        "\u00f6": "Latin Small Letter O With Diaeresis",
    }
    expected = (
        '{"\\r":"Carriage Return","1":"One","\u0080":"Control",'
        '"\u00f6":"Latin Small Letter O With Diaeresis","\u20ac":"Euro Sign",'
        '"\U0001f600":"Emoji: Grinning Face","\ufb33":"Hebrew Letter Dalet With Dagesh"}'
    ).encode()
    assert canonical_json(value) == expected


def test_rfc8785_string_escaping_and_literals():
    # The string and literal parts of the RFC 8785 section 3.2.2 example.
    value = json.loads(
        r'{"string": "\u20ac$\u000F\u000aA'
        r"'\u0042\u0022\u005c\\\"\/"
        r'", "literals": [null, true, false]}'
    )
    expected = r"""{"literals":[null,true,false],"string":"€$\u000f\nA'B\"\\\\\"/"}"""
    assert canonical_json(value) == expected.encode()


def test_integers_and_nesting_have_no_whitespace():
    assert canonical_json({"b": [1, -2, {"d": None, "c": 0}], "a": "x"}) == (
        b'{"a":"x","b":[1,-2,{"c":0,"d":null}]}'
    )


# --- what JSON cannot carry ---------------------------------------------------------------


def test_float_is_refused_with_its_path():
    body = {"totals": {"total": 25.0}}
    with pytest.raises(BadDocument) as err:
        canonical_json(body)
    assert err.value.field == "body.totals.total"
    assert str(err.value) == "body.totals.total: numbers must be decimal strings, not floats"
    assert err.value.code == "BAD_INPUT"


def test_float_in_a_list_is_refused_with_its_index():
    with pytest.raises(BadDocument) as err:
        canonical_json({"items": [{"amount": "1.00"}, {"amount": 2.5}]})
    assert err.value.field == "body.items[1].amount"


def test_odd_keys_are_quoted_in_the_path():
    with pytest.raises(BadDocument) as err:
        canonical_json({"a.b c": [0.5]})
    assert err.value.field == 'body["a.b c"][0]'


def test_root_path_can_be_named():
    with pytest.raises(BadDocument) as err:
        canonical_json([1.5], path="leaf")
    assert err.value.field == "leaf[0]"


@pytest.mark.parametrize(
    ("value", "field", "problem"),
    [
        ({"n": 2**53}, "body.n", "safe range"),
        ({"n": -(2**53)}, "body.n", "safe range"),
        ({"k": {1: "x"}}, "body.k", "keys must be strings"),
        ({"s": "\ud800"}, "body.s", "lone surrogate"),
        ({"d": b"bytes"}, "body.d", "bytes is not a JSON value"),
        ({"d": {1, 2}}, "body.d", "set is not a JSON value"),
        ({"d": OrderedDict(a=1)}, "body.d", "OrderedDict is not a JSON value"),
    ],
)
def test_values_json_cannot_carry_are_refused(value, field, problem):
    with pytest.raises(BadDocument) as err:
        canonical_json(value)
    assert err.value.field == field
    assert problem in str(err.value)


def test_str_enum_is_refused():
    class Colour(StrEnum):
        RED = "red"

    with pytest.raises(BadDocument, match="Colour is not a JSON value"):
        canonical_json({"c": Colour.RED})


def test_safe_integer_bounds_are_accepted():
    assert canonical_json([2**53 - 1, -(2**53 - 1)]) == b"[9007199254740991,-9007199254740991]"


def test_nesting_is_bounded():
    deep: object = "leaf"
    for _ in range(MAX_DEPTH):
        deep = [deep]
    assert canonical_json(deep).startswith(b"[" * MAX_DEPTH)
    with pytest.raises(BadDocument, match="nested deeper"):
        canonical_json([deep])


# --- salt, digest, leaves -----------------------------------------------------------------


def test_new_salts_are_fresh_32_bytes_each():
    batch = new_salts(8)
    salts = set(batch) | set(new_salts(8))
    assert len(batch) == 8
    assert len(salts) == 16
    assert all(len(s) == SALT_BYTES for s in salts)
    assert new_salts(0) == []


def test_body_digest_is_sha256_of_salt_then_jcs():
    body = {"b": "2", "a": "1"}
    by_hand = b'{"a":"1","b":"2"}'
    assert canonical_json(body) == by_hand
    assert body_digest(SALT, canonical_json(body)) == hashlib.sha256(SALT + by_hand).digest()


def test_body_digest_depends_on_the_salt():
    body = canonical_json({"a": "1"})
    assert body_digest(SALT, body) != body_digest(bytes(32), body)


def test_body_digest_refuses_a_short_salt():
    with pytest.raises(ValueError, match="32 bytes"):
        body_digest(b"short", b"{}")


def test_document_leaf_data_exact_bytes():
    digest = body_digest(SALT, b'{"a":"1"}')
    leaf = document_leaf_data(
        issuer="hosp-chengmai",
        type="medical_invoice",
        id="46230126-0000000001",
        version=2,
        digest=digest,
        issued_at="2026-11-20T10:15:00+08:00",
    )
    b64 = base64.b64encode(hashlib.sha256(SALT + b'{"a":"1"}').digest()).decode()
    by_hand = (
        '{"digest":"' + b64 + '","id":"46230126-0000000001",'
        '"issuedAt":"2026-11-20T10:15:00+08:00","issuer":"hosp-chengmai",'
        '"kind":"document","type":"medical_invoice","v":1,"version":2}'
    )
    assert leaf == by_hand.encode()


def test_access_leaf_data_exact_bytes():
    leaf = access_leaf_data(
        agency="agency-finance",
        issuer="hosp-dingan",
        type="medical_invoice",
        id="46210126-0000000007",
        version=1,
        purpose="reimbursement audit",
        at="2026-11-21T08:00:00Z",
    )
    by_hand = (
        '{"agency":"agency-finance","at":"2026-11-21T08:00:00Z",'
        '"document":{"id":"46210126-0000000007","issuer":"hosp-dingan",'
        '"type":"medical_invoice","version":1},'
        '"kind":"access","purpose":"reimbursement audit","v":1}'
    )
    assert leaf == by_hand.encode()


def test_grant_leaf_data_exact_bytes():
    leaf = grant_leaf_data(
        id="g-1",
        agency="agency-insurance",
        type="medical_invoice",
        issuers=["hosp-lingao", "hosp-baisha"],
        view="financial",
        purpose="医保结算核查",
        valid_from="2026-11-01",
        valid_until=None,
        action="create",
        at="2026-11-01T09:00:00+08:00",
    )
    by_hand = (
        '{"action":"create","agency":"agency-insurance","at":"2026-11-01T09:00:00+08:00",'
        '"id":"g-1","issuers":["hosp-lingao","hosp-baisha"],"kind":"grant",'
        '"purpose":"医保结算核查","type":"medical_invoice","v":1,'
        '"validFrom":"2026-11-01","validUntil":null,"view":"financial"}'
    )
    assert leaf == by_hand.encode()


def test_grant_revocation_with_a_deadline():
    leaf = json.loads(
        grant_leaf_data(
            id="g-1",
            agency="a",
            type="medical_invoice",
            issuers=["*"],
            view="summary",
            purpose="p",
            valid_from="2026-11-01T00:00:00+08:00",
            valid_until="2026-12-31",
            action="revoke",
            at="2026-11-02T00:00:00+08:00",
        )
    )
    assert (leaf["action"], leaf["issuers"], leaf["validUntil"]) == ("revoke", ["*"], "2026-12-31")


_DOC = {
    "issuer": "h",
    "type": "medical_invoice",
    "id": "46230126-0000000001",
    "version": 1,
    "digest": DIGEST,
    "issued_at": "2026-11-20T10:15:00+08:00",
}


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"issuer": ""}, "issuer"),
        ({"type": "x" * 201}, "type"),
        ({"id": "a\nb"}, "id"),
        ({"version": 0}, "version"),
        ({"version": True}, "version"),
        ({"digest": b"\x00" * 31}, "digest"),
        ({"digest": DIGEST.hex()}, "digest"),
        ({"issued_at": "2026-11-20T10:15:00"}, "issuedAt"),
        ({"issued_at": "2026-11-20"}, "issuedAt"),
        ({"issued_at": "2026-02-30T10:15:00+08:00"}, "issuedAt"),
    ],
)
def test_document_leaf_refuses_bad_parts(change, field):
    with pytest.raises(BadDocument) as err:
        document_leaf_data(**{**_DOC, **change})
    assert err.value.field == field


@pytest.mark.parametrize(
    "issuer", ["hosp-chengmai", "澄迈县人民医院", "clinic-\u00e9", "h\U0001f3e5"]
)
def test_document_leaf_data_is_jcs_for_any_issuer(issuer):
    fields = {**_DOC, "issuer": issuer}
    leaf = document_leaf_data(**fields)
    assert leaf == rfc8785.dumps(json.loads(leaf))
    assert json.loads(leaf)["issuer"] == issuer


def test_document_leaf_data_refuses_a_lone_surrogate_in_the_issuer():
    with pytest.raises(BadDocument):
        document_leaf_data(**{**_DOC, "issuer": "h\udc80"})


_GRANT = {
    "id": "g",
    "agency": "a",
    "type": "medical_invoice",
    "issuers": ["*"],
    "view": "full",
    "purpose": "p",
    "valid_from": "2026-11-01",
    "valid_until": None,
    "action": "create",
    "at": "2026-11-01T00:00:00Z",
}


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"issuers": []}, "issuers"),
        ({"issuers": "*"}, "issuers"),
        ({"issuers": ["h", ""]}, "issuers[1]"),
        ({"view": "Every view!"}, "view"),
        ({"action": "update"}, "action"),
        ({"valid_from": "soon"}, "validFrom"),
        ({"valid_until": "2026-13-01"}, "validUntil"),
        ({"at": None}, "at"),
    ],
)
def test_grant_leaf_refuses_bad_parts(change, field):
    with pytest.raises(BadDocument) as err:
        grant_leaf_data(**{**_GRANT, **change})
    assert err.value.field == field


def test_access_leaf_refuses_a_bad_document_version():
    with pytest.raises(BadDocument) as err:
        access_leaf_data(
            agency="a", issuer="h", type="t", id="i", version=-1, purpose="p", at="2026-11-01"
        )
    assert err.value.field == "document.version"


_json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**53 - 1), max_value=2**53 - 1),
    st.text(st.characters(exclude_categories=["Cs"])),
)
_json_values = st.recursive(
    _json_scalars,
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(
            st.text(st.characters(exclude_categories=["Cs"]), max_size=6), children, max_size=4
        )
    ),
    max_leaves=20,
)


@given(_json_values)
def test_fast_path_produces_exactly_the_rfc8785_bytes(value: object) -> None:
    assert canonical_json(value) == rfc8785.dumps(value)


def test_keys_beyond_the_bmp_sort_by_utf16_code_units() -> None:
    # U+1F600 is D83D DE00 in UTF-16, so it sorts before U+FF01 there but after it by code point.
    value = {"\U0001f600": 1, "\uff01": 2}
    assert canonical_json(value) == rfc8785.dumps(value)
    assert canonical_json(value).index("\U0001f600".encode()) < canonical_json(value).index(
        "\uff01".encode()
    )


def test_a_validated_invoice_needs_no_check_for_its_canonical_bytes() -> None:
    # The submit path writes a validated invoice with canonical_json_of_checked, skipping
    # the walk: what validate_invoice admits must already be what JCS carries as is.
    from hub.documents.canonical import canonical_json_of_checked
    from hub.documents.demo_data import demo_invoices
    from hub.documents.invoice import validate_invoice

    awkward = ['引号"与\\反斜杠', "line\u2028sep", "emoji \U0001f600", "é/ü", "\u007e~"]
    for i, body in enumerate(demo_invoices(500, seed=11)):
        body["issuerName"] = awkward[i % len(awkward)]
        body["items"][0]["name"] = awkward[(i + 1) % len(awkward)]
        validate_invoice(body)
        assert canonical_json_of_checked(body) == rfc8785.dumps(body)
