"""C2SP tlog-checkpoint bodies: the three lines, round trips, malformed ones refused."""

import base64
import hashlib

import pytest

from hub.ledger.checkpoint import (
    Checkpoint,
    format_checkpoint,
    open_checkpoint,
    parse_checkpoint,
)
from hub.ledger.note import NoteError, Signer, generate_signer_key, parse_signer_key, sign_note

ORIGIN = "ledger-hub.local/log"
ROOT = hashlib.sha256(b"root").digest()
ROOT_B64 = base64.b64encode(ROOT).decode()


@pytest.fixture(scope="module")
def signer() -> Signer:
    return parse_signer_key(generate_signer_key(ORIGIN)[0])


def test_c2sp_example_body_parses() -> None:
    text = "example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n"
    cp = parse_checkpoint(text)
    assert cp.origin == "example.com/behind-the-sofa"
    assert cp.size == 20852163
    assert cp.root == base64.b64decode("CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=")
    assert cp.extensions == ()
    assert format_checkpoint(cp) == text


def test_format_is_the_three_lines() -> None:
    text = format_checkpoint(Checkpoint(ORIGIN, 42, ROOT))
    assert text == f"{ORIGIN}\n42\n{ROOT_B64}\n"


@pytest.mark.parametrize(
    "cp",
    [
        Checkpoint(ORIGIN, 0, hashlib.sha256(b"").digest()),
        Checkpoint(ORIGIN, 1, ROOT),
        Checkpoint(ORIGIN, 2**64 - 1, ROOT),
        Checkpoint("a origin with spaces", 7, ROOT, ("ext one", "— ext two")),
    ],
)
def test_round_trip(cp: Checkpoint) -> None:
    assert parse_checkpoint(format_checkpoint(cp)) == cp


@pytest.mark.parametrize(
    ("text", "complaint"),
    [
        (f"{ORIGIN}\n42\n{ROOT_B64}", "newline"),
        (f"{ORIGIN}\n42\n", "origin, size and root"),
        (f"\n42\n{ROOT_B64}\n", "origin"),
        (f"{ORIGIN}\n042\n{ROOT_B64}\n", "tree size"),
        (f"{ORIGIN}\n00\n{ROOT_B64}\n", "tree size"),
        (f"{ORIGIN}\n-1\n{ROOT_B64}\n", "tree size"),
        (f"{ORIGIN}\n+1\n{ROOT_B64}\n", "tree size"),
        (f"{ORIGIN}\n 1\n{ROOT_B64}\n", "tree size"),
        (f"{ORIGIN}\n1_000\n{ROOT_B64}\n", "tree size"),
        (f"{ORIGIN}\n\u0664\u0662\n{ROOT_B64}\n", "tree size"),  # Arabic-Indic digits
        (f"{ORIGIN}\n{2**64}\n{ROOT_B64}\n", "tree size"),
        (f"{ORIGIN}\n\n{ROOT_B64}\n", "tree size"),
        (f"{ORIGIN}\n42\n{base64.b64encode(ROOT[:31]).decode()}\n", "32 bytes"),
        (f"{ORIGIN}\n42\n{ROOT.hex()}\n", "root hash"),
        (f"{ORIGIN}\n42\n{ROOT_B64.rstrip('=')}\n", "root hash"),
        (f"{ORIGIN}\n42\n{ROOT_B64}\n\n", "extension"),
        (f"{ORIGIN}\n42\n{ROOT_B64}\next\n\n", "extension"),
        (f"{ORIGIN}\r\n42\n{ROOT_B64}\n", "control"),
    ],
)
def test_malformed_bodies_are_rejected(text: str, complaint: str) -> None:
    with pytest.raises(NoteError, match=complaint):
        parse_checkpoint(text)


@pytest.mark.parametrize(
    "cp",
    [
        Checkpoint("", 1, ROOT),
        Checkpoint("two\nlines", 1, ROOT),
        Checkpoint(ORIGIN, -1, ROOT),
        Checkpoint(ORIGIN, 2**64, ROOT),
        Checkpoint(ORIGIN, 1, ROOT[:31]),
        Checkpoint(ORIGIN, 1, ROOT, ("",)),
        Checkpoint(ORIGIN, 1, ROOT, ("a\nb",)),
    ],
)
def test_format_refuses_what_parse_would_reject(cp: Checkpoint) -> None:
    with pytest.raises(NoteError):
        format_checkpoint(cp)


def test_open_signed_checkpoint(signer: Signer) -> None:
    cp = Checkpoint(ORIGIN, 5, ROOT)
    note = sign_note(format_checkpoint(cp), signer)
    assert open_checkpoint(note, signer.verifier) == cp
    assert open_checkpoint(note, signer.verifier, origin=ORIGIN) == cp


def test_open_rejects_wrong_origin(signer: Signer) -> None:
    note = sign_note(format_checkpoint(Checkpoint(ORIGIN, 5, ROOT)), signer)
    with pytest.raises(NoteError, match="origin"):
        open_checkpoint(note, signer.verifier, origin="other.example/log")


def test_open_rejects_other_key(signer: Signer) -> None:
    other = parse_signer_key(generate_signer_key(ORIGIN)[0])
    note = sign_note(format_checkpoint(Checkpoint(ORIGIN, 5, ROOT)), other)
    with pytest.raises(NoteError, match="no verifiable signatures"):
        open_checkpoint(note, signer.verifier)


def test_open_rejects_tampered_size(signer: Signer) -> None:
    note = sign_note(format_checkpoint(Checkpoint(ORIGIN, 5, ROOT)), signer)
    with pytest.raises(NoteError, match="invalid signature"):
        open_checkpoint(note.replace("\n5\n", "\n6\n", 1), signer.verifier)


def test_open_rejects_signed_but_malformed_body(signer: Signer) -> None:
    note = sign_note(f"{ORIGIN}\n05\n{ROOT_B64}\n", signer)
    with pytest.raises(NoteError, match="tree size"):
        open_checkpoint(note, signer.verifier)


def test_cosigned_checkpoint_opens_with_the_log_key_alone(signer: Signer) -> None:
    witness = parse_signer_key(generate_signer_key("witness.example")[0])
    cp = Checkpoint(ORIGIN, 9, ROOT)
    note = sign_note(format_checkpoint(cp), signer, witness)
    assert open_checkpoint(note, signer.verifier) == cp
