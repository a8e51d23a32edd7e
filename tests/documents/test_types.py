"""Document type definitions: what registration refuses, and what a new version may change."""

import copy
import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from hub.documents.compat import check_successor
from hub.documents.demo_data import demo_invoices
from hub.documents.demo_types import demo_receipts, demo_settlements
from hub.documents.errors import BadDocument
from hub.documents.registry import DEFINITIONS, SHIPPED, shipped_types
from hub.documents.types import claimable_amount, parse_definition
from hub.errors import BadInput


def certificate(**changes: Any) -> dict[str, Any]:
    definition: dict[str, Any] = {
        "name": "school_certificate",
        "version": 1,
        "title": {"en": "Graduation certificate", "zh": "毕业证书"},
        "issuerKinds": ["school"],
        "schema": {
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "type": "object",
            "additionalProperties": False,
            "required": ["number", "issuedAt", "studentRef", "grades"],
            "properties": {
                "number": {"type": "string", "pattern": "^[0-9]{6}$", "title": "Number"},
                "issuedAt": {"type": "string"},
                "studentRef": {"type": "string"},
                "nickname": {"type": "string", "maxLength": 20},
                "grades": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": ["subject", "score"],
                        "properties": {
                            "subject": {"type": "string"},
                            "score": {"type": "string", "pattern": "^[0-9]{1,3}$"},
                        },
                    },
                },
            },
        },
        "id": ["/number"],
        "issuedAt": "/issuedAt",
        "subject": "/studentRef",
        "views": {"transcript": ["/number", "/grades"]},
    }
    definition.update(changes)
    return definition


def with_schema(change: Any) -> dict[str, Any]:
    definition = certificate()
    change(definition["schema"])
    return definition


@pytest.mark.parametrize(
    ("definition", "reason"),
    [
        (certificate(name="School Certificate"), "name"),
        (certificate(version=0), "version"),
        (certificate(issuerKinds=[]), "issuerKinds"),
        (certificate(issuerKinds=["Hospital!"]), "issuerKinds"),
        (certificate(colour="blue"), "unknown field 'colour'"),
        (with_schema(lambda s: s.update(type="array")), "type: object"),
        (with_schema(lambda s: s.update(required="number")), "not valid JSON Schema 2020-12"),
        (
            with_schema(lambda s: s.update({"$schema": "http://json-schema.org/draft-07/schema#"})),
            "$schema",
        ),
        (certificate(id=["/nickname"]), "id /nickname: the schema must require it"),
        (certificate(id=["/missing"]), "id /missing: the schema has no such field"),
        (certificate(id="number"), "id:"),
        (certificate(subject="/nickname"), "subject /nickname: the schema must require it"),
        (certificate(checkCode="/nickname"), "checkCode /nickname"),
        (
            certificate(views={"transcript": ["/marks"]}),
            "views.transcript: the schema has no field /marks",
        ),
        (certificate(views={"full": ["/number"]}), "full always exists"),
        (certificate(rules="arithmetic"), "no rule set named 'arithmetic'"),
        (certificate(subjectScope="planet"), "subjectScope"),
        (certificate(labels={"/nowhere": {"en": "x"}}), "labels: the schema has no field /nowhere"),
    ],
)
def test_a_definition_that_could_not_work_is_refused_with_its_reason(
    definition: dict[str, Any], reason: str
) -> None:
    with pytest.raises(BadInput) as err:
        parse_definition(definition)
    assert reason in err.value.message


def test_refusals_of_a_body_name_the_json_pointer_and_never_echo_the_value() -> None:
    t = parse_definition(certificate())
    good = {
        "number": "000123",
        "issuedAt": "2026-06-30T09:00:00+08:00",
        "studentRef": "S-9",
        "grades": [],
    }
    t.check_body(good)
    cases = [
        (
            {
                **good,
                "grades": [{"subject": "math", "score": "95"}, {"subject": "art", "score": "x9z"}],
            },
            "/grades/1/score",
            "pattern",
        ),
        (
            {k: v for k, v in good.items() if k != "studentRef"},
            "/studentRef",
            "required field is missing",
        ),
        ({**good, "secret": "Zhang San"}, "/secret", "unknown field"),
        ({**good, "nickname": "A" * 30}, "/nickname", "longer than 20"),
        ({**good, "number": 123}, "/number", "must be of type string"),
    ]
    for body, pointer, problem in cases:
        with pytest.raises(BadDocument) as err:
            t.check_body(body)
        assert err.value.field == pointer and problem in err.value.problem
        assert "x9z" not in str(err.value) and "Zhang San" not in str(err.value)


