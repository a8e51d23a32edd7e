"""Checking a receipt's checkpoint against a witness policy (`hub proof verify --policy`)."""

from pathlib import Path

from hub.errors import HubError
from hub.ledger.note import NoteError, Verifier
from hub.ledger.policy import parse_policy
from hub.ledger.receipt import parse_receipt


class NotWitnessed(HubError):
    code = "NOT_WITNESSED"


def check_receipt_policy(text: str, policy_file: Path, log_key: Verifier) -> str:
    """`` witnessed by a, b`` when the receipt's checkpoint meets the policy; else raises."""
    policy = parse_policy(policy_file.read_text(encoding="utf-8"))
    note = parse_receipt(text).checkpoint_note
    try:
        _, names = policy.verify(note, [] if policy.logs else [log_key])
    except NoteError as exc:
        raise NotWitnessed(f"the receipt's checkpoint does not meet the policy: {exc}") from None
    return f", witnessed by {', '.join(names)}" if names else ""
