"""Acceptance of issue 17 with real processes: three witnesses, a hub, a monitor.

Each test starts `hub witness serve` processes, a `hub serve` with a 2-of-3 policy on
them, and waits on what the processes report (the hub logs each cosignature it stores).
"""

import shutil
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from hub.documents.demo_data import demo_invoices
from hub.keys import load_log_signer
from hub.ledger.checkpoint import Checkpoint, format_checkpoint, parse_checkpoint
from hub.ledger.note import b64encode, format_verifier_key, sign_note
from hub.ledger.receipt import Receipt, format_receipt
from hub.ledger.tree import consistency_proof, inclusion_proof, leaf_hash, root_from_leaf_hashes
from tests.deploy.server import DEMO_HOSPITAL_IDS, ORIGIN, Deployment, hospital_of, submit
from tests.witness.processes import (
    HubProcess,
    Proc,
    WitnessProcess,
    hub_cli,
    own_cosignature_check,
    write_policy,
)

pytestmark = pytest.mark.slow

HOSPITAL = DEMO_HOSPITAL_IDS[0]


@pytest.fixture
async def deployment(tmp_path: Path) -> Deployment:
    deployment = Deployment(database_url=f"sqlite://{tmp_path}/hub.db", root=tmp_path)
    await deployment.prepare()
    return deployment


@pytest.fixture
def log_vkey(deployment: Deployment) -> str:
    return format_verifier_key(deployment.verifier)


@pytest.fixture
def witnesses(tmp_path: Path, log_vkey: str) -> Iterator[list[WitnessProcess]]:
    started = [
        WitnessProcess(tmp_path / f"w{i}", f"w{i}.agency.example", log_vkey) for i in range(3)
    ]
    for w in started:
        w.start()
    yield started
    for w in started:
        if w.proc is not None:
            w.proc.kill()


@pytest.fixture
def policy(tmp_path: Path, log_vkey: str, witnesses: list[WitnessProcess]) -> Path:
    return write_policy(tmp_path / "policy.txt", log_vkey, witnesses, 2)


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=30.0) as client:
        yield client


def _invoices(count: int, seed: int) -> list[dict]:  # type: ignore[type-arg]
    mine = [i for i in demo_invoices(count * 20, seed=seed) if hospital_of(i) == HOSPITAL]
    assert len(mine) >= count
    return mine[:count]


async def _submit(
    http: httpx.AsyncClient, hub: HubProcess, d: Deployment, n: int, seed: int
) -> int:
    payload = await submit(http, hub.base, d.token(HOSPITAL), _invoices(n, seed))
    assert {r["status"] for r in payload["results"]} == {"CREATED"}
    return int(payload["checkpoint"]["treeSize"])


async def _checkpoint(http: httpx.AsyncClient, hub: HubProcess) -> tuple[int, str]:
    got = await http.get(f"{hub.base}/log/checkpoint")
    assert got.status_code == 200, got.text
    return parse_checkpoint(got.text[: got.text.rfind("\n\n") + 1]).size, got.text


