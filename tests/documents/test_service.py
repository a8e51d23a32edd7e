"""Submitting documents end to end on a started Hub (SQLite and PostgreSQL)."""

import asyncio
import base64
import copy
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from hub.audit import verify_ledger
from hub.documents.canonical import body_digest, canonical_json
from hub.documents.demo_data import demo_invoices
from hub.documents.service import (
    CREATED,
    DUPLICATE,
    REJECTED,
    DocumentInput,
    SubmitOutcome,
    document_versions,
    erase_document,
)
from hub.errors import NotFound
from hub.institutions import add_institution, add_issuer_key
from hub.ledger.checkpoint import open_checkpoint
from hub.ledger.storage import SignedHead, read_checkpoint
from hub.ledger.tree import leaf_hash, verify_inclusion
from hub.models import Document, LedgerCheckpoint
from hub.services import Hub

HOSPITAL = "hosp-test"
INVOICE = "medical_invoice"


def invoice(body: Any, *, id: str | None = None, **kw: Any) -> DocumentInput:
    if id is None:
        id = f"{body['billCode']}-{body['billNumber']}"
    return DocumentInput(type=INVOICE, id=id, body=body, **kw)


def raw_public(key: Ed25519PrivateKey) -> bytes:
    return key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def sign(key: Ed25519PrivateKey, body: Any) -> str:
    return base64.b64encode(key.sign(canonical_json(body))).decode()


@pytest.fixture
async def started(hub: Hub) -> Hub:
    await add_institution(hub.db, HOSPITAL, "Test County Hospital", "hospital")
    return hub


async def count_documents(hub: Hub) -> int:
    rows = await hub.db.sql.fetch("SELECT COUNT(*) FROM documents")
    return int(rows[0][0])


async def ledger_size(hub: Hub) -> int:
    head = await read_checkpoint(hub.db.sql)
    assert head is not None
    return head.size


async def assert_included(hub: Hub, result: SubmitOutcome, head: SignedHead) -> None:
    """The result's leaf is proven, from stored tiles, under the signed checkpoint."""
    cp = open_checkpoint(head.note, hub.signer.verifier, hub.settings.origin)
    assert (cp.size, cp.root) == (head.size, head.root)
    assert result.leaf_index is not None and result.leaf_hash is not None
    assert result.leaf_index < cp.size
    proof = await hub.tiles.inclusion_proof(result.leaf_index, cp.size)
    verify_inclusion(result.leaf_index, cp.size, result.leaf_hash, proof, cp.root)


def mutated(body: dict[str, Any], change: Any) -> dict[str, Any]:
    out = copy.deepcopy(body)
    change(out)
    return out


def oversize(body: dict[str, Any]) -> dict[str, Any]:
    """A body valid in every rule but size: 1000 items with 200-character names."""
    out = copy.deepcopy(body)
    item = {
        "category": "materials",
        "code": "C" * 200,
        "name": "一次性使用输液器" * 25,
        "quantity": "1",
        "unitPrice": "1.00",
        "amount": "1.00",
    }
    out["items"] = [dict(item) for _ in range(1000)]
    out["totals"] = {
        "total": "1000.00",
        "insuranceFund": "0.00",
        "otherPayments": "0.00",
        "personalAccount": "0.00",
        "personalCash": "1000.00",
        "selfPay": "0.00",
    }
    return out


def _set(path: list[Any], value: Any) -> Any:
    def change(body: dict[str, Any]) -> None:
        target = body
        for step in path[:-1]:
            target = target[step]
        target[path[-1]] = value

    return change


