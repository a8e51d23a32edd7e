"""Receipts (C2SP tlog-proof@v1): layout, round trips and every tampering refused."""

import base64
from collections.abc import Callable

import pytest

from hub.ledger import tree
from hub.ledger.checkpoint import Checkpoint, format_checkpoint
from hub.ledger.note import NoteError, Signer, generate_signer_key, parse_signer_key, sign_note
from hub.ledger.receipt import (
    HEADER,
    Receipt,
    ReceiptError,
    format_receipt,
    parse_receipt,
    verify_receipt,
)

ORIGIN = "ledger-hub.local/log"
LEAVES = [f'{{"v":1,"kind":"document","n":{i}}}'.encode() for i in range(7)]
SIZE = len(LEAVES)


@pytest.fixture(scope="module")
def signer() -> Signer:
    return parse_signer_key(generate_signer_key(ORIGIN)[0])


@pytest.fixture(scope="module")
def checkpoint_note(signer: Signer) -> str:
    hashes = [tree.leaf_hash(d) for d in LEAVES]
    cp = Checkpoint(ORIGIN, SIZE, tree.root_from_leaf_hashes(hashes))
    return sign_note(format_checkpoint(cp), signer)


def _receipt(index: int, note: str, extra: bytes | None = None) -> Receipt:
    hashes = [tree.leaf_hash(d) for d in LEAVES]
    proof = tuple(tree.inclusion_proof(hashes, index))
    return Receipt(index, proof, note, LEAVES[index] if extra is None else extra)


@pytest.mark.parametrize("index", range(SIZE))
def test_receipt_for_every_leaf_verifies(index: int, signer: Signer, checkpoint_note: str) -> None:
    text = format_receipt(_receipt(index, checkpoint_note))
    cp = verify_receipt(text, signer.verifier)
    assert (cp.origin, cp.size) == (ORIGIN, SIZE)
    assert verify_receipt(text, signer.verifier, leaf_data=LEAVES[index]) == cp


def test_text_layout_follows_tlog_proof(checkpoint_note: str) -> None:
    r = _receipt(5, checkpoint_note)
    lines = format_receipt(r).split("\n")
    assert lines[0] == "c2sp.org/tlog-proof@v1"
    assert lines[1] == "extra " + base64.b64encode(LEAVES[5]).decode()
    assert lines[2] == "index 5"
    n = len(r.proof)
    assert [base64.b64decode(h) for h in lines[3 : 3 + n]] == list(r.proof)
    assert lines[3 + n] == ""
    assert "\n".join(lines[4 + n :]) == checkpoint_note


def test_round_trip(checkpoint_note: str) -> None:
    for r in (
        _receipt(3, checkpoint_note),
        Receipt(0, (), checkpoint_note),
        Receipt(0, (), checkpoint_note, b""),
    ):
        assert parse_receipt(format_receipt(r)) == r


def test_spec_example_shape_parses() -> None:
    # The example from c2sp.org/tlog-proof, with the elided signatures made whole.
    hashes = [
        "gSKyXoYZUgZ6jduWYrkDOARinOMGJveXjgMkBTcdPlQ=",
        "B95lDa8R83lS8n0eG+o0buTxRKQTYFi//1U8anccXmA=",
        "EKNzoDWG8LGC0Yp9o+sv3qllpMP9uHQ9B20KNL+Q1zs=",
        "RoopEkOdqkYqMB4MJXrbt/hMjOxsVn0IrWjpz1ZMMes=",
        "AHCioX9nLjsrse6YhjRRmk1WUEirVOLLRoOQ6vfO5vk=",
    ]
    note = (
        "example.com/fancylog\n109482\nsFodV/vSp5O8n9a8QpW6PRY97tfOSW5bsc2Xl/EQi08=\n\n"
        "— example.com/fancylog hI2DJwAA\n"
    )
    text = f"{HEADER}\nextra YWdlLXYx\nindex 73894\n" + "\n".join(hashes) + "\n\n" + note
    r = parse_receipt(text)
    assert r.index == 73894
    assert r.extra == b"age-v1"
    assert r.proof == tuple(base64.b64decode(h) for h in hashes)
    assert r.checkpoint_note == note


def test_leaf_data_from_caller_replaces_extra(signer: Signer, checkpoint_note: str) -> None:
    r = _receipt(2, checkpoint_note)
    text = format_receipt(Receipt(r.index, r.proof, r.checkpoint_note))
    assert verify_receipt(text, signer.verifier, leaf_data=LEAVES[2]).size == SIZE
    with pytest.raises(ReceiptError) as exc:
        verify_receipt(text, signer.verifier)
    assert exc.value.step == "leaf"


def test_flipped_proof_hash_fails_inclusion(signer: Signer, checkpoint_note: str) -> None:
    r = _receipt(4, checkpoint_note)
    for i in range(len(r.proof)):
        proof = list(r.proof)
        proof[i] = bytes([proof[i][0] ^ 1]) + proof[i][1:]
        text = format_receipt(Receipt(r.index, tuple(proof), r.checkpoint_note, r.extra))
        with pytest.raises(ReceiptError) as exc:
            verify_receipt(text, signer.verifier)
        assert exc.value.step == "inclusion"