async def test_quorum_outages_and_catching_up(
    deployment: Deployment, witnesses: list[WitnessProcess], policy: Path, http: httpx.AsyncClient
) -> None:
    hub = HubProcess(deployment, policy)
    try:
        vkeys = [w.vkey for w in witnesses]
        size = await _submit(http, hub, deployment, 5, seed=1)
        hub.wait_cosigned(size, 3)
        at, note = await _checkpoint(http, hub)
        assert at == size and len(own_cosignature_check(note, vkeys)) >= 2

        witnesses[2].kill()  # one down: the quorum holds
        mark = hub.mark()
        size = await _submit(http, hub, deployment, 4, seed=2)
        hub.wait_cosigned(size, 2, since=mark)
        at, note = await _checkpoint(http, hub)
        assert at == size and own_cosignature_check(note, vkeys) >= {
            witnesses[0].name,
            witnesses[1].name,
        }

        witnesses[1].kill()  # two down: submits still answer, the witnessed view stays
        witnessed = size
        mark = hub.mark()
        size = await _submit(http, hub, deployment, 3, seed=3)
        assert size > witnessed
        hub.wait_cosigned(size, 1, since=mark)
        hub.wait_event(
            "witness failed", "a failed offer to w1", since=mark, witness=witnesses[1].name
        )
        assert (await _checkpoint(http, hub))[0] == witnessed
        graphql = await http.post(
            f"{hub.base}/graphql",
            json={"query": "{ checkpoint { treeSize witnessed cosignatures { witness at } } }"},
        )
        head = graphql.json()["data"]["checkpoint"]
        assert head["treeSize"] == size and head["witnessed"] is False
        assert [c["witness"] for c in head["cosignatures"]] == [witnesses[0].name]
        assert head["cosignatures"][0]["at"].endswith("Z")

        for w in witnesses[1:]:  # they come back: the hub catches them up
            w.start()
        hub.wait_cosigned(size, 3, since=mark)
        at, note = await _checkpoint(http, hub)
        assert at == size and len(own_cosignature_check(note, vkeys)) == 3
        metrics = (await http.get(f"{hub.base}/metrics")).text
        assert 'hub_witness_failures_total{witness="w1.agency.example"}' in metrics
        assert 'hub_witness_lag_entries{witness="w0.agency.example"} 0.0' in metrics
    finally:
        hub.stop()


def _fork_note(deployment: Deployment, leaves: list[bytes]) -> str:
    root = root_from_leaf_hashes([leaf_hash(x) for x in leaves])
    body = format_checkpoint(Checkpoint(ORIGIN, len(leaves), root))
    return sign_note(body, load_log_signer(deployment.log_key))  # the operator's own key


async def test_split_view_is_refused_by_every_witness(
    deployment: Deployment,
    witnesses: list[WitnessProcess],
    policy: Path,
    http: httpx.AsyncClient,
    tmp_path: Path,
    log_vkey: str,
) -> None:
    hub = HubProcess(deployment, policy)
    try:
        size = await _submit(http, hub, deployment, 6, seed=4)
        hub.wait_cosigned(size, 3)
        # The real receipt passes the policy offline.
        doc = _invoices(1, seed=4)[0]
        query = "query($id: ID!) { inclusionProof(documentId: $id) { receipt } }"
        got = await http.post(
            f"{hub.base}/graphql",
            json={"query": query, "variables": {"id": f"{doc['billCode']}-{doc['billNumber']}"}},
            headers={"Authorization": f"Bearer {deployment.token(HOSPITAL)}"},
        )
        real = tmp_path / "real.tlog-proof"
        real.write_text(got.json()["data"]["inclusionProof"]["receipt"])
        ok = hub_cli(
            deployment.env, "proof", "verify", str(real), "--key", log_vkey, "--policy", str(policy)
        )
        assert ok.returncode == 0, ok.stderr
        assert "witnessed by" in ok.stdout

        fork = [b"forged %d" % i for i in range(size + 3)]
        same_size = _fork_note(deployment, fork[:size])
        longer = _fork_note(deployment, fork)
        proof = consistency_proof([leaf_hash(x) for x in fork], size)
        for w in witnesses:
            first = await http.post(f"{w.url}/add-checkpoint", content=f"old {size}\n\n{same_size}")
            lines = "".join(b64encode(h) + "\n" for h in proof)
            second = await http.post(
                f"{w.url}/add-checkpoint", content=f"old {size}\n{lines}\n{longer}"
            )
            assert (first.status_code, second.status_code) in {(409, 422), (422, 422)}
            assert "—" not in first.text + second.text  # no cosignature line, ever

        # A receipt under the forked checkpoint: signed by the log, witnessed by nobody.
        hashes = [leaf_hash(x) for x in fork]
        receipt = format_receipt(Receipt(0, tuple(inclusion_proof(hashes, 0)), longer, fork[0]))
        forged = tmp_path / "forged.tlog-proof"
        forged.write_text(receipt)
        plain = hub_cli(deployment.env, "proof", "verify", str(forged), "--key", log_vkey)
        assert plain.returncode == 0  # the log's signature alone cannot tell
        refused = hub_cli(
            deployment.env,
            "proof",
            "verify",
            str(forged),
            "--key",
            log_vkey,
            "--policy",
            str(policy),
        )
        assert refused.returncode != 0
        assert "not witnessed" in refused.stderr and "Traceback" not in refused.stderr
    finally:
        hub.stop()


