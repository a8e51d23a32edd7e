"""C2SP signed notes and keys, checked against keys and notes made by the Go tools."""

import base64
import hashlib
from collections.abc import Callable

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from hub.ledger.note import (
    MAX_SIGNATURES,
    NoteError,
    Signer,
    Verifier,
    b64decode,
    format_signer_key,
    format_verifier_key,
    generate_signer_key,
    key_id,
    open_note,
    parse_signer_key,
    parse_verifier_key,
    sign_note,
)

# Fixed vectors from golang.org/x/mod/sumdb/note (package docs and note_test.go).
PETER_VKEY = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
PETER_SKEY = "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz"
ENOCH_VKEY = "EnochRoot+af0cfe78+ATtqJ7zOtqQtYqOo0CpvDXNlMhV3HeJDpjrASKGLWdop"
TEXT = (
    "If you think cryptography is the answer to your problem,\n"
    "then you don't know what your problem is.\n"
)
PETER_B64 = (
    "x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM="
)
ENOCH_B64 = (
    "rwz+eBzmZa0SO3NbfRGzPCpDckykFXSdeX+MNtCOXm2/5n2tiOHp+vAF1aGrQ5ovTG01oOTGwnWLox33WWd1RvMc+QQ="
)
PETER_SIG = f"— PeterNeumann {PETER_B64}\n"
ENOCH_SIG = f"— EnochRoot {ENOCH_B64}\n"
PETER_NOTE = TEXT + "\n" + PETER_SIG


@pytest.fixture
def peter() -> Verifier:
    return parse_verifier_key(PETER_VKEY)


@pytest.fixture
def enoch() -> Verifier:
    return parse_verifier_key(ENOCH_VKEY)


def _corrupt_b64(b64: str, at: int = 43) -> str:
    # Inserting a whole base64 quantum keeps the encoding valid but changes the bytes
    # after the key ID (the first 6 base64 characters carry the 4-byte ID).
    return b64[:at] + "ABCD" + b64[at:]


# --- keys -----------------------------------------------------------------------------


def test_go_verifier_key_parses_and_round_trips(peter: Verifier) -> None:
    assert peter.name == "PeterNeumann"
    assert peter.key_id == bytes.fromhex("c74f20a3")
    assert key_id("PeterNeumann", peter.public_key_bytes) == bytes.fromhex("c74f20a3")
    assert format_verifier_key(peter) == PETER_VKEY


def test_go_signer_key_matches_its_verifier_key(peter: Verifier) -> None:
    signer = parse_signer_key(PETER_SKEY)
    assert signer.name == "PeterNeumann"
    assert signer.key_id == bytes.fromhex("c74f20a3")
    assert signer.verifier == peter
    assert format_signer_key(signer) == PETER_SKEY


def test_key_id_depends_on_name_and_key() -> None:
    pub = parse_verifier_key(PETER_VKEY).public_key_bytes
    assert key_id("PeterNeumann", pub) != key_id("PeterNeumann2", pub)
    other = bytes([pub[0] ^ 1]) + pub[1:]
    assert key_id("PeterNeumann", pub) != key_id("PeterNeumann", other)
    with pytest.raises(NoteError):
        key_id("PeterNeumann", pub[:31])


@pytest.mark.parametrize(
    ("key", "parse"), [(PETER_VKEY, parse_verifier_key), (PETER_SKEY, parse_signer_key)]
)
def test_mangled_keys_are_rejected(key: str, parse: Callable[[str], object]) -> None:
    # Like the Go tests: every proper substring and every single-character bump fails.
    for i in range(len(key) + 1):
        for j in range(i + 1, len(key) + 1):
            if (i, j) != (0, len(key)):
                with pytest.raises(NoteError):
                    parse(key[i:j])
    for i in range(len(key)):
        bumped = key[:i] + chr(ord(key[i]) + 1) + key[i + 1 :]
        with pytest.raises(NoteError):
            parse(bumped)


