"""tlog-cosignature v1 bytes, checked against the C2SP specs' own examples."""

import base64
import hashlib

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from hub.ledger.checkpoint import Checkpoint, format_checkpoint
from hub.ledger.cosignature import (
    CosignatureError,
    cosign,
    cosignature_message,
    format_cosigner_key,
    format_cosigner_signer_key,
    generate_cosigner_key,
    parse_cosigner_key,
    parse_cosigner_signer_key,
    verify_cosignatures,
)
from hub.ledger.note import generate_signer_key, open_note, parse_signer_key, sign_note

# c2sp.org/tlog-cosignature, "Ed25519 signed message" and the example at its top.
SPEC_BODY = "example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n"
SPEC_MESSAGE = (
    "cosignature/v1\n"
    "time 1679315147\n"
    "example.com/behind-the-sofa\n"
    "20852163\n"
    "CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n"
)
SPEC_LINE = (
    "— witness.example.com/w1 jWbPPwAAAABkGFDLEZMHwSRaJNiIDoe9DYn/zXcrtPHeolMI5OWXEhZCB9dl"
    "rDJsX3b2oyin1nPZqhf5nNo0xUe+mbIUBkBIfZ+qnA=="
)
# A cosigner verifier key in use (transparency-dev/formats note tests): its key ID is
# SHA-256(name || 0x0A || 0x04 || key)[:4], or parsing it fails.
REAL_VKEY = "remora.n621.de+da77ade7+BOvN63jn/bLvkieywe8R6UYAtVtNbZpXh34x7onlmtw2"


def test_the_signed_message_is_the_specs() -> None:
    assert cosignature_message(SPEC_BODY, 1679315147) == SPEC_MESSAGE.encode()


def test_the_specs_cosignature_line_is_key_id_timestamp_signature() -> None:
    blob = base64.b64decode(SPEC_LINE.split(" ")[2])
    assert len(blob) == 4 + 8 + 64
    # The timestamp in the example line is the one of the example message.
    assert int.from_bytes(blob[4:12], "big") == 1679315147


def test_a_published_cosigner_key_parses_with_our_key_id() -> None:
    verifier = parse_cosigner_key(REAL_VKEY)
    raw = base64.b64decode(REAL_VKEY.split("+", 2)[2])
    assert raw[0] == 0x04
    expected = hashlib.sha256(b"remora.n621.de\n\x04" + raw[1:]).digest()[:4]
    assert verifier.key_id == expected == bytes.fromhex("da77ade7")
    assert format_cosigner_key(verifier) == REAL_VKEY


def test_a_log_key_is_not_a_cosigner_key() -> None:
    _, vkey = generate_signer_key("log.example/x")
    with pytest.raises(CosignatureError, match="0x04"):
        parse_cosigner_key(vkey)


def test_cosignature_verifies_by_the_specs_bytes_alone() -> None:
    signer = generate_cosigner_key("agency.example/w1")
    line = cosign(signer, SPEC_BODY, 1700000000)
    assert line.startswith("— agency.example/w1 ") and line.endswith("\n")
    blob = base64.b64decode(line.split(" ")[2])
    raw = base64.b64decode(format_cosigner_key(signer.verifier).split("+", 2)[2])[1:]
    assert blob[:4] == hashlib.sha256(b"agency.example/w1\n\x04" + raw).digest()[:4]
    assert blob[4:12] == (1700000000).to_bytes(8, "big")
    message = b"cosignature/v1\ntime 1700000000\n" + SPEC_BODY.encode()
    Ed25519PublicKey.from_public_bytes(raw).verify(blob[12:], message)  # raises if not


def test_verify_cosignatures_ignores_others_and_rejects_a_bad_one() -> None:
    log = parse_signer_key(generate_signer_key("example.com/behind-the-sofa")[0])
    w1, w2 = generate_cosigner_key("w1.example"), generate_cosigner_key("w2.example")
    note = sign_note(SPEC_BODY, log) + cosign(w1, SPEC_BODY, 5) + SPEC_LINE + "\n"
    found = verify_cosignatures(note, [w1.verifier, w2.verifier])
    assert [(c.witness, c.timestamp) for c in found] == [(w1.verifier, 5)]
    # The log's own signature still verifies with cosignature lines after it.
    assert open_note(note, [log.verifier])[1] == [log.verifier]
    forged = note.replace(cosign(w1, SPEC_BODY, 5), cosign(w1, SPEC_BODY.replace("3\n", "4\n"), 5))
    with pytest.raises(CosignatureError, match="invalid cosignature"):
        verify_cosignatures(forged, [w1.verifier])
    # A log signature is not a cosignature, even under the witness's name and key.
    with pytest.raises(CosignatureError):
        cosign(w1, SPEC_BODY, 0)


def test_signer_key_round_trips_and_checks_its_id() -> None:
    signer = generate_cosigner_key("w.example")
    text = format_cosigner_signer_key(signer)
    assert parse_cosigner_signer_key(text).verifier == signer.verifier
    with pytest.raises(CosignatureError, match="key ID"):
        parse_cosigner_signer_key(text.replace(signer.key_id.hex(), "00000000"))


def test_cosigned_checkpoint_body_is_the_checkpoint_text() -> None:
    body = format_checkpoint(Checkpoint("example.com/behind-the-sofa", 20852163, bytes(32)))
    assert cosignature_message(body, 1).startswith(b"cosignature/v1\ntime 1\nexample.com/")
