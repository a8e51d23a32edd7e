"""The durable outbox: its SQLite file, idempotent keys, digests and states."""

import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from adapters.outbox import DeliveryState, NewDocument, Outbox, document_key
from hub.documents.canonical import canonical_json
from hub.documents.demo_data import demo_invoices
from hub.documents.invoice import INVOICE_TYPE, invoice_document_id


def doc(body: dict[str, Any], key: str | None = None, **extra: Any) -> NewDocument:
    doc_id = invoice_document_id(body)
    return NewDocument(
        key=key or document_key(INVOICE_TYPE, doc_id, body),
        type=INVOICE_TYPE,
        id=doc_id,
        body=body,
        source="test",
        issued_at=body["issuedAt"],
        **extra,
    )


@pytest.fixture
def outbox(tmp_path: Path) -> Iterator[Outbox]:
    box = Outbox(tmp_path / "var" / "outbox.db")
    yield box
    box.close()


def test_the_file_is_wal_and_fully_synchronous(outbox: Outbox) -> None:
    db = sqlite3.connect(outbox.path)
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    # synchronous is per connection: ask ours
    assert outbox._db.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    db.close()


def test_enqueue_is_idempotent_by_key_and_refuses_reused_keys(outbox: Outbox) -> None:
    a, b = demo_invoices(2, seed=1)
    first = outbox.enqueue([doc(a, "hl7:HIS|H|1"), doc(b, "hl7:HIS|H|2")])
    assert [r.status for r in first] == ["new", "new"]
    again = outbox.enqueue([doc(a, "hl7:HIS|H|1"), doc(b, "hl7:HIS|H|1")])
    assert [r.status for r in again] == ["duplicate", "conflict"]
    assert again[0].seq == first[0].seq == again[1].seq
    assert outbox.counts().queued == 2
    # the same content with another supersedes is other content
    assert outbox.enqueue([doc(a, "hl7:HIS|H|1", supersedes=1)])[0].status == "conflict"


def test_the_content_digest_is_that_of_the_canonical_content_object(outbox: Outbox) -> None:
    # Outbox files written before keep working: the digest a repeat is compared with is
    # still SHA-256 of JCS({type, id, body[, supersedes]}), however it is computed.
    import hashlib

    a, b = demo_invoices(2, seed=4)
    a["issuerName"] = '引号"\\ and \u2028'
    for body, extra in ((a, {}), (b, {"supersedes": 3})):
        item = doc(body, **extra)
        outbox.enqueue([item])
        content: dict[str, Any] = {"type": item.type, "id": item.id, "body": body, **extra}
        want = hashlib.sha256(canonical_json(content)).hexdigest()
        stored = sqlite3.connect(outbox.path).execute(
            "SELECT content_digest FROM documents WHERE key = ?", (item.key,)
        )
        assert stored.fetchone()[0] == want


def test_document_keys_depend_on_the_body() -> None:
    a, b = demo_invoices(2)
    assert document_key(INVOICE_TYPE, "x", a) == document_key(INVOICE_TYPE, "x", dict(a))
    assert document_key(INVOICE_TYPE, "x", a) != document_key(INVOICE_TYPE, "x", b)


def test_batches_come_oldest_first_with_canonical_bodies(outbox: Outbox) -> None:
    bodies = demo_invoices(7, seed=2)
    outbox.enqueue([doc(body) for body in bodies])
    batch = outbox.next_batch(5)
    assert [item.id for item in batch] == [invoice_document_id(b) for b in bodies[:5]]
    assert batch[0].body == canonical_json(bodies[0])
    assert batch[0].issued_at == bodies[0]["issuedAt"]
    outbox.mark_delivered([(batch[0].seq, "CREATED", 0), (batch[1].seq, "DUPLICATE", 0)])
    outbox.mark_dead([(batch[2].seq, "CONFLICT", "a different body is anchored")])
    assert [item.id for item in outbox.next_batch(100)] == [
        invoice_document_id(b) for b in bodies[3:]
    ]
    counts = outbox.counts()
    assert (counts.queued, counts.delivered, counts.rejected, counts.refused) == (4, 2, 1, 0)
    record = outbox.document(batch[0].key)
    assert record is not None
    assert (record["state"], record["result"], record["leafIndex"]) == ("delivered", "CREATED", 0)


def test_settled_documents_stay_settled(outbox: Outbox) -> None:
    (body,) = demo_invoices(1)
    (entry,) = outbox.enqueue([doc(body)])
    outbox.mark_dead([(entry.seq, "BAD_SIGNATURE", "bad")])
    outbox.mark_delivered([(entry.seq, "CREATED", 3)])
    assert outbox.counts().rejected == 1
    assert outbox.requeue([entry.seq]) == 1
    assert outbox.counts().queued == 1
    outbox.mark_delivered([(entry.seq, "CREATED", 3)])
    assert outbox.requeue() == 0
    assert outbox.counts().delivered == 1


