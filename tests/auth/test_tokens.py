"""The hub's own tokens: issued claims and header, and every way verification refuses."""

import base64
import hashlib
import hmac
import json
import stat
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
)

from hub.auth.principal import ROLES, Principal
from hub.auth.tokens import (
    LEEWAY_SECONDS,
    MAX_TOKEN_LENGTH,
    TokenIssuer,
    TokenSettings,
    TokenVerifier,
    kid_for,
    load_or_create_jwt_key,
    public_jwks,
)
from hub.errors import Unauthenticated

ISSUER = "https://hub.test"
AUDIENCE = "ledger-hub"
SETTINGS = TokenSettings(issuer=ISSUER, audience=AUDIENCE)


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def forge(header: dict[str, Any], claims: dict[str, Any], sign: Callable[[bytes], bytes]) -> str:
    """A compact JWS built by hand, so headers and claims can be anything."""
    signing_input = (
        f"{b64url(json.dumps(header).encode())}.{b64url(json.dumps(claims).encode())}".encode()
    )
    return f"{signing_input.decode()}.{b64url(sign(signing_input))}"


@dataclass
class Hub:
    key: Ed25519PrivateKey
    kid: str
    issuer: TokenIssuer
    verifier: TokenVerifier

    def claims(self, **changes: Any) -> dict[str, Any]:
        now = int(time.time())
        claims = {
            "iss": ISSUER,
            "aud": AUDIENCE,
            "sub": "his-01",
            "iat": now,
            "nbf": now,
            "exp": now + 600,
            "role": "hospital",
            "inst": "H001",
        }
        claims.update(changes)
        return {k: v for k, v in claims.items() if v is not None}

    def header(self, **changes: Any) -> dict[str, Any]:
        header = {"alg": "EdDSA", "typ": "JWT", "kid": self.kid}
        header.update(changes)
        return {k: v for k, v in header.items() if v is not None}

    def signed(self, claims: dict[str, Any], header: dict[str, Any] | None = None) -> str:
        return forge(header or self.header(), claims, self.key.sign)


@pytest.fixture
def hub() -> Hub:
    key = Ed25519PrivateKey.generate()
    kid = kid_for(key.public_key())
    return Hub(
        key=key,
        kid=kid,
        issuer=TokenIssuer(key, kid, SETTINGS),
        verifier=TokenVerifier(SETTINGS, {kid: key.public_key()}),
    )


