"""The log's signing key and its files under HUB_DATA_DIR (or HUB_LOG_KEY_FILE)."""

import os
from pathlib import Path

from hub.errors import ConfigError
from hub.ledger.note import Signer, generate_signer_key, parse_signer_key


def write_secret(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)


def create_log_key(path: Path, name: str) -> bool:
    """Create the C2SP signer key file if missing; True when a new key was written."""
    if path.exists():
        return False
    skey, _ = generate_signer_key(name)
    write_secret(path, (skey + "\n").encode())
    return True


def load_log_signer(path: Path) -> Signer:
    try:
        text = path.read_text().strip()
    except FileNotFoundError:
        raise ConfigError(f"no log signing key at {path}: run `hub keys init`") from None
    try:
        return parse_signer_key(text)
    except ValueError as exc:
        raise ConfigError(f"the log signing key in {path} is malformed: {exc}") from None
