"""Tokens from an IdP: keys fetched from a served JWKS, rotation, expiry, refused keys."""

import asyncio
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm

import hub.auth.jwks as jwks_module
from hub.auth.jwks import JwksCache, JwksError, parse_jwks
from hub.auth.principal import Principal
from hub.auth.tokens import TokenIssuer, TokenSettings, TokenVerifier, kid_for
from hub.errors import Unauthenticated

ISSUER = "https://idp.test/realms/hub"
AUDIENCE = "ledger-hub"
SETTINGS = TokenSettings(issuer=ISSUER, audience=AUDIENCE)


class IdpKey:
    """A signing key of the test IdP, with its JWK and a way to mint tokens."""

    def __init__(self, kid: str, alg: str, private: Any) -> None:
        self.kid, self.alg, self.private = kid, alg, private
        if alg == "EdDSA":
            jwk = OKPAlgorithm.to_jwk(private.public_key(), as_dict=True)
        elif alg == "ES256":
            jwk = ECAlgorithm.to_jwk(private.public_key(), as_dict=True)
        else:
            jwk = RSAAlgorithm.to_jwk(private.public_key(), as_dict=True)
        self.jwk = {**jwk, "kid": kid, "alg": alg, "use": "sig"}

    def token(self, *, alg: str | None = None, **claims: Any) -> str:
        now = int(time.time())
        payload = {
            "iss": ISSUER,
            "aud": AUDIENCE,
            "sub": "agent-7",
            "iat": now,
            "exp": now + 300,
            "role": "agency",
            "inst": "A01",
            **claims,
        }
        headers = {"kid": self.kid, "typ": "at+jwt"}
        return jwt.encode(payload, self.private, algorithm=alg or self.alg, headers=headers)


def ed_key(kid: str) -> IdpKey:
    return IdpKey(kid, "EdDSA", Ed25519PrivateKey.generate())


def ec_key(kid: str) -> IdpKey:
    return IdpKey(kid, "ES256", ec.generate_private_key(ec.SECP256R1()))


def key_set(*keys: IdpKey, extra: list[Any] | None = None) -> bytes:
    return json.dumps({"keys": [k.jwk for k in keys] + (extra or [])}).encode()


class JwksServer:
    """A real HTTP server on 127.0.0.1 serving whatever ``body``/``status`` currently are."""

    def __init__(self) -> None:
        self.body = b'{"keys": []}'
        self.status = 200
        self.hits = 0
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                server.hits += 1
                self.send_response(server.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(server.body)))
                self.end_headers()
                self.wfile.write(server.body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        # The socket is bound and listening once the constructor returns, so requests
        # queue in the backlog until serve_forever picks them up: no readiness wait needed.
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/jwks.json"
        # A short poll interval keeps shutdown() from costing half a second per test.
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True
        )

    def serve(self, *keys: IdpKey) -> None:
        self.body = key_set(*keys)


@pytest.fixture
def server() -> Iterator[JwksServer]:
    srv = JwksServer()
    srv.thread.start()
    yield srv
    srv.httpd.shutdown()
    srv.httpd.server_close()
    srv.thread.join()


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


def verifier_for(cache: JwksCache, settings: TokenSettings = SETTINGS) -> TokenVerifier:
    return TokenVerifier(settings, {}, jwks=cache)


async def test_idp_tokens_verify_with_keys_from_a_served_jwks(
    server: JwksServer, clock: Clock
) -> None:
    ed, es = ed_key("ed-1"), ec_key("ec-1")
    server.serve(ed, es)
    verifier = verifier_for(JwksCache(server.url, clock=clock))
    expected = Principal(role="agency", sub="agent-7", inst="A01")
    assert await verifier.verify(ed.token()) == expected
    assert await verifier.verify(es.token()) == expected
    assert server.hits == 1  # both keys came from one cached fetch


async def test_rsa_key_from_jwks_is_accepted_for_rs256(server: JwksServer, clock: Clock) -> None:
    rs = IdpKey("rsa-1", "RS256", rsa.generate_private_key(public_exponent=65537, key_size=2048))
    server.serve(rs)
    verifier = verifier_for(JwksCache(server.url, clock=clock))
    assert (await verifier.verify(rs.token(role="patient", inst=None))).role == "patient"