def test_everything_survives_reopening(tmp_path: Path) -> None:
    path = tmp_path / "outbox.db"
    bodies = demo_invoices(3, seed=3)
    with Outbox(path) as box:
        entries = box.enqueue([doc(body) for body in bodies])
        box.mark_delivered([(entries[0].seq, "CREATED", 9)])
        box.refuse(key="hl7:A|B|7", source="mllp", code="AE:102", reason="FT1[1]-11: bad")
        box.set_delivery_state(DeliveryState("auth", "token refused", "2026-01-01T00:00:00Z", 3))
    with Outbox(path) as box:
        counts = box.counts()
        assert (counts.queued, counts.delivered, counts.refused) == (2, 1, 1)
        state = box.delivery_state()
        assert state is not None
        assert (state.kind, state.failures) == ("auth", 3)
        assert box.enqueue([doc(bodies[1])])[0].status == "duplicate"


def test_refusals_are_dead_letters_without_the_raw_message(outbox: Outbox) -> None:
    raw = "MSH|^~\\&|...PID|1||P-1||符海琼".encode()
    outbox.refuse(key="hl7:HIS|H|9", source="mllp", code="AE:100", reason="ZEB: missing", raw=raw)
    outbox.refuse(key="hl7:HIS|H|9", source="mllp", code="AE:100", reason="ZEB: missing", raw=raw)
    outbox.refuse(key="", source="mllp", code="AR:100", reason="not framed")
    outbox.refuse(key="", source="mllp", code="AR:100", reason="not framed")
    letters = outbox.dead_letters()
    assert [(x.kind, x.key, x.times) for x in letters if x.key] == [("refused", "hl7:HIS|H|9", 2)]
    assert sum(1 for x in letters if not x.key) == 2  # no key: nothing to merge on
    assert all("符海琼" not in repr(x) for x in letters)
    # the raw message is kept in the local file only, for the operator
    db = sqlite3.connect(outbox.path)
    assert db.execute("SELECT raw FROM refusals WHERE key = 'hl7:HIS|H|9'").fetchone()[0] == raw
    db.close()
    assert outbox.counts().refused == 3


def test_a_key_accepted_later_settles_its_refusal(outbox: Outbox) -> None:
    (body,) = demo_invoices(1)
    outbox.refuse(key="hl7:HIS|H|5", source="mllp", code="AE:102", reason="ZEB-6: bad")
    assert outbox.counts().refused == 1
    outbox.enqueue([doc(body, "hl7:HIS|H|5")])
    assert outbox.counts().refused == 0
    assert outbox.dead_letters() == []


def test_rejected_and_refused_are_listed_together(outbox: Outbox) -> None:
    bodies = demo_invoices(2, seed=8)
    entries = outbox.enqueue([doc(body) for body in bodies])
    outbox.mark_dead([(entries[1].seq, "BAD_SIGNATURE", "signature does not verify")])
    outbox.refuse(key="k", source="csv-file", code="value", reason="row 3: bad amount")
    kinds = {(x.kind, x.code, x.reason, x.document_id) for x in outbox.dead_letters()}
    assert kinds == {
        ("rejected", "BAD_SIGNATURE", "signature does not verify", invoice_document_id(bodies[1])),
        ("refused", "value", "row 3: bad amount", None),
    }
    assert outbox.counts().dead == 2


def test_concurrent_enqueues_store_each_key_once(outbox: Outbox) -> None:
    bodies = demo_invoices(40, seed=9)
    statuses: list[str] = []
    lock = threading.Lock()

    def worker() -> None:
        for body in bodies:
            (result,) = outbox.enqueue([doc(body)])
            with lock:
                statuses.append(result.status)

    threads = [threading.Thread(target=worker) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert statuses.count("new") == 40
    assert statuses.count("duplicate") == 5 * 40
    assert outbox.counts().queued == 40


def test_a_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "outbox.db"
    Outbox(path).close()
    db = sqlite3.connect(path)
    db.execute("PRAGMA user_version = 99")
    db.close()
    with pytest.raises(RuntimeError, match="newer"):
        Outbox(path)


def test_a_failed_transaction_leaves_nothing(outbox: Outbox) -> None:
    good, bad = demo_invoices(2, seed=4)
    broken = dict(bad, amount=1.5)  # floats have no canonical form
    with pytest.raises(Exception, match="float"):
        outbox.enqueue([doc(good), doc(broken, key="k")])
    assert outbox.counts().queued == 0
    assert outbox.enqueue([doc(good)])[0].status == "new"
