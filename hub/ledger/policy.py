"""C2SP tlog-policy files (https://c2sp.org/tlog-policy): which logs, witnesses and quorum.

    log <vkey> [<url>]
    witness <name> <vkey> [<url>]
    group <name> all|any|<k> <member>...
    quorum <name>            (``none``: no cosignature needed)

Whitespace is ASCII spaces and tabs; ``#`` starts a comment line; a group or the quorum
refers only to names defined above it; each name is a member at most once per group;
exactly one quorum line. A checkpoint meets the policy when one of its logs signed it
and the quorum is witnessed by valid cosignatures. Pure: no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field

from hub.ledger.checkpoint import Checkpoint, parse_checkpoint
from hub.ledger.cosignature import Cosignature, parse_cosigner_key, verify_cosignatures
from hub.ledger.note import NoteError, Verifier, open_note, parse_verifier_key

__all__ = ["Group", "Policy", "PolicyError", "PolicyWitness", "parse_policy"]

NONE = "none"
_WS = re.compile(r"[ \t]+")
_DECIMAL = re.compile(r"[1-9][0-9]*")


class PolicyError(NoteError):
    """A policy file is malformed, or a checkpoint does not meet the policy."""


@dataclass(frozen=True)
class PolicyWitness:
    name: str
    key: Verifier
    url: str | None = None


@dataclass(frozen=True)
class Group:
    name: str
    threshold: int
    members: tuple[str, ...]


@dataclass(frozen=True)
class Policy:
    logs: tuple[tuple[Verifier, str | None], ...]
    witnesses: dict[str, PolicyWitness]
    groups: dict[str, Group]
    quorum: str
    text: str = field(default="", compare=False)

    @property
    def log_keys(self) -> list[Verifier]:
        return [key for key, _ in self.logs]

    @property
    def witness_keys(self) -> list[Verifier]:
        return [w.key for w in self.witnesses.values()]

    def witnessed(self, name: str, cosigned: Collection[str]) -> bool:
        """Whether witness or group ``name`` has witnessed, given the witnesses that cosigned."""
        if name == NONE:
            return True
        if name in self.witnesses:
            return name in cosigned
        group = self.groups[name]
        have = sum(1 for m in group.members if self.witnessed(m, cosigned))
        return have >= group.threshold

    def fewest(self, name: str | None = None) -> int:
        """The fewest witnesses whose cosignatures can meet ``name`` (the quorum by default)."""
        name = self.quorum if name is None else name
        if name == NONE:
            return 0
        if name in self.witnesses:
            return 1
        group = self.groups[name]
        return sum(sorted(self.fewest(m) for m in group.members)[: group.threshold])

    def quorum_met(self, cosigned: Collection[str]) -> bool:
        return self.witnessed(self.quorum, cosigned)

    def witness_of(self, key: Verifier) -> str:
        return next(w.name for w in self.witnesses.values() if w.key == key)

    def cosignatures(self, note: str) -> list[Cosignature]:
        """The valid cosignatures on ``note`` by this policy's witnesses (errors on a bad one)."""
        return verify_cosignatures(note, self.witness_keys)

    def verify(self, note: str, logs: Iterable[Verifier] = ()) -> tuple[Checkpoint, list[str]]:
        """Check ``note`` is signed by a log (the policy's, or ``logs`` given) and meets the
        quorum; return its checkpoint and the names of the witnesses that cosigned it."""
        keys = [*self.log_keys, *logs]
        if not keys:
            raise PolicyError("the policy names no log and no log key was given")
        text, _ = open_note(note, keys)
        cp = parse_checkpoint(text)
        names = [self.witness_of(c.witness) for c in self.cosignatures(note)]
        if not self.quorum_met(names):
            got = ", ".join(names) or "none"
            raise PolicyError(
                f"checkpoint {cp.size} is not witnessed by the quorum {self.quorum!r}"
                f" (cosigned by: {got})"
            )
        return cp, names


def _fields(line: str) -> list[str]:
    return [f for f in _WS.split(line.strip(" \t")) if f]


def parse_policy(text: str) -> Policy:
    """Parse a policy file strictly; PolicyError names the line that is wrong."""
    logs: list[tuple[Verifier, str | None]] = []
    witnesses: dict[str, PolicyWitness] = {}
    groups: dict[str, Group] = {}
    quorum: str | None = None
    seen_keys: set[bytes] = set()
    for number, line in enumerate(text.split("\n"), 1):
        where = f"policy line {number}"
        if any((c < " " and c != "\t") or c == "\x7f" for c in line):
            raise PolicyError(f"{where}: control character")
        words = _fields(line)
        if not words or words[0].startswith("#"):
            continue
        keyword, args = words[0], words[1:]
        try:
            if keyword == "log":
                if len(args) not in (1, 2):
                    raise PolicyError("expected: log <vkey> [<url>]")
                key = parse_verifier_key(args[0])
                if key.public_key_bytes in seen_keys:
                    raise PolicyError("duplicate key")
                seen_keys.add(key.public_key_bytes)
                logs.append((key, args[1] if len(args) == 2 else None))
            elif keyword == "witness":
                if len(args) not in (2, 3):
                    raise PolicyError("expected: witness <name> <vkey> [<url>]")
                name = args[0]
                _new_name(name, witnesses, groups)
                key = parse_cosigner_key(args[1])
                if key.public_key_bytes in seen_keys:
                    raise PolicyError("duplicate key")
                seen_keys.add(key.public_key_bytes)
                witnesses[name] = PolicyWitness(name, key, args[2] if len(args) == 3 else None)
            elif keyword == "group":
                if len(args) < 3:
                    raise PolicyError("expected: group <name> all|any|<k> <member>...")
                name, k, members = args[0], args[1], args[2:]
                _new_name(name, witnesses, groups)
                for m in members:
                    if m not in witnesses and m not in groups:
                        raise PolicyError(f"member {m!r} is not defined above")
                if len(set(members)) != len(members):
                    raise PolicyError("a member is listed twice")
                if k == "all":
                    threshold = len(members)
                elif k == "any":
                    threshold = 1
                elif _DECIMAL.fullmatch(k) and int(k) <= len(members):
                    threshold = int(k)
                else:
                    raise PolicyError(f"threshold must be all, any or 1..{len(members)}")
                groups[name] = Group(name, threshold, tuple(members))
            elif keyword == "quorum":
                if len(args) != 1:
                    raise PolicyError("expected: quorum <name>")
                if quorum is not None:
                    raise PolicyError("a second quorum line")
                if args[0] != NONE and args[0] not in witnesses and args[0] not in groups:
                    raise PolicyError(f"quorum {args[0]!r} is not defined above")
                quorum = args[0]
            else:
                raise PolicyError(f"unknown keyword {keyword!r}")
        except NoteError as exc:
            raise PolicyError(f"{where}: {exc}") from None
    if quorum is None:
        raise PolicyError("the policy has no quorum line")
    return Policy(tuple(logs), witnesses, groups, quorum, text)


def _new_name(name: str, witnesses: Collection[str], groups: Collection[str]) -> None:
    if name == NONE:
        raise PolicyError("'none' is predefined")
    if name in witnesses or name in groups:
        raise PolicyError(f"name {name!r} is defined twice")