async def test_rotated_key_is_picked_up_and_removed_key_fails(
    server: JwksServer, clock: Clock
) -> None:
    old, new = ed_key("2024-old"), ec_key("2025-new")
    server.serve(old)
    verifier = verifier_for(JwksCache(server.url, ttl=300, min_refresh_interval=10, clock=clock))
    old_token = old.token()
    assert (await verifier.verify(old_token)).inst == "A01"

    server.serve(new)  # the IdP rotates: the old key is gone
    clock.now += 11  # well within the TTL; only the unknown kid forces the refetch
    assert (await verifier.verify(new.token())).inst == "A01"
    assert server.hits == 2
    with pytest.raises(Unauthenticated, match="unknown key id"):
        await verifier.verify(old_token)


async def test_ttl_expiry_refetches_and_drops_removed_keys(
    server: JwksServer, clock: Clock
) -> None:
    a, b = ed_key("a"), ed_key("b")
    server.serve(a, b)
    verifier = verifier_for(JwksCache(server.url, ttl=300, clock=clock))
    token_a = a.token()
    assert await verifier.verify(token_a)
    server.serve(b)
    clock.now += 299
    assert await verifier.verify(token_a)  # still cached
    assert server.hits == 1
    clock.now += 1
    with pytest.raises(Unauthenticated, match="unknown key id"):
        await verifier.verify(token_a)
    assert server.hits == 2


async def test_unknown_kids_cannot_hammer_the_idp(server: JwksServer, clock: Clock) -> None:
    known = ed_key("known")
    server.serve(known)
    cache = JwksCache(server.url, min_refresh_interval=10, clock=clock)
    await cache.key_for("known")
    assert server.hits == 1
    clock.now += 10
    for i in range(20):
        with pytest.raises(Unauthenticated, match="unknown key id"):
            await cache.key_for(f"random-{i}")
    assert server.hits == 2  # one refetch for the first unknown kid, none for the rest
    clock.now += 10
    with pytest.raises(Unauthenticated, match="unknown key id"):
        await cache.key_for("random-again")
    assert server.hits == 3


async def test_concurrent_lookups_share_one_fetch(server: JwksServer, clock: Clock) -> None:
    key = ed_key("k")
    server.serve(key)
    cache = JwksCache(server.url, clock=clock)
    results = await asyncio.gather(*(cache.key_for("k") for _ in range(10)))
    assert {alg for _, alg in results} == {"EdDSA"}
    assert server.hits == 1


async def test_fetch_runs_off_the_event_loop(clock: Clock) -> None:
    key = ed_key("k")
    threads: list[int] = []

    def fetch(url: str) -> bytes:
        threads.append(threading.get_ident())
        return key_set(key)

    cache = JwksCache("https://idp.test/jwks", fetch=fetch, clock=clock)
    _, alg = await cache.key_for("k")
    assert alg == "EdDSA"
    assert threads and threads[0] != threading.get_ident()


async def test_idp_down_at_first_use(server: JwksServer, clock: Clock) -> None:
    key = ed_key("k")
    server.serve(key)
    server.status = 503
    verifier = verifier_for(JwksCache(server.url, min_refresh_interval=10, clock=clock))
    with pytest.raises(Unauthenticated, match="keys are unavailable"):
        await verifier.verify(key.token())
    server.status = 200
    clock.now += 10
    assert await verifier.verify(key.token())


async def test_failed_refresh_keeps_the_previous_keys(server: JwksServer, clock: Clock) -> None:
    key = ed_key("k")
    server.serve(key)
    verifier = verifier_for(JwksCache(server.url, ttl=60, clock=clock))
    assert await verifier.verify(key.token())
    server.body = b"<html>maintenance</html>"
    clock.now += 61
    assert await verifier.verify(key.token())
    assert server.hits == 2


