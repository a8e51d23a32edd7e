"""A claim's leaves hold no amount, agency or reference; the claim's holder proves them
with the salt; `hub ledger verify` names a claim row that no longer matches its leaf."""

import base64
import hashlib
import json
from pathlib import Path
from typing import Any

import rfc8785

from hub.ledger.storage import read_leaf_data
from tests.claims.conftest import HOSP, INSURER_A, RELEASE, agency, claim
from tests.ledger.appender import hub_ledger_verify
from tests.schema.conftest import World

REFERENCE = "A-CASE-31337"
PROOF = (
    "query($id: ID!) { claims(documentId: $id) { id inclusionProof { leafIndex leafData"
    " leafHash } } }"
)


def digest(salt: str, record: dict[str, Any]) -> str:
    """The holder's own computation, from DESIGN.md and docs/claims.md alone."""
    raw = hashlib.sha256(base64.b64decode(salt) + rfc8785.dumps(record)).digest()
    return base64.b64encode(raw).decode()


async def test_the_leaf_shows_nothing_and_the_holder_proves_it(claims_world: World) -> None:
    world = claims_world
    body = world.docs[HOSP][0]
    a = agency(world, INSURER_A)
    booked = (await claim(world, a, body, "4.20", REFERENCE))["data"]["claimDocument"]

    leaf = await read_leaf_data(world.hub.db, booked["leafIndex"])
    for secret in ("4.20", INSURER_A, REFERENCE, body["billNumber"], body["patientRef"]):
        assert secret.encode() not in leaf
    shown = json.loads(leaf)
    assert set(shown) == {"v", "kind", "action", "digest", "at"}
    assert (shown["kind"], shown["action"], shown["at"]) == ("claim", "claim", booked["at"])
    record = {
        "v": 1,
        "claim": booked["id"],
        "action": "claim",
        "document": {
            "issuer": booked["issuer"],
            "type": "medical_invoice",
            "id": booked["documentId"],
            "version": booked["version"],
        },
        "agency": booked["agency"],
        "amount": booked["amount"],
        "reference": booked["reference"],
        "at": booked["at"],
    }
    assert shown["digest"] == digest(booked["salt"], record)
    # Another amount, or another agency, does not prove.
    assert shown["digest"] != digest(booked["salt"], {**record, "amount": "4.21"})

    proof = (await world.gql(PROOF, {"id": booked["documentId"]}, a))["data"]["claims"][0]
    assert base64.b64decode(proof["inclusionProof"]["leafData"]) == leaf
    expected_hash = base64.b64encode(hashlib.sha256(b"\x00" + leaf).digest()).decode()
    assert proof["inclusionProof"]["leafHash"] == expected_hash

    released = await world.gql(RELEASE, {"id": booked["id"], "reason": "duplicate case"}, a)
    undone = released["data"]["releaseClaim"]
    release_leaf = json.loads(await read_leaf_data(world.hub.db, undone["releaseLeafIndex"]))
    assert release_leaf["action"] == "release" and "duplicate" not in json.dumps(release_leaf)
    release_record = {
        "v": 1,
        "claim": booked["id"],
        "action": "release",
        "agency": INSURER_A,
        "reason": "duplicate case",
        "at": undone["releasedAt"],
    }
    assert release_leaf["digest"] == digest(booked["salt"], release_record)


async def test_ledger_verify_names_a_tampered_claim_row(
    claims_world: World, database_url: str, tmp_path: Path
) -> None:
    world = claims_world
    a = agency(world, INSURER_A)
    kept = (await claim(world, a, world.docs[HOSP][0], "1.00", "A-1"))["data"]["claimDocument"]
    undone = (await claim(world, a, world.docs[HOSP][1], "2.00", "A-2"))["data"]["claimDocument"]
    await world.gql(RELEASE, {"id": undone["id"], "reason": "withdrawn"}, a)
    key = tmp_path / "log.key"

    clean = hub_ledger_verify(database_url, key, tmp_path)
    assert clean.returncode == 0, clean.stdout + clean.stderr

    db = world.hub.db
    for column, value, claim_id in [
        ("amount", "1.01", kept["id"]),
        ("reference", "A-9", kept["id"]),
        ("agency", "ins-b", kept["id"]),
        ("release_reason", "never mind", undone["id"]),
        ("status", "active", undone["id"]),
    ]:
        rows = await db.sql.fetch(f"SELECT {column} FROM claims WHERE id = ?", [claim_id])
        await db.sql.execute(f"UPDATE claims SET {column} = ? WHERE id = ?", [value, claim_id])
        found = hub_ledger_verify(database_url, key, tmp_path)
        assert found.returncode != 0, column
        assert f"claims row id={claim_id}" in found.stdout + found.stderr, (column, found)
        await db.sql.execute(f"UPDATE claims SET {column} = ? WHERE id = ?", [rows[0][0], claim_id])
    assert hub_ledger_verify(database_url, key, tmp_path).returncode == 0
