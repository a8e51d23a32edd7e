"""A witness SIGKILLed at several points and restarted never cosigns two inconsistent trees.

Two logs under one key (an honest one and a fork that differs from leaf 0) race for one
witness process from eight threads; each round kills it once some answers have arrived,
so kills land before, inside and after its transactions. Every cosignature it ever
handed out must be for one tree, and its state after each restart must be on that tree
and no smaller than any cosignature it gave.
"""

import hashlib
import random
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from hub.ledger.checkpoint import Checkpoint, format_checkpoint, parse_checkpoint
from hub.ledger.note import (
    b64encode,
    format_verifier_key,
    generate_signer_key,
    parse_signer_key,
    sign_note,
)
from hub.ledger.tree import consistency_proof, leaf_hash, root_from_leaf_hashes
from tests.witness.processes import WitnessProcess, own_cosignature_check

pytestmark = pytest.mark.slow

ORIGIN = "crash.example/log"
SIZE = 64
KILL_AFTER = [0, 1, 3, 6, 10, 15]  # answers received before the SIGKILL, one round each


def test_a_killed_witness_never_cosigns_two_inconsistent_checkpoints(tmp_path: Path) -> None:
    signer = parse_signer_key(generate_signer_key(ORIGIN)[0])
    trees = {
        name: [leaf_hash(b"%s %d" % (name.encode(), i)) for i in range(SIZE)]
        for name in ("honest", "fork")
    }
    roots = {
        (name, size): root_from_leaf_hashes(hashes[:size])
        for name, hashes in trees.items()
        for size in range(1, SIZE + 1)
    }
    notes = {
        key: sign_note(format_checkpoint(Checkpoint(ORIGIN, key[1], root)), signer)
        for key, root in roots.items()
    }
    witness = WitnessProcess(tmp_path / "w", "w.example", format_verifier_key(signer.verifier))
    cosigned: list[tuple[str, int]] = []
    answers = threading.Condition()
    answered = 0

    def post(client: httpx.Client, body: str) -> httpx.Response:
        nonlocal answered
        response = client.post(f"{witness.url}/add-checkpoint", content=body)
        with answers:
            answered += 1
            answers.notify_all()
        return response

    def offer(seed: int) -> None:
        rng = random.Random(seed)
        name = rng.choice(["honest", "fork"])
        size = rng.randint(1, SIZE)
        note = notes[(name, size)]
        try:
            with httpx.Client(timeout=10.0) as client:
                response = post(client, f"old 0\n\n{note}")
                if response.status_code == 409:
                    old = int(response.text)
                    if old > size:
                        return
                    proof = consistency_proof(trees[name][:size], old) if old else []
                    lines = "".join(b64encode(h) + "\n" for h in proof)
                    response = post(client, f"old {old}\n{lines}\n{note}")
                if response.status_code == 200:
                    assert own_cosignature_check(note + response.text, [witness.vkey])
                    cosigned.append((name, size))
        except httpx.TransportError:
            pass  # killed mid-request: no answer, no cosignature

    def state() -> tuple[str, int] | None:
        with httpx.Client(timeout=10.0) as client:
            origin = hashlib.sha256(ORIGIN.encode()).hexdigest()
            got = client.get(f"{witness.url}/{origin}/checkpoint")
        if got.status_code == 404:
            return None
        cp = parse_checkpoint(got.text[: got.text.rfind("\n\n") + 1])
        name = next(n for (n, s), root in roots.items() if s == cp.size and root == cp.root)
        return name, cp.size

    for round_, kill_after in enumerate(KILL_AFTER):
        witness.start()
        before = state()
        if cosigned:  # what it handed out before the last kill is still its state
            assert before is not None and before[0] == cosigned[0][0]
            assert before[1] >= max(s for n, s in cosigned)
        with ThreadPoolExecutor(8) as pool:
            with answers:
                start = answered
            futures = [pool.submit(offer, round_ * 100 + i) for i in range(16)]
            with answers:
                target = start + kill_after
                answers.wait_for(lambda target=target: answered >= target, timeout=60)  # type: ignore[misc]
            witness.kill()
            for future in futures:
                future.result()
    witness.start()
    final = state()
    witness.kill()
    assert cosigned, "the witness never cosigned anything: the test proved nothing"
    assert {name for name, _ in cosigned} == {cosigned[0][0]}
    assert final is not None and final[0] == cosigned[0][0]
    assert final[1] >= max(s for _, s in cosigned)