async def test_rollback_is_refused_and_the_monitor_exits_with_evidence(
    deployment: Deployment,
    witnesses: list[WitnessProcess],
    policy: Path,
    http: httpx.AsyncClient,
    tmp_path: Path,
    log_vkey: str,
) -> None:
    hub = HubProcess(deployment, policy)
    db = tmp_path / "hub.db"
    size_old = await _submit(http, hub, deployment, 3, seed=5)
    hub.wait_cosigned(size_old, 3)
    hub.stop()
    backup = tmp_path / "backup.db"
    shutil.copyfile(db, backup)  # the hub is stopped: its file is consistent

    hub = HubProcess(deployment, policy, port=hub.port)
    monitor = None
    try:
        size_new = await _submit(http, hub, deployment, 3, seed=6)
        hub.wait_cosigned(size_new, 3)
        _, seen_note = await _checkpoint(http, hub)
        monitor = Proc(
            [
                *deployment.cli_argv(
                    "monitor", hub.base, "--key", log_vkey, "--policy", str(policy)
                ),
                "--interval",
                "0.2",
            ],
            deployment.env,
        )
        monitor.wait_for(lambda s: f"checkpoint {size_new} verified" in s, "first verification")
        hub.stop()

        for suffix in ("", "-wal", "-shm"):
            Path(f"{db}{suffix}").unlink(missing_ok=True)
        shutil.copyfile(backup, db)
        hub = HubProcess(deployment, policy, port=hub.port)
        size_forked = await _submit(http, hub, deployment, 8, seed=7)  # past the witnesses
        assert size_forked > size_new
        mark = hub.mark()
        for w in witnesses:
            hub.wait_event("witness failed", f"{w.name} refusing", since=mark, witness=w.name)
        assert monitor.proc.wait(60) == 3
        evidence = "".join(monitor.stdout)
        assert "ROLLBACK" in evidence
        assert seen_note in evidence  # the checkpoint it saw before ...
        assert f"\n{size_old}\n" in evidence  # ... and the older one served now
        for w in witnesses:  # no witness moved to the forked tree
            state = await http.get(f"{w.url}/{_origin_hash()}/checkpoint")
            assert parse_checkpoint(state.text[: state.text.rfind("\n\n") + 1]).size == size_new
    finally:
        hub.stop()
        if monitor is not None:
            monitor.kill()


def _origin_hash() -> str:
    import hashlib

    return hashlib.sha256(ORIGIN.encode()).hexdigest()


async def test_read_path_over_http(deployment: Deployment, http: httpx.AsyncClient) -> None:
    hub = HubProcess(deployment, None)
    try:
        size = await _submit(http, hub, deployment, 5, seed=8)
        raw = httpx.Client(base_url=hub.base, timeout=30.0)
        partial = f"/log/tile/entries/000.p/{size}"
        zipped = raw.get(partial, headers={"Accept-Encoding": "gzip"})
        assert zipped.headers["content-encoding"] == "gzip"
        assert zipped.headers["cache-control"] == "public, max-age=31536000, immutable"
        plain = raw.get(partial, headers={"Accept-Encoding": "identity"})
        assert "content-encoding" not in plain.headers and plain.content == zipped.content
        tile = raw.get(f"/log/tile/0/000.p/{size}")
        assert tile.headers["cache-control"] == "public, max-age=31536000, immutable"
        for path in [
            "/log/tile/00/000.p/1",
            "/log/tile/0/x000/000.p/1",
            "/log/tile/entries/x000/000",
        ]:
            assert raw.get(path).status_code == 404, path
        raw.close()
    finally:
        hub.stop()
