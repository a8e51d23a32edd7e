"""Settings read once from the environment (DESIGN.md, "Public contract")."""

import os
import re
from dataclasses import dataclass
from pathlib import Path

DEFAULT_DATABASE_URL = "sqlite://var/hub.db"
DEFAULT_ORIGIN = "ledger-hub.local/log"
# Where `make run` serves; a deployment sets HUB_PUBLIC_URL to its public origin.
DEFAULT_PUBLIC_URL = "http://127.0.0.1:8000"
_PUBLIC_URL = re.compile(r"https?://[A-Za-z0-9.\-]+(:[0-9]{1,5})?(/[A-Za-z0-9._~\-/]*)?")


def public_url(text: str) -> str:
    """HUB_PUBLIC_URL checked: an http(s) origin with an optional path, no query."""
    if not _PUBLIC_URL.fullmatch(text):
        raise ValueError(
            f"HUB_PUBLIC_URL must be an http(s) URL such as https://hub.example.org, not {text!r}"
        )
    return text.rstrip("/")


INTEGRATORS = ("process", "inline")


@dataclass(frozen=True)
class Settings:
    database_url: str = DEFAULT_DATABASE_URL
    data_dir: Path = Path("var")
    origin: str = DEFAULT_ORIGIN
    env: str = "dev"
    jwks_url: str | None = None
    jwt_issuer: str = "ledger-hub"
    jwt_audience: str = "ledger-hub"
    log_key_file: Path | None = None
    jwt_key_file: Path | None = None
    # GraphQL requests per second per principal (per client address without a token),
    # bursts of twice that; 0 turns the limit off (benchmarks, trusted gateways in front).
    rate_limit: float = 100.0
    # A C2SP tlog-policy file naming the witnesses; None: the log is not witnessed.
    witness_policy: Path | None = None
    # The origin printed links and QR codes use (never a request's Host header).
    public_url: str = DEFAULT_PUBLIC_URL
    # On a SQLite file, where the ledger's integrating transactions run: "process" (a
    # child process, hub.store.sqlite_integrator: the serving loop keeps its GIL under load) or
    # "inline" (the serving process's writer thread: no child to start, for small hubs
    # and for tests that are not about the child).
    sqlite_integrator: str = "process"

    def __post_init__(self) -> None:
        if self.sqlite_integrator not in INTEGRATORS:
            raise ValueError(
                f"sqlite_integrator must be 'process' or 'inline', not {self.sqlite_integrator!r}"
            )

    @property
    def prod(self) -> bool:
        return self.env == "prod"

    @property
    def keys_dir(self) -> Path:
        return self.data_dir / "keys"

    @property
    def log_key_path(self) -> Path:
        return self.log_key_file or self.keys_dir / "log.key"

    @property
    def jwt_key_path(self) -> Path:
        return self.jwt_key_file or self.keys_dir / "jwt-ed25519.pem"

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> "Settings":
        env = dict(os.environ if environ is None else environ)

        def path(name: str) -> Path | None:
            return Path(env[name]) if env.get(name) else None

        mode = env.get("HUB_ENV", "dev")
        if mode not in ("dev", "prod"):
            raise ValueError(f"HUB_ENV must be 'dev' or 'prod', not {mode!r}")
        rate = env.get("HUB_RATE_LIMIT") or "100"
        try:
            rate_limit = float(rate)
        except ValueError:
            raise ValueError(f"HUB_RATE_LIMIT must be a number, not {rate!r}") from None
        if not rate_limit >= 0 or rate_limit == float("inf"):
            raise ValueError(f"HUB_RATE_LIMIT must be 0 (off) or a positive number, not {rate!r}")
        integrator = env.get("HUB_SQLITE_INTEGRATOR") or "process"
        if integrator not in INTEGRATORS:
            raise ValueError(
                f"HUB_SQLITE_INTEGRATOR must be 'process' or 'inline', not {integrator!r}"
            )
        return cls(
            database_url=env.get("HUB_DATABASE_URL") or DEFAULT_DATABASE_URL,
            data_dir=Path(env.get("HUB_DATA_DIR") or "var"),
            origin=env.get("HUB_ORIGIN") or DEFAULT_ORIGIN,
            env=mode,
            jwks_url=env.get("HUB_JWKS_URL") or None,
            jwt_issuer=env.get("HUB_JWT_ISSUER") or "ledger-hub",
            jwt_audience=env.get("HUB_JWT_AUDIENCE") or "ledger-hub",
            log_key_file=path("HUB_LOG_KEY_FILE"),
            jwt_key_file=path("HUB_JWT_KEY_FILE"),
            rate_limit=rate_limit,
            witness_policy=path("HUB_WITNESS_POLICY"),
            public_url=public_url(env.get("HUB_PUBLIC_URL") or DEFAULT_PUBLIC_URL),
            sqlite_integrator=integrator,
        )
