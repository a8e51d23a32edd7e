"""The add-checkpoint API: every status code of DESIGN.md "Witnesses", and the state."""

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from hub.ledger.checkpoint import Checkpoint, format_checkpoint
from hub.ledger.cosignature import generate_cosigner_key, verify_cosignatures
from hub.ledger.note import Signer, b64encode, generate_signer_key, parse_signer_key, sign_note
from hub.ledger.tree import EMPTY_ROOT, consistency_proof, leaf_hash, root_from_leaf_hashes
from hub.witness.server import Witness, create_witness_app, parse_request
from hub.witness.state import WitnessState

ORIGIN = "log.example/x"


class Log:
    """A log in memory: leaves, and checkpoints signed with its key."""

    def __init__(self, signer: Signer, leaves: list[bytes]) -> None:
        self.signer = signer
        self.hashes = [leaf_hash(x) for x in leaves]

    def note(self, size: int) -> str:
        root = root_from_leaf_hashes(self.hashes[:size]) if size else EMPTY_ROOT
        return sign_note(format_checkpoint(Checkpoint(self.signer.name, size, root)), self.signer)

    def body(self, old: int, size: int, proof: list[bytes] | None = None) -> bytes:
        if proof is None:
            proof = consistency_proof(self.hashes[:size], old) if 0 < old < size else []
        lines = "".join(b64encode(h) + "\n" for h in proof)
        return f"old {old}\n{lines}\n{self.note(size)}".encode()


@pytest.fixture
def log_signer() -> Signer:
    return parse_signer_key(generate_signer_key(ORIGIN)[0])


@pytest.fixture
def witness(tmp_path: Path, log_signer: Signer) -> Witness:
    return Witness(
        generate_cosigner_key("w.example"), [log_signer.verifier], WitnessState(tmp_path / "w.db")
    )


@pytest.fixture
async def client(witness: Witness) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=create_witness_app(witness))
    async with httpx.AsyncClient(transport=transport, base_url="http://w.test") as c:
        yield c


async def _add(client: httpx.AsyncClient, body: bytes) -> httpx.Response:
    return await client.post("/add-checkpoint", content=body)


async def test_status_codes(
    client: httpx.AsyncClient, witness: Witness, log_signer: Signer
) -> None:
    log = Log(log_signer, [b"%d" % i for i in range(20)])
    fork = Log(log_signer, [b"fork %d" % i for i in range(20)])
    stranger = Log(parse_signer_key(generate_signer_key(ORIGIN)[0]), [b"0"])

    ok = await _add(client, log.body(0, 5))
    assert ok.status_code == 200
    found = verify_cosignatures(log.note(5) + ok.text, [witness.signer.verifier])
    assert [c.witness for c in found] == [witness.signer.verifier]

    conflict = await _add(client, log.body(3, 8))
    assert (conflict.status_code, conflict.text) == (409, "5\n")
    assert conflict.headers["content-type"].startswith("text/x.tlog.size")
    # Its own size with another root: 409 with its size (DESIGN.md), never a cosignature.
    same_size = await _add(client, fork.body(5, 5))
    assert (same_size.status_code, same_size.text) == (409, "5\n")
    assert (
        await _add(client, fork.body(5, 9, consistency_proof(log.hashes[:9], 5)))
    ).status_code == 422
    assert (await _add(client, log.body(5, 9, [bytes(32)]))).status_code == 422
    assert (await _add(client, log.body(9, 5))).status_code == 400
    assert (await _add(client, stranger.body(5, 1))).status_code == 403
    assert (await _add(client, b"old 0\n\nother.example/y\n1\n" + b"x" * 44)).status_code == 400
    unknown_origin = Log(parse_signer_key(generate_signer_key("other.example/y")[0]), [b"0"])
    assert (await _add(client, unknown_origin.body(0, 1))).status_code == 404
    assert (await _add(client, b"old 01\n\n" + log.note(5).encode())).status_code == 400

    assert (await _add(client, log.body(5, 12))).status_code == 200
    assert witness.state.latest(ORIGIN).size == 12  # type: ignore[union-attr]
    again = await _add(client, log.body(12, 12))  # the same checkpoint again: cosigned again
    assert again.status_code == 200


async def test_a_fresh_witness_and_the_empty_tree(
    client: httpx.AsyncClient, log_signer: Signer
) -> None:
    log = Log(log_signer, [b"a", b"b"])
    bad_empty = sign_note(format_checkpoint(Checkpoint(ORIGIN, 0, bytes(32))), log_signer)
    assert (await _add(client, f"old 0\n\n{bad_empty}".encode())).status_code == 422
    assert (await _add(client, log.body(0, 2, [bytes(32)]))).status_code == 422
    assert (await _add(client, log.body(0, 0))).status_code == 200
    assert (await _add(client, log.body(0, 2))).status_code == 200


def test_the_specs_example_request_parses() -> None:
    # c2sp.org/tlog-witness, "add-checkpoint", example request body.
    body = (
        "old 20852014\n"
        "PlRNCrwHpqhGrupue0L7gxbjbMiKA9temvuZZDDpkaw=\n"
        "jrJZDmY8Y7SyJE0MWLpLozkIVMSMZcD5kvuKxPC3swk=\n"
        "5+pKlUdi2LeF/BcMHBn+Ku6yhPGNCswZZD1X/6QgPd8=\n"
        "/6WVhPs2CwSsb5rYBH5cjHV/wSmA79abXAwhXw3Kj/0=\n"
        "\n"
        "example.com/behind-the-sofa\n"
        "20852163\n"
        "CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n"
        "\n"
        "— example.com/behind-the-sofa Az3grlgtzPICa5OS8npVmf1Myq/5IZniMp+ZJurmRDeOoRDe4URYN7u5"
        "/Zhcyv2q1gGzGku9nTo+zyWE+xeMcTOAYQ8=\n"
        "— example.com/behind-the-sofa opLqBQsREYCgu6xQkYQwJr9fo45a62DN9EdmHXnZdXNqlcVGlCum2Wks"
        "+49/V6267UEjw6QUXTS5Rovnzv++qbSzm9Q=\n"
    )
    req = parse_request(body.encode())
    assert req.old_size == 20852014 and len(req.proof) == 4
    assert req.note.startswith("example.com/behind-the-sofa\n20852163\n")


async def test_state_survives_a_restart(tmp_path: Path, log_signer: Signer) -> None:
    log = Log(log_signer, [b"%d" % i for i in range(4)])
    signer = generate_cosigner_key("w.example")
    first = Witness(signer, [log_signer.verifier], WitnessState(tmp_path / "w.db"))
    first.add_checkpoint(parse_request(log.body(0, 3)))
    first.state.close()
    second = Witness(signer, [log_signer.verifier], WitnessState(tmp_path / "w.db"))
    assert second.state.latest(ORIGIN).size == 3  # type: ignore[union-attr]