def test_wrong_length_proofs_fail_inclusion(signer: Signer, checkpoint_note: str) -> None:
    r = _receipt(4, checkpoint_note)
    for proof in (r.proof[:-1], (*r.proof, r.proof[0]), ()):
        text = format_receipt(Receipt(r.index, proof, r.checkpoint_note, r.extra))
        with pytest.raises(ReceiptError) as exc:
            verify_receipt(text, signer.verifier)
        assert exc.value.step == "inclusion"


def test_wrong_index_fails_inclusion(signer: Signer, checkpoint_note: str) -> None:
    r = _receipt(4, checkpoint_note)
    for index in (5, SIZE, SIZE + 100):
        text = format_receipt(Receipt(index, r.proof, r.checkpoint_note, r.extra))
        with pytest.raises(ReceiptError) as exc:
            verify_receipt(text, signer.verifier)
        assert exc.value.step == "inclusion"


def test_wrong_leaf_data_fails_as_inclusion(signer: Signer, checkpoint_note: str) -> None:
    # The proof covers the leaf hash, so another document cannot be told apart from a
    # tampered proof: both surface as an inclusion failure.
    text = format_receipt(_receipt(1, checkpoint_note))
    with pytest.raises(ReceiptError) as exc:
        verify_receipt(text, signer.verifier, leaf_data=LEAVES[2])
    assert exc.value.step == "inclusion"
    forged = format_receipt(_receipt(1, checkpoint_note, extra=LEAVES[1] + b" "))
    with pytest.raises(ReceiptError) as exc:
        verify_receipt(forged, signer.verifier)
    assert exc.value.step == "inclusion"


def test_other_key_fails_signature(checkpoint_note: str) -> None:
    other = parse_signer_key(generate_signer_key(ORIGIN)[0])
    text = format_receipt(_receipt(0, checkpoint_note))
    with pytest.raises(ReceiptError) as exc:
        verify_receipt(text, other.verifier)
    assert exc.value.step == "signature"
    assert str(exc.value).startswith("signature: ")


def test_tampered_checkpoint_fails_signature(signer: Signer, checkpoint_note: str) -> None:
    text = format_receipt(_receipt(0, checkpoint_note))
    tampered = text.replace(f"\n{ORIGIN}\n{SIZE}\n", f"\n{ORIGIN}\n{SIZE + 1}\n", 1)
    assert tampered != text
    with pytest.raises(ReceiptError) as exc:
        verify_receipt(tampered, signer.verifier)
    assert exc.value.step == "signature"


def test_signed_but_malformed_checkpoint_fails_format(signer: Signer) -> None:
    note = sign_note(f"{ORIGIN}\n07\nAAAA\n", signer)
    with pytest.raises(ReceiptError) as exc:
        verify_receipt(format_receipt(Receipt(0, (), note, b"x")), signer.verifier)
    assert exc.value.step == "format"


def _good_text(checkpoint_note: str) -> str:
    return format_receipt(_receipt(6, checkpoint_note))


@pytest.mark.parametrize(
    ("mangle", "complaint"),
    [
        (lambda t: t.replace(HEADER, "c2sp.org/tlog-proof@v2", 1), "first line"),
        (lambda t: t.replace(HEADER + "\n", "", 1), "first line"),
        (lambda t: "\n" + t, "first line"),
        (lambda t: t.replace("index 6", "index 06", 1), "index"),
        (lambda t: t.replace("index 6", "index -6", 1), "index"),
        (lambda t: t.replace("index 6", "index  6", 1), "index"),
        (lambda t: t.replace("index 6", "index 6\r", 1), "index"),
        (lambda t: t.replace("index 6\n", "", 1), "index"),
        (lambda t: t.replace("extra ", "extra  ", 1), "extra"),
        (lambda t: t.replace("extra ", "extra=", 1), "index"),
        (lambda t: t.replace("index 6\n", "index 6\nAAAA\n", 1), "proof hash 0"),
        (lambda t: t.replace("index 6\n", "index 6\nnot base64!\n", 1), "proof hash 0"),
        (lambda t: t.replace("index 6\n", "index 6\n" + ("A" * 43 + "=\n") * 65, 1), "too long"),
        (lambda t: t.split("\n\n", 1)[0], "empty line"),
        (lambda t: t.split("\n\n", 1)[0] + "\n\n", "checkpoint note"),
        (lambda t: t[:-1], "checkpoint note"),
    ],
)
def test_malformed_receipts_fail_format(
    mangle: Callable[[str], str], complaint: str, checkpoint_note: str
) -> None:
    text = mangle(_good_text(checkpoint_note))
    with pytest.raises(ReceiptError, match=complaint) as exc:
        parse_receipt(text)
    assert exc.value.step == "format"
    assert isinstance(exc.value, ValueError)


def test_format_refuses_bad_receipts(checkpoint_note: str) -> None:
    for r in (
        Receipt(-1, (), checkpoint_note),
        Receipt(0, (b"short",), checkpoint_note),
        Receipt(0, (), checkpoint_note.rstrip("\n")),
    ):
        with pytest.raises(ReceiptError):
            format_receipt(r)


def test_note_error_is_not_leaked_unwrapped(signer: Signer) -> None:
    # Callers catch ReceiptError alone; NoteError from the layers below is wrapped.
    with pytest.raises(ReceiptError) as exc:
        parse_receipt(f"{HEADER}\nindex 0\nAB==\n\n")
    assert isinstance(exc.value.__cause__, NoteError)
