"""The `hub` console script, run as a user runs it: a subprocess with HUB_* in the env."""

import argparse
import base64
import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from hub.cli import build_parser, main
from hub.config import Settings
from hub.documents.demo_data import demo_invoices
from hub.documents.service import CREATED, DocumentInput, document_versions
from hub.institutions import add_institution
from hub.ledger.note import format_verifier_key, generate_signer_key, parse_verifier_key
from hub.ledger.receipt import Receipt, format_receipt
from hub.services import Hub

_SCRIPT = Path(sys.executable).with_name("hub")
HUB = [str(_SCRIPT)] if _SCRIPT.exists() else [sys.executable, "-m", "hub.cli"]


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("HUB_")}
    return {
        **base,
        "HUB_DATABASE_URL": f"sqlite://{tmp_path}/hub.db",
        "HUB_DATA_DIR": str(tmp_path),
        # Hubs a test starts in-process integrate inline: none of these is about the child.
        "HUB_SQLITE_INTEGRATOR": "inline",
    }


def run(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*HUB, *args], env=env, capture_output=True, text=True, timeout=60, check=False
    )


def assert_fails_in_one_line(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0], result.stderr
    return lines[0]


def command_paths(
    parser: argparse.ArgumentParser, prefix: tuple[str, ...] = ()
) -> list[tuple[str, ...]]:
    """Every command and sub-command of the parser, e.g. ("keys", "init")."""
    found: list[tuple[str, ...]] = [prefix]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                found.extend(command_paths(sub, (*prefix, name)))
    return found


def test_every_command_has_help(capsys: pytest.CaptureFixture[str]) -> None:
    paths = command_paths(build_parser())
    assert ("proof", "verify") in paths and ("ledger", "verify") in paths
    # In-process: a fresh interpreter per command costs ~0.5 s CPU and proves nothing more.
    for path in paths:
        with pytest.raises(SystemExit) as exited:
            main([*path, "--help"])
        assert exited.value.code == 0, path
        assert capsys.readouterr().out.startswith(f"usage: hub {' '.join(path)}".rstrip())


def test_the_console_script_runs(env: dict[str, str]) -> None:
    result = run(env, "--help")
    assert result.returncode == 0 and result.stdout.startswith("usage: hub")
    bad = run(env, "token", "issue", "--role", "nobody", "--sub", "x")
    assert bad.returncode != 0 and "Traceback" not in bad.stderr


def test_admin_commands(env: dict[str, str], tmp_path: Path) -> None:
    init = run(env, "keys", "init")
    assert init.returncode == 0, init.stderr
    (line,) = [x for x in init.stdout.splitlines() if x.startswith("verifier key: ")]
    vkey = line.removeprefix("verifier key: ")
    verifier = parse_verifier_key(vkey)
    assert verifier.name == Settings().origin
    assert (tmp_path / "keys" / "log.key").exists()
    again = run(env, "keys", "init")
    assert again.returncode == 0 and f"verifier key: {vkey}" in again.stdout, "key replaced"

    migrate = run(env, "migrate")
    assert migrate.returncode == 0, migrate.stderr

    add = ["institution", "add", "--id", "hosp-a", "--name", "Hospital A", "--kind", "hospital"]
    first = run(env, *add)
    assert first.returncode == 0, first.stderr
    reason = assert_fails_in_one_line(run(env, *add))
    assert "hosp-a" in reason and "exists" in reason
    assert_fails_in_one_line(
        run(env, "institution", "add", "--id", "b", "--name", "B", "--kind", "hospital",
            "--key", str(tmp_path / "no-such.pem"))
    )  # fmt: skip

    token = run(env, "token", "issue", "--role", "admin", "--sub", "x")
    assert token.returncode == 0, token.stderr
    assert token.stdout.endswith("\n") and token.stdout.count("\n") == 1
    parts = token.stdout.strip().split(".")
    assert len(parts) == 3 and all(parts)
    claims = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
    assert (claims["sub"], claims["role"]) == ("x", "admin")

    verify = run(env, "ledger", "verify")
    assert verify.returncode == 0, verify.stderr
    assert "ledger OK: 0 leaves" in verify.stdout