async def test_a_mixed_batch_anchors_the_good_and_leaves_nothing_of_the_bad(
    started: Hub,
) -> None:
    hub = started
    good = demo_invoices(12, seed=11)
    base = good[0]
    # Each bad input with the field its error must name.
    bad: list[tuple[DocumentInput, str]] = [
        (DocumentInput(type=INVOICE, id="x", body="not an object"), "body"),
        (invoice(mutated(base, lambda b: b.pop("totals"))), "body.totals"),
        (invoice(mutated(base, _set(["billNumber"], 12345))), "body.billNumber"),
        (invoice(mutated(base, _set(["visit", "type"], 1))), "body.visit.type"),
        (invoice(mutated(base, _set(["items", 0, "unitPrice"], 25.0))), "body.items[0].unitPrice"),
        (invoice(mutated(base, _set(["totals", "selfPay"], 0.5))), "body.totals.selfPay"),
        (invoice(mutated(base, _set(["items", 0, "amount"], "12,50"))), "body.items[0].amount"),
        (invoice(mutated(base, _set(["totals", "total"], "1e3"))), "body.totals.total"),
        (invoice(mutated(base, _set(["totals", "total"], "0.01"))), "body.totals.total"),
        (
            invoice(mutated(base, _set(["totals", "insuranceFund"], "999999.99"))),
            "body.totals",
        ),
        (invoice(oversize(base)), "body"),
        (invoice(base, id="46000000-0000000000"), "id"),
    ]
    # Interleave: good, bad, good, bad, ...
    inputs: list[DocumentInput] = []
    expected: list[str | None] = []
    for i, (doc, field) in enumerate(bad):
        inputs.append(invoice(good[i]))
        expected.append(None)
        inputs.append(doc)
        expected.append(field)

    results, head = await hub.documents.submit(HOSPITAL, inputs)

    assert len(results) == len(inputs)
    accepted: list[SubmitOutcome] = []
    for sent, result, named in zip(inputs, results, expected, strict=True):
        assert result.id == sent.id
        if named is None:
            assert result.status == CREATED, result.error
            accepted.append(result)
            continue
        assert result.status == REJECTED
        assert result.error is not None and result.error.code == "BAD_INPUT"
        assert result.error.message.startswith(f"{named}:"), result.error.message
        assert result.leaf_index is None and result.leaf_hash is None
    # The good ones got consecutive leaves in input order; the bad ones left nothing.
    assert [r.leaf_index for r in accepted] == list(range(len(accepted)))
    assert await count_documents(hub) == len(accepted)
    assert await ledger_size(hub) == len(accepted) == head.size
    for result in accepted:
        await assert_included(hub, result, head)
    # What is stored commits to exactly the body sent.
    for body, result in zip(good, accepted, strict=True):
        (stored,) = await document_versions(hub.db, INVOICE, result.id, HOSPITAL)
        assert stored.body == body and stored.salt is not None
        assert stored.digest == body_digest(stored.salt, canonical_json(body))
        assert leaf_hash(stored.leaf_data) == result.leaf_hash
        assert stored.leaf_index == result.leaf_index and stored.version == 1


