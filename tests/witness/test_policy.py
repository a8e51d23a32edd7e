"""C2SP tlog-policy files: parsing, the quorum, and a checkpoint checked against both."""

import pytest

from hub.ledger.cosignature import cosign, format_cosigner_key, generate_cosigner_key
from hub.ledger.note import format_verifier_key, generate_signer_key, parse_signer_key, sign_note
from hub.ledger.policy import PolicyError, parse_policy

BODY = "log.example/x\n5\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n"


def _witnesses(n: int) -> list:  # type: ignore[type-arg]
    return [generate_cosigner_key(f"w{i}.example") for i in range(n)]


def _policy(witnesses: list, tail: str) -> str:  # type: ignore[type-arg]
    lines = [
        f"witness W{i} {format_cosigner_key(w.verifier)} http://127.0.0.1:1/w{i}"
        for i, w in enumerate(witnesses)
    ]
    return "\n".join(lines) + "\n" + tail


def test_the_specs_two_level_example_quorum() -> None:
    ws = _witnesses(6)
    text = _policy(
        ws,
        "# X are one organisation, Y another\n"
        "group X-witnesses 2 W0 W1 W2\n"
        "\tgroup   Y-witnesses any W3 W4 W5  \n"
        "group X-and-Y all X-witnesses Y-witnesses\n"
        "quorum X-and-Y\n",
    )
    policy = parse_policy(text)
    assert policy.quorum_met({"W0", "W2", "W5"})
    assert not policy.quorum_met({"W0", "W1", "W2"})
    assert not policy.quorum_met({"W0", "W3", "W4"})
    assert policy.witnesses["W1"].url == "http://127.0.0.1:1/w1"


def test_quorum_none_needs_no_cosignature() -> None:
    assert parse_policy("quorum none\n").quorum_met(set())


@pytest.mark.parametrize(
    ("tail", "error"),
    [
        ("", "no quorum"),
        ("quorum W0\nquorum W1\n", "second quorum"),
        ("quorum nobody\n", "not defined above"),
        ("group g 2 W0 later\nquorum g\n", "not defined above"),
        ("group g 3 W0 W1\nquorum g\n", "threshold"),
        ("group g 0 W0 W1\nquorum g\n", "threshold"),
        ("group g 01 W0 W1\nquorum g\n", "threshold"),
        ("group g any W0 W0\nquorum g\n", "listed twice"),
        ("group none any W0\nquorum none\n", "predefined"),
        ("group W0 any W1\nquorum W0\n", "defined twice"),
        ("frobnicate\nquorum W0\n", "unknown keyword"),
        ("quorum W0\r\n", "control character"),
    ],
)
def test_malformed_policies_name_the_problem(tail: str, error: str) -> None:
    with pytest.raises(PolicyError, match=error):
        parse_policy(_policy(_witnesses(2), tail))


def test_duplicate_witness_keys_are_refused() -> None:
    w = generate_cosigner_key("w.example")
    vkey = format_cosigner_key(w.verifier)
    with pytest.raises(PolicyError, match="duplicate key"):
        parse_policy(f"witness A {vkey}\nwitness B {vkey}\nquorum A\n")


def test_a_checkpoint_meets_the_policy_only_with_its_quorum() -> None:
    log = parse_signer_key(generate_signer_key("log.example/x")[0])
    ws = _witnesses(3)
    policy = parse_policy(
        f"log {format_verifier_key(log.verifier)}\n"
        + _policy(ws, "group two 2 W0 W1 W2\nquorum two\n")
    )
    note = sign_note(BODY, log)
    with pytest.raises(PolicyError, match="not witnessed"):
        policy.verify(note)
    once = note + cosign(ws[0], BODY, 10)
    with pytest.raises(PolicyError, match="cosigned by: W0"):
        policy.verify(once)
    cp, names = policy.verify(once + cosign(ws[2], BODY, 11))
    assert cp.size == 5 and names == ["W0", "W2"]
    other = parse_signer_key(generate_signer_key("log.example/x")[0])
    with pytest.raises(ValueError):
        policy.verify(sign_note(BODY, other) + cosign(ws[0], BODY, 1) + cosign(ws[1], BODY, 1))


def test_fewest_witnesses_that_can_meet_the_quorum() -> None:
    ws = _witnesses(5)
    policy = parse_policy(
        _policy(ws, "group a 2 W0 W1 W2\ngroup b any W3 W4\ngroup q all a b\nquorum q\n")
    )
    assert policy.fewest() == 3
    assert parse_policy(_policy(ws, "quorum W2\n")).fewest() == 1
    assert parse_policy("quorum none\n").fewest() == 0