def test_institution_ids_are_checked(env: dict[str, str]) -> None:
    for bad in ["bad id with spaces", "", "x" * 65, "hosp/a", "<b>"]:
        add = ["institution", "add", "--id", bad, "--name", "B", "--kind", "hospital"]
        reason = assert_fails_in_one_line(run(env, *add))
        assert "id" in reason and "letter" in reason, reason


async def test_receipts_and_the_ledger_verify_offline(env: dict[str, str], tmp_path: Path) -> None:
    assert run(env, "keys", "init").returncode == 0
    settings = Settings.from_env(env)
    hub = await Hub.start(settings)
    try:
        await add_institution(hub.db, "hosp-a", "Hospital A", "hospital")
        bodies = demo_invoices(40, seed=31)
        docs = [
            DocumentInput("medical_invoice", f"{b['billCode']}-{b['billNumber']}", b)
            for b in bodies
        ]
        results, head = await hub.documents.submit("hosp-a", docs)
        assert {r.status for r in results} == {CREATED}
        target = results[17]
        assert target.leaf_index is not None
        (stored,) = await document_versions(hub.db, "medical_invoice", target.id, "hosp-a")
        proof = await hub.tiles.inclusion_proof(target.leaf_index, head.size)
        vkey = hub.verifier_key
    finally:
        await hub.stop()

    assert stored.salt is not None
    receipt = tmp_path / "receipt.tlog-proof"
    receipt.write_text(
        format_receipt(Receipt(target.leaf_index, tuple(proof), head.note, stored.leaf_data))
    )
    export = {
        "issuer": stored.issuer,
        "type": stored.type,
        "id": stored.id,
        "version": stored.version,
        "issuedAt": stored.issued_at,
        "body": stored.body,
        "salt": base64.b64encode(stored.salt).decode(),
    }
    doc = tmp_path / "doc.json"
    doc.write_text(json.dumps(export, ensure_ascii=False))

    ok = run(env, "proof", "verify", str(receipt), "--key", vkey, "--document", str(doc))
    assert ok.returncode == 0, ok.stderr
    assert "OK" in ok.stdout
    assert run(env, "proof", "verify", str(receipt), "--key", vkey).returncode == 0

    # One character of the body changed: the digest, hence the leaf, no longer matches.
    text = doc.read_text()
    check = stored.body["checkCode"] if stored.body else ""
    altered = check[:-1] + ("A" if check[-1] != "A" else "B")
    forged = tmp_path / "forged.json"
    forged.write_text(text.replace(f'"checkCode": "{check}"', f'"checkCode": "{altered}"'))
    assert forged.read_text() != text
    assert_fails_in_one_line(
        run(env, "proof", "verify", str(receipt), "--key", vkey, "--document", str(forged))
    )
    # Another document of the same log does not verify against this receipt.
    other = dict(export, id=results[3].id)
    (tmp_path / "other.json").write_text(json.dumps(other, ensure_ascii=False))
    assert_fails_in_one_line(
        run(env, "proof", "verify", str(receipt), "--key", vkey,
            "--document", str(tmp_path / "other.json"))
    )  # fmt: skip
    # A key of the same name but not the log's.
    _, stranger = generate_signer_key(settings.origin)
    assert format_verifier_key(parse_verifier_key(stranger)) != vkey
    assert_fails_in_one_line(
        run(env, "proof", "verify", str(receipt), "--key", stranger, "--document", str(doc))
    )
    # A receipt whose index was moved.
    moved = tmp_path / "moved.tlog-proof"
    moved.write_text(receipt.read_text().replace(f"index {target.leaf_index}\n", "index 16\n"))
    assert_fails_in_one_line(run(env, "proof", "verify", str(moved), "--key", vkey))

    verify = run(env, "ledger", "verify")
    assert verify.returncode == 0, verify.stderr
    assert "ledger OK: 40 leaves" in verify.stdout

    # Tamper evidence: one body changed in the database is found and its row named.
    with sqlite3.connect(tmp_path / "hub.db") as conn:
        (row_id,) = conn.execute(
            "SELECT id FROM documents WHERE leaf_index = ?", [target.leaf_index]
        ).fetchone()
        conn.execute(
            "UPDATE documents SET body = replace(body, ?, ?) WHERE id = ?",
            [check, altered, row_id],
        )
    reason = assert_fails_in_one_line(run(env, "ledger", "verify"))
    assert f"documents row id={row_id}" in reason