def test_the_shipped_definitions_parse_and_accept_their_demo_documents() -> None:
    assert [t.name for t in shipped_types()] == list(SHIPPED)
    invoice, receipt, settlement = shipped_types()
    invoices = demo_invoices(60, seed=4)
    schema_only = jsonschema.Draft202012Validator(invoice.schema)
    for body in invoices:
        invoice.check_body(body)  # the rule set
        assert schema_only.is_valid(body)  # and the schema it stands in for
    for body in demo_receipts(30, seed=2):
        receipt.check_body(body)
    for body in demo_settlements([("hosp-x", b) for b in invoices]):
        settlement.check_body(body)
    assert settlement.national and not receipt.national and not invoice.national
    # The invoice's views are exactly the lists hub.access.views documents.
    assert invoice.views["summary"] == (("status",), ("issuedAt",), ("totals", "total"))


def test_the_invoice_rule_set_refuses_what_its_schema_would_let_through() -> None:
    invoice = shipped_types()[0]
    body = copy.deepcopy(demo_invoices(1, seed=5)[0])
    body["totals"]["total"] = "99999.00"  # a valid money string, but not the items' sum
    assert jsonschema.Draft202012Validator(invoice.schema).is_valid(body)
    with pytest.raises(BadDocument) as err:
        invoice.check_body(body)
    assert err.value.field == "body.totals.total"


def test_claimable_amounts() -> None:
    invoice, receipt, settlement = shipped_types()
    body = demo_invoices(1, seed=6)[0]
    totals = body["totals"]
    assert claimable_amount(invoice, body) == Decimal(totals["personalAccount"]) + Decimal(
        totals["personalCash"]
    )
    r = demo_receipts(1)[0]
    assert claimable_amount(receipt, r) == Decimal(r["amount"])
    s = demo_settlements([("h", body)])[0]
    assert claimable_amount(settlement, s) == Decimal(s["amounts"]["cashPaid"])
    assert claimable_amount(parse_definition(certificate()), {"number": "1"}) is None


def _successor(change: Any) -> dict[str, Any]:
    definition = certificate(version=2)
    change(definition)
    return definition


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (lambda d: d["schema"]["properties"].pop("nickname"), "removes the field /nickname"),
        (lambda d: d["schema"]["required"].append("nickname"), "requires /nickname"),
        (lambda d: d["schema"]["properties"]["nickname"].update(maxLength=10), "lowers maxLength"),
        (
            lambda d: d["schema"]["properties"]["nickname"].update(pattern="^[a-z]+$"),
            "adds the constraint pattern",
        ),
        (
            lambda d: d["schema"]["properties"]["number"].update(pattern="^[0-9]{7}$"),
            "changes pattern at /number",
        ),
        (lambda d: d.update(views={}), "removes the view transcript"),
        (lambda d: d.update(id=["/number", "/studentRef"]), "id differs"),
        (lambda d: d.update(issuerKinds=["school", "hospital"]), "issuerKinds differs"),
        (
            lambda d: d["schema"]["properties"]["grades"]["items"]["required"].append("teacher"),
            "requires /grades/items/teacher",
        ),
    ],
)
def test_a_version_that_removes_or_tightens_anything_is_refused(change: Any, reason: str) -> None:
    old = parse_definition(certificate())
    with pytest.raises(BadInput) as err:
        check_successor(old, parse_definition(_successor(change)))
    assert reason in err.value.message and "new type name" in err.value.message


def test_a_version_may_add_optional_fields_and_views_and_loosen() -> None:
    def additive(d: dict[str, Any]) -> None:
        d["schema"]["properties"]["school"] = {"type": "string", "title": "School"}
        d["schema"]["properties"]["nickname"]["maxLength"] = 40
        d["views"]["public"] = ["/number", "/school"]
        d["title"] = {"en": "Graduation certificate", "zh": "毕业证"}

    check_successor(parse_definition(certificate()), parse_definition(_successor(additive)))


def test_the_shipped_files_are_what_the_registry_serves() -> None:
    for t in shipped_types():
        on_disk = json.loads((DEFINITIONS / f"{t.name}.json").read_text(encoding="utf-8"))
        assert parse_definition(on_disk).digest == t.digest


def test_the_operator_guide_example_is_a_working_definition() -> None:
    guide = (Path(__file__).resolve().parents[2] / "docs" / "document-types.md").read_text()
    block = guide.split("```json\n", 1)[1].split("```", 1)[0]
    t = parse_definition(json.loads(block))
    t.check_body(
        {
            "number": "000001",
            "checkCode": "Ab12Cd",
            "issuedAt": "2026-06-30T09:00:00+08:00",
            "studentRef": "S-0001",
            "grades": [{"subject": "math", "score": "95"}],
        }
    )
    with pytest.raises(BadDocument) as err:
        t.check_body(
            {
                "number": "000002",
                "checkCode": "Ef34Gh",
                "issuedAt": "2026-06-30T09:00:00+08:00",
                "studentRef": "S-0002",
                "grades": [{"subject": "math", "score": "A+"}],
            }
        )
    assert str(err.value) in guide  # the refusal the guide shows is the one given