async def test_identity_duplicates_conflicts_and_versions(started: Hub) -> None:
    hub = started
    bodies = demo_invoices(3, seed=12)
    first, head = await hub.documents.submit(HOSPITAL, [invoice(b) for b in bodies])
    assert [r.status for r in first] == [CREATED] * 3

    again, head2 = await hub.documents.submit(HOSPITAL, [invoice(b) for b in bodies])
    assert [r.status for r in again] == [DUPLICATE] * 3
    for old, new in zip(first, again, strict=True):
        assert (new.leaf_index, new.leaf_hash, new.version) == (
            old.leaf_index,
            old.leaf_hash,
            old.version,
        )
        await assert_included(hub, new, head2)
    assert head2.size == head.size == await ledger_size(hub) == 3

    changed = mutated(bodies[0], _set(["checkCode"], "ZZZZZZ"))
    (conflict,), _ = await hub.documents.submit(HOSPITAL, [invoice(changed)])
    assert conflict.status == REJECTED
    assert conflict.error is not None and conflict.error.code == "CONFLICT"

    (correction,), head3 = await hub.documents.submit(HOSPITAL, [invoice(changed, supersedes=1)])
    assert correction.status == CREATED and correction.version == 2
    assert correction.leaf_index == 3
    await assert_included(hub, correction, head3)
    versions = await document_versions(hub.db, INVOICE, correction.id, HOSPITAL)
    assert [(v.version, v.body) for v in versions] == [(1, bodies[0]), (2, changed)]

    reversed_body = mutated(bodies[1], _set(["status"], "reversed"))
    results, _ = await hub.documents.submit(
        HOSPITAL,
        [
            invoice(reversed_body),  # a reversal must name what it reverses
            invoice(bodies[2], supersedes=7),  # no version 7
            invoice(demo_invoices(1, seed=13)[0], supersedes=1),  # no version 1 at all
        ],
    )
    assert [r.status for r in results] == [REJECTED] * 3
    assert [r.error.code if r.error else None for r in results] == ["BAD_INPUT"] * 3
    assert all(r.error and r.error.message.startswith("supersedes:") for r in results)

    (reversal,), _ = await hub.documents.submit(HOSPITAL, [invoice(reversed_body, supersedes=1)])
    assert reversal.status == CREATED and reversal.version == 2
    # A reversal is final: nothing may supersede it.
    corrected = mutated(bodies[1], _set(["checkCode"], "AAAAAA"))
    (after,), _ = await hub.documents.submit(HOSPITAL, [invoice(corrected, supersedes=2)])
    assert after.status == REJECTED and after.error and after.error.code == "CONFLICT"

    assert await ledger_size(hub) == 5
    assert await count_documents(hub) == 5


async def test_concurrent_submissions_of_one_new_document_create_it_once(started: Hub) -> None:
    hub = started
    body = demo_invoices(1, seed=14)[0]
    (a, _), (b, _) = await asyncio.gather(
        hub.documents.submit(HOSPITAL, [invoice(body)]),
        hub.documents.submit(HOSPITAL, [invoice(body)]),
    )
    assert sorted([a[0].status, b[0].status]) == [CREATED, DUPLICATE]
    assert (a[0].leaf_index, a[0].leaf_hash) == (b[0].leaf_index, b[0].leaf_hash)
    # The same document twice within one batch is also one leaf.
    other = demo_invoices(2, seed=14)[1]
    twice, _ = await hub.documents.submit(HOSPITAL, [invoice(other), invoice(other)])
    assert [r.status for r in twice] == [CREATED, DUPLICATE]
    assert twice[0].leaf_index == twice[1].leaf_index
    assert await ledger_size(hub) == 2 == await count_documents(hub)


async def test_a_group_of_large_batches_finds_every_stored_version(started: Hub) -> None:
    # Batches submitted together are integrated as one group, whose stored versions are
    # read in chunks of ids: repeats from before, from another batch of the group and
    # conflicting bodies must each be told apart across the chunks.
    hub = started
    bodies = demo_invoices(1500, seed=16)
    stored, _ = await hub.documents.submit(HOSPITAL, [invoice(b) for b in bodies[:600]])
    changed = mutated(bodies[599], _set(["checkCode"], "ZZZZZZ"))
    first = [invoice(b) for b in bodies[300:900]]  # 300 stored, 300 new
    second = [invoice(b) for b in bodies[800:1500]]  # 100 shared with `first`, 600 new
    (a, _), (b, _), (c, _) = await asyncio.gather(
        hub.documents.submit(HOSPITAL, first),
        hub.documents.submit(HOSPITAL, second),
        hub.documents.submit(HOSPITAL, [invoice(changed)]),
    )
    assert [r.status for r in a[:300]] == [DUPLICATE] * 300
    assert [r.leaf_index for r in a[:300]] == [r.leaf_index for r in stored[300:600]]
    assert [r.status for r in a[300:]] == [CREATED] * 300
    shared = {r.id: r.leaf_index for r in a[500:]}
    assert {r.id: r.leaf_index for r in b[:100]} == shared
    assert {r.status for r in b[100:]} == {CREATED}
    assert c[0].status == REJECTED and c[0].error and c[0].error.code == "CONFLICT"
    assert await ledger_size(hub) == 1500 == await count_documents(hub)


