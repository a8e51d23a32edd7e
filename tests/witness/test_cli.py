"""`hub witness init` and `hub witness serve` from the command line."""

import os
from pathlib import Path

from hub.ledger.cosignature import parse_cosigner_key
from tests.witness.processes import hub_cli


def test_init_prints_the_verifier_key_alone_and_keeps_the_key(tmp_path: Path) -> None:
    env = {**os.environ, "HUB_DATA_DIR": str(tmp_path)}
    first = hub_cli(env, "witness", "init", "--name", "agency.example/w1")
    assert first.returncode == 0, first.stderr
    assert first.stdout.count("\n") == 1
    assert parse_cosigner_key(first.stdout).name == "agency.example/w1"
    assert (tmp_path / "witness.key").stat().st_mode & 0o077 == 0
    again = hub_cli(env, "witness", "init", "--name", "agency.example/w1")
    assert again.stdout == first.stdout  # the same key, not a new one
    other = hub_cli(env, "witness", "init", "--name", "other.example/w2")
    assert other.returncode != 0 and "already holds" in other.stderr
    assert other.stderr.count("\n") == 1


def test_serve_refuses_a_key_that_is_not_a_log_key(tmp_path: Path) -> None:
    env = {**os.environ, "HUB_DATA_DIR": str(tmp_path)}
    vkey = hub_cli(env, "witness", "init", "--name", "w.example").stdout.strip()
    refused = hub_cli(env, "witness", "serve", "--port", "0", "--log", vkey)
    assert refused.returncode != 0
    assert "verifier key" in refused.stderr and "Traceback" not in refused.stderr
    missing = hub_cli(
        {**env, "HUB_DATA_DIR": str(tmp_path / "none")},
        "witness",
        "serve",
        "--log",
        "x+00000000+AQ==",
    )
    assert missing.returncode != 0


def test_serve_names_what_is_wrong_with_the_policy(tmp_path: Path) -> None:
    env = {**os.environ, "HUB_DATA_DIR": str(tmp_path), "HUB_DATABASE_URL": "sqlite://:memory:"}
    (tmp_path / "policy.txt").write_text("witness a b\nquorum a\n")
    for policy, reason in [("policy.txt", "policy line 1"), ("missing.txt", "cannot read")]:
        run = hub_cli({**env, "HUB_WITNESS_POLICY": str(tmp_path / policy)}, "serve", "--port", "0")
        assert run.returncode != 0
        assert "HUB_WITNESS_POLICY" in run.stderr and reason in run.stderr, run.stderr
        assert "Traceback" not in run.stderr