async def test_oversized_jwks_is_refused(
    server: JwksServer, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = ed_key("k")
    server.serve(key)
    monkeypatch.setattr(jwks_module, "MAX_JWKS_BYTES", len(server.body) - 1)
    with pytest.raises(Unauthenticated, match="unavailable"):
        await JwksCache(server.url, clock=clock).key_for("k")


async def test_local_keys_take_precedence_over_the_jwks(server: JwksServer, clock: Clock) -> None:
    hub_key = Ed25519PrivateKey.generate()
    kid = kid_for(hub_key.public_key())
    impostor = IdpKey(kid, "EdDSA", Ed25519PrivateKey.generate())
    server.serve(impostor)
    verifier = TokenVerifier(
        SETTINGS, {kid: hub_key.public_key()}, jwks=JwksCache(server.url, clock=clock)
    )
    own = TokenIssuer(hub_key, kid, SETTINGS).issue(role="admin", sub="ops")
    assert (await verifier.verify(own)).role == "admin"
    with pytest.raises(Unauthenticated, match="signature does not verify"):
        await verifier.verify(impostor.token())
    assert server.hits == 0


async def test_jwks_algorithms_are_configurable(server: JwksServer, clock: Clock) -> None:
    es = ec_key("ec")
    server.serve(es)
    ed_only = TokenSettings(issuer=ISSUER, audience=AUDIENCE, jwks_algorithms=("EdDSA",))
    with pytest.raises(Unauthenticated, match="algorithm is not allowed"):
        await verifier_for(JwksCache(server.url, clock=clock), ed_only).verify(es.token())
    assert server.hits == 0  # refused before any key lookup


async def test_header_alg_must_match_the_jwks_key(server: JwksServer, clock: Clock) -> None:
    es = ec_key("ec")
    ed = ed_key("ed")
    server.serve(es, ed)
    verifier = verifier_for(JwksCache(server.url, clock=clock))
    # An EdDSA-signed token that claims the EC key's kid.
    forged = jwt.encode(
        {"iss": ISSUER, "aud": AUDIENCE, "sub": "x", "iat": 0, "exp": 1, "role": "admin"},
        ed.private,
        algorithm="EdDSA",
        headers={"kid": "ec", "typ": "JWT"},
    )
    with pytest.raises(Unauthenticated, match="does not match its key"):
        await verifier.verify(forged)


async def test_symmetric_jwks_members_never_verify(server: JwksServer, clock: Clock) -> None:
    ed = ed_key("ed")
    secret = b"s" * 32
    oct_jwk = {"kty": "oct", "kid": "shared", "alg": "HS256", "k": "c" * 43}
    server.body = key_set(ed, extra=[oct_jwk])
    verifier = verifier_for(JwksCache(server.url, clock=clock))
    token = jwt.encode(
        {"iss": ISSUER, "aud": AUDIENCE, "sub": "x", "iat": 0, "exp": 1, "role": "admin"},
        secret,
        algorithm="HS256",
        headers={"kid": "shared"},
    )
    with pytest.raises(Unauthenticated, match="algorithm is not allowed"):
        await verifier.verify(token)
    with pytest.raises(Unauthenticated, match="unknown key id"):
        await JwksCache(server.url, clock=clock).key_for("shared")


def test_parse_jwks_keeps_only_usable_signing_keys() -> None:
    good = ed_key("good")
    private_jwk = {**OKPAlgorithm.to_jwk(good.private, as_dict=True), "kid": "private"}
    weak_rsa = RSAAlgorithm.to_jwk(
        rsa.generate_private_key(public_exponent=65537, key_size=1024).public_key(), as_dict=True
    )
    ec_enc = {**ec_key("x").jwk, "kid": "enc", "use": "enc"}
    no_verify = {**ed_key("x").jwk, "kid": "wrap", "key_ops": ["wrapKey"]}
    no_kid = {k: v for k, v in ed_key("x").jwk.items() if k != "kid"}
    body = key_set(
        good,
        extra=[
            private_jwk,
            {**weak_rsa, "kid": "weak"},
            ec_enc,
            no_verify,
            no_kid,
            {"kty": "OKP", "crv": "X25519", "kid": "xdh", "x": good.jwk["x"]},
            {"kty": "EC", "kid": "broken", "crv": "P-256", "x": "AA", "y": "AA"},
            "not an object",
        ],
    )
    keys = parse_jwks(body)
    assert set(keys) == {"good"}
    assert keys["good"][1] == "EdDSA"


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        (b"not json", "not JSON"),
        (b"[]", "no keys array"),
        (b'{"keys": {}}', "no keys array"),
        (b'{"keys": []}', "no usable signing key"),
        (b'{"keys": [{"kty": "oct", "kid": "k", "k": "AAAA"}]}', "no usable signing key"),
    ],
)
def test_parse_jwks_rejects_sets_without_usable_keys(body: bytes, problem: str) -> None:
    with pytest.raises(JwksError, match=problem):
        parse_jwks(body)


def test_only_http_urls() -> None:
    with pytest.raises(ValueError, match="http"):
        JwksCache("file:///etc/jwks.json")
