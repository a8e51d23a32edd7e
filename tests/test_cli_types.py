"""`hub type add/list`, `hub institution add --kind/--bill-code` and `hub grant add --view`
as an operator runs them: subprocesses with HUB_* in the environment."""

import json
from pathlib import Path

from tests import test_cli
from tests.documents.test_types import certificate
from tests.test_cli import assert_fails_in_one_line, run

env = test_cli.env  # the same HUB_* environment fixture


def test_an_operator_registers_a_type_from_a_file(env: dict[str, str], tmp_path: Path) -> None:
    assert run(env, "keys", "init").returncode == 0
    definition = tmp_path / "certificate.json"
    definition.write_text(json.dumps(certificate()), encoding="utf-8")
    added = run(env, "type", "add", str(definition))
    assert added.returncode == 0, added.stderr
    assert "type school_certificate version 1 registered (leaf 0)" in added.stdout
    again = run(env, "type", "add", str(definition))
    assert "already registered (leaf 0)" in again.stdout
    listed = run(env, "type", "list")
    rows = [line.split("\t") for line in listed.stdout.splitlines()]
    assert rows[-1][:3] == ["school_certificate", "1", "school"] or any(
        r[:3] == ["school_certificate", "1", "school"] and r[4] == "leaf 0" for r in rows
    )
    assert any(r[0] == "medical_invoice" and r[4] == "shipped, not registered" for r in rows)

    tightened = certificate(version=2)
    tightened["schema"]["required"].append("nickname")
    definition.write_text(json.dumps(tightened), encoding="utf-8")
    assert "requires /nickname" in assert_fails_in_one_line(
        run(env, "type", "add", str(definition))
    )
    broken = tmp_path / "broken.json"
    broken.write_text("{", encoding="utf-8")
    assert "is not JSON" in assert_fails_in_one_line(run(env, "type", "add", str(broken)))

    school = run(
        env, "institution", "add", "--id", "school-1", "--name", "No. 1", "--kind", "school"
    )
    assert school.returncode == 0, school.stderr
    assert "kind" in assert_fails_in_one_line(
        run(env, "institution", "add", "--id", "x", "--name", "X", "--kind", "Big School")
    )
    coded = run(
        env,
        "institution",
        "add",
        "--id",
        "h1",
        "--name",
        "H",
        "--kind",
        "hospital",
        "--bill-code",
        "46000126",
        "--bill-code",
        "46000127",
    )
    assert coded.returncode == 0, coded.stderr
    assert "belongs to another institution" in assert_fails_in_one_line(
        run(
            env,
            "institution",
            "add",
            "--id",
            "h2",
            "--name",
            "H2",
            "--kind",
            "hospital",
            "--bill-code",
            "46000127",
        )
    )
    run(env, "institution", "add", "--id", "edu", "--name", "Edu", "--kind", "agency")
    granted = run(
        env,
        "grant",
        "add",
        "--agency",
        "edu",
        "--type",
        "school_certificate",
        "--issuers",
        "*",
        "--view",
        "transcript",
        "--purpose",
        "enrolment",
    )
    assert granted.returncode == 0 and granted.stdout.startswith("g_"), granted.stderr
    assert "view: must be one of full, transcript" in assert_fails_in_one_line(
        run(
            env,
            "grant",
            "add",
            "--agency",
            "edu",
            "--type",
            "school_certificate",
            "--issuers",
            "*",
            "--view",
            "summary",
            "--purpose",
            "p",
        )
    )
    verified = run(env, "ledger", "verify")
    assert verified.returncode == 0 and "access/grant/type/claim rows verified" in verified.stdout