def test_verifier_key_with_unknown_algorithm_or_wrong_length_is_rejected() -> None:
    # From the Go tests, with the key hash adjusted so only algorithm / length are wrong.
    with pytest.raises(NoteError, match="algorithm"):
        parse_verifier_key("PeterNeumann+173116ae+ZRpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW")
    # Go's wrong-length vector also has non-canonical base64, which we refuse first.
    with pytest.raises(NoteError):
        parse_verifier_key(
            "PeterNeumann+cc469956+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TWBADKEY=="
        )
    data = b"\x01" + bytes(range(33))
    kid = hashlib.sha256(b"PeterNeumann\n" + data).hexdigest()[:8]
    with pytest.raises(NoteError, match="32 bytes"):
        parse_verifier_key(f"PeterNeumann+{kid}+{base64.b64encode(data).decode()}")


def test_generated_keys_round_trip() -> None:
    skey, vkey = generate_signer_key("ledger-hub.local/log")
    signer = parse_signer_key(skey)
    verifier = parse_verifier_key(vkey)
    assert skey.startswith("PRIVATE+KEY+ledger-hub.local/log+")
    assert vkey.startswith("ledger-hub.local/log+" + signer.key_id.hex() + "+")
    assert signer.verifier == verifier
    assert verifier.key_id == key_id(verifier.name, verifier.public_key_bytes)
    sig = signer.sign(b"hi")
    assert verifier.verify(b"hi", sig)
    assert not verifier.verify(b"hj", sig)
    assert not verifier.verify(b"hi", bytes([sig[0] ^ 1]) + sig[1:])
    assert generate_signer_key("ledger-hub.local/log") != (skey, vkey)


@pytest.mark.parametrize("name", ["", "has space", "has+plus", "tab\there", "nbsp\u00a0"])
def test_invalid_key_names_are_rejected(name: str) -> None:
    with pytest.raises(NoteError):
        generate_signer_key(name)
    with pytest.raises(NoteError):
        Signer.from_private_key(name, Ed25519PrivateKey.generate())


def test_signer_repr_does_not_leak_the_private_key() -> None:
    skey, _ = generate_signer_key("example.com/log")
    # PRIVATE+KEY+<name>+<hash>+<key>: the key's base64 may itself hold "+".
    key_data = skey.split("+", 4)[4]
    assert len(key_data) == 44
    assert key_data not in repr(parse_signer_key(skey))


# --- signing and opening ---------------------------------------------------------------


def test_signing_reproduces_the_go_note_byte_for_byte() -> None:
    assert sign_note(TEXT, parse_signer_key(PETER_SKEY)) == PETER_NOTE


def test_go_note_verifies_with_go_key(peter: Verifier) -> None:
    text, signed = open_note(PETER_NOTE, [peter])
    assert text == TEXT
    assert signed == [peter]


def test_unknown_signatures_are_ignored(peter: Verifier, enoch: Verifier) -> None:
    note = TEXT + "\n" + PETER_SIG + ENOCH_SIG
    assert open_note(note, [peter]) == (TEXT, [peter])
    assert open_note(note, [enoch]) == (TEXT, [enoch])
    assert open_note(note, [enoch, peter]) == (TEXT, [peter, enoch])


def test_note_signed_only_by_unknown_keys_is_rejected(peter: Verifier, enoch: Verifier) -> None:
    with pytest.raises(NoteError, match="no verifiable signatures"):
        open_note(TEXT + "\n" + PETER_SIG + ENOCH_SIG, [])
    with pytest.raises(NoteError, match="no verifiable signatures"):
        open_note(PETER_NOTE, [enoch])


def test_other_key_with_same_name_is_unknown_not_accepted(peter: Verifier) -> None:
    impostor = Signer.from_private_key("PeterNeumann", Ed25519PrivateKey.generate())
    note = sign_note(TEXT, impostor)
    with pytest.raises(NoteError, match="no verifiable signatures"):
        open_note(note, [peter])


def test_bad_signature_from_known_key_is_an_error(peter: Verifier) -> None:
    note = TEXT + "\n" + f"— PeterNeumann {_corrupt_b64(PETER_B64)}\n"
    with pytest.raises(NoteError, match="invalid signature for key PeterNeumann\\+c74f20a3"):
        open_note(note, [peter])


def test_colliding_name_and_id_with_another_key_fails_verification(peter: Verifier) -> None:
    # A verifier that claims Peter's name and key ID but holds another key is "known",
    # so the signature is checked, and fails, instead of being ignored.
    wrong = Verifier("PeterNeumann", peter.key_id, Ed25519PrivateKey.generate().public_key())
    with pytest.raises(NoteError, match="invalid signature"):
        open_note(PETER_NOTE, [wrong])
    with pytest.raises(NoteError, match="ambiguous key"):
        open_note(PETER_NOTE, [peter, wrong])


