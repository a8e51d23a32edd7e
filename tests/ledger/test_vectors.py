"""Golden RFC 6962/9162 proofs from transparency-dev/merkle's testdata (tests/vectors/tlog).

Every file states whether a correct verifier accepts it; the broken ones (flipped bits, wrong
index or size, garbage around the proof, empty roots) must raise ProofError.
"""

import base64
import json
from pathlib import Path
from typing import Any

import pytest

from hub.ledger.tree import (
    ProofError,
    root_from_consistency_proof,
    root_from_inclusion_proof,
    verify_consistency,
    verify_inclusion,
)
from tests.vectors import TLOG_VECTORS, VENDORED

VECTORS_DIR = TLOG_VECTORS
KINDS = ("inclusion", "consistency")


def _vector_files() -> list[Path]:
    return sorted(p for kind in KINDS for p in (VECTORS_DIR / kind).rglob("*.json"))


def _require_vectors() -> None:
    # Vendored in the repository: absent means a broken checkout or a wrong HUB_VECTORS_DIR.
    if not VECTORS_DIR.is_dir():
        pytest.fail(f"golden vectors not found at {VECTORS_DIR} (HUB_VECTORS_DIR?)")


def _b64(value: str) -> bytes:
    return base64.b64decode(value, validate=True)


def _proof(vector: dict[str, Any]) -> list[bytes]:
    return [_b64(h) for h in vector["proof"] or []]  # null means an empty proof


def _id(path: Path) -> str:
    return path.relative_to(VECTORS_DIR).as_posix()


# One placeholder keeps the test (and its failure) visible when the folder is absent.
FILES: list[Path | None] = list(_vector_files()) or [None]


def test_the_vendored_vectors_carry_their_licence_and_origin() -> None:
    licence = (VENDORED / "tlog" / "LICENSE").read_text()
    assert "Apache License" in licence and "Version 2.0" in licence
    assert "transparency-dev/merkle" in (VENDORED / "README.md").read_text()


def test_vector_directory_is_populated() -> None:
    _require_vectors()
    files = _vector_files()
    for kind in KINDS:
        verdicts = [json.loads(p.read_text())["wantErr"] for p in files if _id(p).startswith(kind)]
        assert len(verdicts) >= 90, f"only {len(verdicts)} {kind} vectors in {VECTORS_DIR}"
        assert verdicts.count(False) >= 5, f"too few {kind} vectors that must verify"
        assert verdicts.count(True) >= 80, f"too few {kind} vectors that must be rejected"


@pytest.mark.parametrize("path", FILES, ids=lambda p: _id(p) if p else "missing")
def test_vector(path: Path | None) -> None:
    _require_vectors()
    assert path is not None, f"no vector files under {VECTORS_DIR}"
    vector = json.loads(path.read_text())
    kind = _id(path).split("/", 1)[0]
    if kind == "inclusion":
        index, size = vector["leafIdx"], vector["treeSize"]
        leaf, root = _b64(vector["leafHash"]), _b64(vector["root"])
        proof = _proof(vector)
        if vector["wantErr"]:
            with pytest.raises(ProofError):
                verify_inclusion(index, size, leaf, proof, root)
        else:
            verify_inclusion(index, size, leaf, proof, root)
            assert root_from_inclusion_proof(index, size, leaf, proof) == root
    else:
        size1, size2 = vector["size1"], vector["size2"]
        root1, root2 = _b64(vector["root1"]), _b64(vector["root2"])
        proof = _proof(vector)
        if vector["wantErr"]:
            with pytest.raises(ProofError):
                verify_consistency(size1, size2, proof, root1, root2)
        else:
            verify_consistency(size1, size2, proof, root1, root2)
            assert root_from_consistency_proof(size1, size2, proof, root1) == root2