async def test_issuer_signatures(started: Hub) -> None:
    hub = started
    signed = "hosp-signed"
    await add_institution(hub.db, signed, "Signing Hospital", "hospital", signatures_required=True)
    key, stranger = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    await add_issuer_key(hub.db, signed, raw_public(key))
    bodies = demo_invoices(6, seed=15)

    results, _ = await hub.documents.submit(
        signed,
        [
            invoice(bodies[0]),
            invoice(bodies[1], signature=sign(stranger, bodies[1])),
            invoice(bodies[2], signature=sign(key, bodies[3])),  # another body's signature
            invoice(bodies[3], signature="not base64!"),
            invoice(bodies[4], signature=sign(key, bodies[4])),
        ],
    )
    assert [r.status for r in results] == [REJECTED] * 4 + [CREATED]
    assert [r.error.code for r in results[:4] if r.error] == ["BAD_SIGNATURE"] * 4
    assert await count_documents(hub) == 1 == await ledger_size(hub)

    # An institution without signatures_required may still sign, but only with its key.
    (unsigned, wrong), _ = await hub.documents.submit(
        HOSPITAL,
        [invoice(bodies[5]), invoice(bodies[0], signature=sign(key, bodies[0]))],
    )
    assert unsigned.status == CREATED
    assert wrong.status == REJECTED and wrong.error and wrong.error.code == "BAD_SIGNATURE"


async def test_unknown_or_non_hospital_issuers_are_refused(started: Hub) -> None:
    hub = started
    await add_institution(hub.db, "agency-x", "Some Agency", "agency")
    body = demo_invoices(1, seed=16)[0]
    for issuer in ("nobody", "agency-x"):
        with pytest.raises(NotFound):
            await hub.documents.submit(issuer, [invoice(body)])
    assert await ledger_size(hub) == 0


async def test_erasure_keeps_the_leaf_and_its_proof(started: Hub) -> None:
    hub = started
    bodies = demo_invoices(4, seed=17)
    results, _ = await hub.documents.submit(HOSPITAL, [invoice(b) for b in bodies])
    target = results[1]
    await erase_document(hub.db, HOSPITAL, INVOICE, target.id, 1)

    (stored,) = await document_versions(hub.db, INVOICE, target.id, HOSPITAL)
    assert stored.status == "erased" and stored.erased
    assert stored.body is None and stored.body_text is None and stored.salt is None
    assert stored.leaf_index == target.leaf_index
    assert leaf_hash(stored.leaf_data) == target.leaf_hash
    # The body is gone from the row itself, not only hidden by the read path.
    rows = await hub.db.sql.fetch("SELECT body, salt FROM documents WHERE doc_id = ?", [target.id])
    assert [tuple(r) for r in rows] == [(None, None)]

    head = await read_checkpoint(hub.db.sql)
    assert head is not None and head.size == 4
    await assert_included(hub, target, head)
    report = await verify_ledger(hub.db, hub.signer.verifier, hub.settings.origin)
    assert (report.size, report.documents) == (4, 4)

    (resubmitted,), _ = await hub.documents.submit(HOSPITAL, [invoice(bodies[1])])
    assert resubmitted.status == REJECTED
    assert resubmitted.error is not None and resubmitted.error.code == "CONFLICT"
    with pytest.raises(NotFound):
        await erase_document(hub.db, HOSPITAL, INVOICE, target.id, 2)


async def test_write_times_read_back_as_the_moment_of_writing(started: Hub) -> None:
    before = datetime.now(UTC)
    (result,), head = await started.documents.submit(HOSPITAL, [invoice(demo_invoices(1)[0])])
    after = datetime.now(UTC)
    document = await Document.get(leaf_index=result.leaf_index)
    checkpoint = await LedgerCheckpoint.get(size=head.size)
    for moment in (document.created_at, checkpoint.signed_at):
        assert moment.utcoffset() == timedelta(0)
        assert before - timedelta(seconds=1) <= moment <= after + timedelta(seconds=1)