def public_raw(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(Encoding.Raw, PublicFormat.Raw)


# -- issuing and verifying -------------------------------------------------------------


@pytest.mark.parametrize("role", ROLES)
async def test_issued_token_verifies_to_its_principal(hub: Hub, role: str) -> None:
    inst = "H001" if role in ("hospital", "agency") else None
    token = hub.issuer.issue(role=role, sub=f"{role}-7", inst=inst)
    assert await hub.verifier.verify(token) == Principal(role=role, sub=f"{role}-7", inst=inst)


async def test_optional_inst_is_carried_for_other_roles(hub: Hub) -> None:
    token = hub.issuer.issue(role="witness", sub="monitor", inst="H002")
    assert await hub.verifier.verify(token) == Principal("witness", "monitor", "H002")


def test_issued_claims_and_header(hub: Hub) -> None:
    token = hub.issuer.issue(
        role="agency", sub="fin-bureau", inst="A01", ttl=900, now=1_700_000_000
    )
    header = jwt.get_unverified_header(token)
    assert header == {"alg": "EdDSA", "typ": "JWT", "kid": hub.kid}
    claims = jwt.decode(token, options={"verify_signature": False})
    jti = claims.pop("jti")
    assert isinstance(jti, str) and len(jti) >= 16
    assert claims == {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": "fin-bureau",
        "iat": 1_700_000_000,
        "nbf": 1_700_000_000,
        "exp": 1_700_000_900,
        "role": "agency",
        "inst": "A01",
    }
    # The signature is a real Ed25519 signature over the first two segments.
    signing_input, _, signature = token.rpartition(".")
    hub.key.public_key().verify(b64url_decode(signature), signing_input.encode())


def test_issued_tokens_have_distinct_jti(hub: Hub) -> None:
    a, b = (hub.issuer.issue(role="admin", sub="ops", now=0) for _ in range(2))
    decode = jwt.decode
    assert (
        decode(a, options={"verify_signature": False})["jti"]
        != decode(b, options={"verify_signature": False})["jti"]
    )


@pytest.mark.parametrize(
    ("kwargs", "problem"),
    [
        ({"role": "hospital", "sub": "his"}, "requires an institution"),
        ({"role": "agency", "sub": "tax"}, "requires an institution"),
        ({"role": "superuser", "sub": "x"}, "role must be one of"),
        ({"role": "patient", "sub": ""}, "sub must be a non-empty string"),
        ({"role": "admin", "sub": "ops", "ttl": 0}, "ttl must be a positive"),
        ({"role": "admin", "sub": "ops", "ttl": True}, "ttl must be a positive"),
        ({"role": "admin", "sub": "ops", "ttl": 7 * 24 * 3600 + 1}, "ttl must not exceed"),
    ],
)
def test_issue_rejects_bad_requests(hub: Hub, kwargs: dict[str, Any], problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        hub.issuer.issue(**kwargs)


def test_settings_refuse_symmetric_or_no_algorithms() -> None:
    for algs in (("HS256",), ("EdDSA", "none")):
        with pytest.raises(ValueError, match="not an allowed asymmetric algorithm"):
            TokenSettings(issuer=ISSUER, audience=AUDIENCE, algorithms=algs)
    with pytest.raises(ValueError, match="not an allowed asymmetric algorithm"):
        TokenSettings(issuer=ISSUER, audience=AUDIENCE, jwks_algorithms=("HS512",))
    with pytest.raises(ValueError, match="non-empty"):
        TokenSettings(issuer="", audience=AUDIENCE)


def test_issuer_needs_eddsa_allowed() -> None:
    key = Ed25519PrivateKey.generate()
    es_only = TokenSettings(issuer=ISSUER, audience=AUDIENCE, algorithms=("ES256",))
    with pytest.raises(ValueError, match="EdDSA is not an allowed algorithm"):
        TokenIssuer(key, "k", es_only)


# -- leeway --------------------------------------------------------------------------


async def test_expiry_within_leeway_is_accepted(hub: Hub) -> None:
    # exp lies (leeway - 10) s in the past: still inside the allowed clock skew.
    token = hub.issuer.issue(
        role="admin", sub="ops", ttl=60, now=time.time() - 60 - (LEEWAY_SECONDS - 10)
    )
    assert (await hub.verifier.verify(token)).role == "admin"


async def test_start_within_leeway_is_accepted(hub: Hub) -> None:
    token = hub.issuer.issue(role="admin", sub="ops", ttl=60, now=time.time() + LEEWAY_SECONDS - 10)
    assert (await hub.verifier.verify(token)).role == "admin"


# -- rejections ----------------------------------------------------------------------


def _hs256_with(secret_of: Callable[[Ed25519PublicKey], bytes]) -> Callable[[Hub], str]:
    def build(h: Hub) -> str:
        secret = secret_of(h.key.public_key())
        return forge(
            h.header(alg="HS256"),
            h.claims(),
            lambda data: hmac.new(secret, data, hashlib.sha256).digest(),
        )

    return build


def _altered_payload(h: Hub) -> str:
    header, _, signature = h.issuer.issue(role="hospital", sub="his", inst="H001").split(".")
    claims = h.claims(role="admin", inst=None, sub="his")
    return f"{header}.{b64url(json.dumps(claims).encode())}.{signature}"


def _flipped_signature(h: Hub) -> str:
    token = h.issuer.issue(role="admin", sub="ops")
    head, _, sig = token.rpartition(".")
    raw = bytearray(b64url_decode(sig))
    raw[0] ^= 1
    return f"{head}.{b64url(bytes(raw))}"


def _other_key_same_kid(h: Hub) -> str:
    return forge(h.header(), h.claims(), Ed25519PrivateKey.generate().sign)


def _unknown_kid(h: Hub) -> str:
    stranger = Ed25519PrivateKey.generate()
    kid = kid_for(stranger.public_key())
    return TokenIssuer(stranger, kid, SETTINGS).issue(role="admin", sub="ops")


def _es256_local(h: Hub) -> str:
    ec_key = ec.generate_private_key(ec.SECP256R1())
    return jwt.encode(h.claims(), ec_key, algorithm="ES256", headers={"kid": h.kid})


def _issued_by(settings: TokenSettings) -> Callable[[Hub], str]:
    return lambda h: TokenIssuer(h.key, h.kid, settings).issue(role="admin", sub="ops")


def _too_long_lived(h: Hub) -> str:
    claims = h.claims()
    claims["exp"] = claims["iat"] + SETTINGS.max_ttl + 1
    return h.signed(claims)


REJECTED: list[tuple[str, Callable[[Hub], str], str]] = [
    (
        "alg none",
        lambda h: forge(h.header(alg="none"), h.claims(), lambda _: b""),
        "algorithm is not allowed",
    ),
    (
        "alg None",
        lambda h: forge(h.header(alg="None"), h.claims(), lambda _: b""),
        "algorithm is not allowed",
    ),
    ("HS256 with raw public key", _hs256_with(public_raw), "algorithm is not allowed"),
    (
        "HS256 with PEM public key",
        _hs256_with(lambda k: k.public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)),
        "algorithm is not allowed",
    ),
    (
        "HS256 with JWK x",
        _hs256_with(lambda k: b64url(public_raw(k)).encode()),
        "algorithm is not allowed",
    ),
    ("ES256 for an Ed25519 kid", _es256_local, "algorithm is not allowed"),
    (
        "expired",
        lambda h: h.issuer.issue(
            role="admin", sub="ops", ttl=60, now=time.time() - 60 - LEEWAY_SECONDS - 30
        ),
        "has expired",
    ),
    (
        "not yet valid (nbf)",
        lambda h: h.signed(h.claims(nbf=int(time.time()) + LEEWAY_SECONDS + 60)),
        "not yet valid",
    ),
    (
        "not yet valid (iat)",
        lambda h: h.issuer.issue(role="admin", sub="ops", now=time.time() + LEEWAY_SECONDS + 60),
        "not yet valid",
    ),
    (
        "wrong aud",
        _issued_by(TokenSettings(issuer=ISSUER, audience="other-app")),
        "another audience",
    ),
    (
        "wrong iss",
        _issued_by(TokenSettings(issuer="https://evil.test", audience=AUDIENCE)),
        "another issuer",
    ),
    ("aud list without ours", lambda h: h.signed(h.claims(aud=["a", "b"])), "another audience"),
    ("missing exp", lambda h: h.signed(h.claims(exp=None)), "missing the exp claim"),
    ("missing sub", lambda h: h.signed(h.claims(sub=None)), "missing the sub claim"),
    ("missing iat", lambda h: h.signed(h.claims(iat=None)), "missing the iat claim"),
    ("missing iss", lambda h: h.signed(h.claims(iss=None)), "missing the iss claim"),
    ("missing aud", lambda h: h.signed(h.claims(aud=None)), "missing the aud claim"),
    (
        "exp as string",
        lambda h: h.signed(h.claims(exp=str(int(time.time()) + 600))),
        "exp claim must be a number",
    ),
    ("sub not a string", lambda h: h.signed(h.claims(sub=42)), "sub"),
    (
        "lifetime too long",
        _too_long_lived,
        "lifetime exceeds",
    ),
    ("unknown kid", _unknown_kid, "unknown key id"),
    ("missing kid", lambda h: h.signed(h.claims(), h.header(kid=None)), "key id"),
    ("kid not a string", lambda h: h.signed(h.claims(), h.header(kid=7)), "malformed"),
    ("altered payload", _altered_payload, "signature does not verify"),
    ("flipped signature bit", _flipped_signature, "signature does not verify"),
    ("signed by another key", _other_key_same_kid, "signature does not verify"),
    ("missing typ", lambda h: h.signed(h.claims(), h.header(typ=None)), "typ"),
    ("typ JOSE", lambda h: h.signed(h.claims(), h.header(typ="JOSE")), "typ"),
    ("typ dpop+jwt", lambda h: h.signed(h.claims(), h.header(typ="dpop+jwt")), "typ"),
    ("crit header", lambda h: h.signed(h.claims(), h.header(crit=["exp"])), "malformed"),
    ("b64 false", lambda h: h.signed(h.claims(), h.header(b64=False, crit=["b64"])), "malformed"),
    (
        "crit b64 true",
        lambda h: h.signed(h.claims(), h.header(b64=True, crit=["b64"])),
        "unsupported critical header",
    ),
    ("no role", lambda h: h.signed(h.claims(role=None)), "no role claim"),
    ("unknown role", lambda h: h.signed(h.claims(role="root")), "role must be one of"),
    ("hospital without inst", lambda h: h.signed(h.claims(inst=None)), "requires an institution"),
    ("not a JWT", lambda h: "not-a-token", "malformed"),
    ("bad base64 header", lambda h: "!!!.e30.AA", "malformed"),
    ("empty", lambda h: "", "empty"),
    ("too long", lambda h: "a" * (MAX_TOKEN_LENGTH + 1), "longer than"),
]


@pytest.mark.parametrize(
    ("build", "problem"), [c[1:] for c in REJECTED], ids=[c[0] for c in REJECTED]
)
async def test_rejected_tokens(hub: Hub, build: Callable[[Hub], str], problem: str) -> None:
    token = build(hub)
    with pytest.raises(Unauthenticated) as info:
        await hub.verifier.verify(token)
    error = info.value
    assert error.code == "UNAUTHENTICATED"
    assert problem in error.message
    assert error.message == str(error)
    # Neither the token nor any of its segments leaks into the message.
    assert all(part not in error.message for part in token.split(".") if len(part) > 8)
    assert error.__cause__ is None


@pytest.mark.parametrize("typ", ["JWT", "jwt", "at+jwt", "AT+JWT", "application/at+jwt"])
async def test_accepted_typ_values(hub: Hub, typ: str) -> None:
    token = hub.signed(hub.claims(), hub.header(typ=typ))
    assert await hub.verifier.verify(token) == Principal("hospital", "his-01", "H001")


async def test_audience_list_containing_ours_is_accepted(hub: Hub) -> None:
    token = hub.signed(hub.claims(aud=["other", AUDIENCE]))
    assert (await hub.verifier.verify(token)).inst == "H001"


async def test_verifier_with_several_local_keys_picks_by_kid() -> None:
    old, new = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    keys = {kid_for(k.public_key()): k.public_key() for k in (old, new)}
    verifier = TokenVerifier(SETTINGS, keys)
    for key in (old, new):
        token = TokenIssuer(key, kid_for(key.public_key()), SETTINGS).issue(role="admin", sub="a")
        assert (await verifier.verify(token)).sub == "a"


# -- keys ----------------------------------------------------------------------------


def test_kid_is_the_rfc8037_thumbprint() -> None:
    # RFC 8037 appendix A.2 / A.3: the Ed25519 example key and its RFC 7638 thumbprint.
    x = b64url_decode("11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo")
    key = Ed25519PublicKey.from_public_bytes(x)
    assert kid_for(key) == "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"


async def test_public_jwks_round_trips_through_pyjwt(hub: Hub) -> None:
    jwks = public_jwks({hub.kid: hub.key.public_key()})
    (member,) = jwks["keys"]
    assert member["kid"] == hub.kid
    assert (member["kty"], member["crv"], member["alg"], member["use"]) == (
        "OKP",
        "Ed25519",
        "EdDSA",
        "sig",
    )
    assert "d" not in member
    jwk = jwt.PyJWK(member)
    assert public_raw(jwk.key) == public_raw(hub.key.public_key())
    token = hub.issuer.issue(role="auditor", sub="aud-1")
    assert jwt.decode(token, jwk, algorithms=["EdDSA"], audience=AUDIENCE)["sub"] == "aud-1"


def test_load_or_create_jwt_key_creates_private_pkcs8_once(tmp_path: Path) -> None:
    path = tmp_path / "keys" / "jwt.pem"
    key = load_or_create_jwt_key(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----")
    again = load_or_create_jwt_key(path)
    assert public_raw(again.public_key()) == public_raw(key.public_key())
    assert [p.name for p in path.parent.iterdir()] == ["jwt.pem"]  # no temp file left


def test_load_or_create_jwt_key_refuses_other_keys(tmp_path: Path) -> None:
    ec_pem = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()
    )
    (tmp_path / "ec.pem").write_bytes(ec_pem)
    with pytest.raises(ValueError, match="not an Ed25519 private key"):
        load_or_create_jwt_key(tmp_path / "ec.pem")
    (tmp_path / "junk.pem").write_bytes(b"hello")
    with pytest.raises(ValueError, match="not an unencrypted PEM private key"):
        load_or_create_jwt_key(tmp_path / "junk.pem")
