"""The GraphQL bench's ledger: `entries` documents built in bulk, then real invoices.

As a hospital's history would be: document rows whose leaves are appended through
hub.ledger.storage in chunks (one signed checkpoint per chunk), then a few thousand
invoices through the DocumentService, as an adapter would send them; and the tokens and
document ids the load generators ask with (World).
"""

import random
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from hashlib import sha256
from typing import Any

from bench.measure import Ticker, progress

BULK_CHUNK = 50_000
BULK_BILL_CODE = "46990126"
AGENCY = "bench-agency"
_INSERT = (
    "INSERT INTO documents (issuer, type, doc_id, version, supersedes, status, subject, body,"
    " salt, digest, issued_at, leaf_index, created_at)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)


@dataclass
class World:
    """What the load generators need: the server, tokens and ids to ask for."""

    url: str = ""
    hospital: str = ""
    agency: str = ""
    doc_ids: list[str] = field(default_factory=list)
    build_s: float = 0.0
    entries: int = 0


async def _bulk(hub: Any, total: int) -> None:
    """`total` valid invoices of the first demo hospital: rows and leaves, a transaction a chunk."""
    from hub.documents.canonical import body_digest, canonical_json, document_leaf_data
    from hub.documents.demo_data import DEMO_HOSPITALS, demo_invoices
    from hub.documents.invoice import INVOICE_TYPE
    from hub.ledger.storage import append_entries, read_checkpoint, store_checkpoint

    issuer = DEMO_HOSPITALS[0].id
    template = demo_invoices(1, seed=999)[0]
    template["billCode"] = BULK_BILL_CODE
    body = canonical_json(template)
    number = f'"billNumber":"{template["billNumber"]}"'.encode()
    assert body.count(number) == 1
    issued_at, subject = template["issuedAt"], template["patientRef"]
    ticker = Ticker("bulk ledger", total)
    done = 0
    while done < total:
        n = min(BULK_CHUNK, total - done)
        async with hub.db.transaction() as sql:
            head = await read_checkpoint(sql)
            assert head is not None  # Hub.start signed the empty tree
            size = head.size
            entries: list[bytes] = []
            rows: list[tuple[Any, ...]] = []
            now = datetime.now(UTC)
            for i in range(done, done + n):
                bill = f"{i:010d}"
                text = body.replace(number, b'"billNumber":"%s"' % bill.encode())
                salt = sha256(b"salt-%d" % i).digest()
                digest = body_digest(salt, text)
                doc_id = f"{BULK_BILL_CODE}-{bill}"
                entries.append(
                    document_leaf_data(
                        issuer=issuer,
                        type=INVOICE_TYPE,
                        id=doc_id,
                        version=1,
                        digest=digest,
                        issued_at=issued_at,
                    )
                )
                rows.append(
                    (
                        issuer,
                        INVOICE_TYPE,
                        doc_id,
                        1,
                        None,
                        "issued",
                        subject,
                        text.decode(),
                        salt,
                        digest,
                        issued_at,
                        size + len(rows),
                        now,
                    )
                )
            await sql.execute_many(_INSERT, rows)
            new_size, root, _ = await append_entries(sql, size, entries)
            await store_checkpoint(sql, hub.signer, hub.settings.origin, new_size, root)
        done += n
        ticker.tick(done)


async def build(settings: Any, entries: int, real: int) -> World:
    """Migrate, register a bulk hospital, the demo hospitals and an agency with a full grant,
    write `entries - real` bulk documents and submit `real` invoices through the service."""
    from hub.access.grants import add_grant
    from hub.cli import issue_token
    from hub.documents.demo_data import DEMO_HOSPITALS, demo_invoices
    from hub.documents.invoice import INVOICE_TYPE, invoice_document_id
    from hub.documents.service import DocumentInput
    from hub.institutions import add_institution
    from hub.keys import create_log_key
    from hub.services import Hub

    started = time.perf_counter()
    create_log_key(settings.log_key_path, settings.origin)
    hub = await Hub.start(settings)
    try:
        hospital = DEMO_HOSPITALS[0]
        await add_institution(hub.db, hospital.id, hospital.name, "hospital")
        await add_institution(hub.db, AGENCY, "Bench Medical Insurance Bureau", "agency")
        await add_grant(
            hub,
            agency=AGENCY,
            type=INVOICE_TYPE,
            issuers=["*"],
            view="full",
            purpose="bench",
            until=None,
        )
        await _bulk(hub, entries - real)
        if hub.db.postgres:
            # What autovacuum does to a table after a bulk load: without it every index
            # lookup first visits and hint-bits the fresh heap pages (~1 ms each here).
            await hub.db.sql.execute("VACUUM ANALYZE documents")
        ids: list[str] = []
        invoices = demo_invoices(real, seed=0)
        for start in range(0, real, 500):
            docs = [
                DocumentInput(type=INVOICE_TYPE, id=invoice_document_id(b), body=b)
                for b in invoices[start : start + 500]
            ]
            results, _ = await hub.documents.submit(hospital.id, docs)
            assert all(r.status == "CREATED" for r in results), results[0]
            ids.extend(r.id for r in results)
        rng = random.Random(2)
        bulk = [f"{BULK_BILL_CODE}-{i:010d}" for i in rng.sample(range(entries - real), 1000)]
    finally:
        await hub.stop()
    progress(f"    ledger of {entries:,} entries built in {time.perf_counter() - started:.0f} s")
    return World(
        hospital=issue_token(settings, "hospital", "bench@his", hospital.id, 86400),
        agency=issue_token(settings, "agency", "bench@agency", AGENCY, 86400),
        doc_ids=ids[:1000] + bulk,
        build_s=time.perf_counter() - started,
        entries=entries,
    )
