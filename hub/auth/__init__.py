"""Principals and bearer tokens: who is calling, proven by a JWT."""

from hub.auth.jwks import JwksCache
from hub.auth.principal import ANONYMOUS, INSTITUTION_ROLES, ROLES, Principal
from hub.auth.tokens import (
    ALLOWED_ALGORITHMS,
    JWKS_ALGORITHMS,
    LEEWAY_SECONDS,
    TOKEN_TYP,
    TokenIssuer,
    TokenSettings,
    TokenVerifier,
    kid_for,
    load_or_create_jwt_key,
    public_jwks,
)

__all__ = [
    "ALLOWED_ALGORITHMS",
    "ANONYMOUS",
    "INSTITUTION_ROLES",
    "JWKS_ALGORITHMS",
    "LEEWAY_SECONDS",
    "ROLES",
    "TOKEN_TYP",
    "JwksCache",
    "Principal",
    "TokenIssuer",
    "TokenSettings",
    "TokenVerifier",
    "kid_for",
    "load_or_create_jwt_key",
    "public_jwks",
]