def test_duplicate_verifier_entries_are_not_ambiguous(peter: Verifier) -> None:
    assert open_note(PETER_NOTE, [peter, parse_verifier_key(PETER_VKEY)]) == (TEXT, [peter])


def test_changed_text_fails(peter: Verifier) -> None:
    tampered = PETER_NOTE.replace("cryptography", "cryptographY", 1)
    with pytest.raises(NoteError, match="invalid signature"):
        open_note(tampered, [peter])


def test_repeated_and_unverified_duplicates_as_in_go(peter: Verifier) -> None:
    enoch_bad = f"— EnochRoot {_corrupt_b64(ENOCH_B64)}\n"
    note = TEXT + "\n" + PETER_SIG + PETER_SIG + ENOCH_SIG + ENOCH_SIG + enoch_bad
    assert open_note(note, [peter]) == (TEXT, [peter])


def test_signature_count_limit(peter: Verifier) -> None:
    assert open_note(TEXT + "\n" + PETER_SIG * MAX_SIGNATURES, [peter]) == (TEXT, [peter])
    for known in ([peter], []):
        with pytest.raises(NoteError, match="malformed note"):
            open_note(TEXT + "\n" + PETER_SIG * (MAX_SIGNATURES + 1), known)


@pytest.mark.parametrize(
    "note",
    [
        TEXT,
        TEXT + "\n",
        TEXT + "\n" + PETER_SIG[:-1],
        "\x01" + TEXT + "\n" + PETER_SIG,
        "\udcff" + TEXT + "\n" + PETER_SIG,  # a byte that is not UTF-8, as surrogateescape
        TEXT.replace("\n", "\r\n") + "\n" + PETER_SIG,
        TEXT + "\n" + f"— Bad Name {PETER_B64}",
        TEXT + "\n" + f"— Bad Name {PETER_B64}\n",
        TEXT + "\n" + f"— Bad+Name {PETER_B64}\n",
        TEXT + "\n" + PETER_SIG + "Unexpected line.\n",
        TEXT + "\n" + f"- PeterNeumann {PETER_B64}\n",  # hyphen, not em dash
        TEXT + "\n" + f"—PeterNeumann {PETER_B64}\n",
        TEXT + "\n" + "— PeterNeumann\n",
        TEXT + "\n" + "— PeterNeumann \n",
        TEXT + "\n" + "— PeterNeumann x08go/Z=\n",  # shorter than key ID + 1 byte
        TEXT + "\n" + f"— PeterNeumann {PETER_B64[:-1]}\n",  # bad padding
        TEXT + "\n" + f"— PeterNeumann  {PETER_B64}\n",
    ],
)
def test_malformed_notes_are_rejected(note: str, peter: Verifier) -> None:
    with pytest.raises(NoteError, match="malformed note"):
        open_note(note, [peter])


def test_sign_and_open_with_several_signers() -> None:
    a = parse_signer_key(generate_signer_key("a.example/log")[0])
    b = parse_signer_key(generate_signer_key("b.example/witness")[0])
    note = sign_note("origin\n3\n\nwith an empty line\n", a, b)
    assert note.count("\n— ") == 2
    assert open_note(note, [b.verifier]) == ("origin\n3\n\nwith an empty line\n", [b.verifier])
    assert open_note(note, [a.verifier, b.verifier])[1] == [a.verifier, b.verifier]


@pytest.mark.parametrize("text", ["", "no final newline", "bad\x00control\n", "cr\r\n"])
def test_sign_rejects_malformed_text(text: str) -> None:
    signer = parse_signer_key(PETER_SKEY)
    with pytest.raises(NoteError):
        sign_note(text, signer)


def test_sign_needs_a_signer() -> None:
    with pytest.raises(NoteError):
        sign_note(TEXT)


@pytest.mark.parametrize("b64", ["AAAA=", "AA=A", "AB==", "A B=", "AAA\n", "Zm9v\u00e9"])
def test_b64decode_is_strict(b64: str) -> None:
    with pytest.raises(NoteError):
        b64decode(b64)


def test_b64decode_accepts_canonical() -> None:
    assert b64decode("Zm9vYg==") == b"foob"
    assert b64decode("") == b""
