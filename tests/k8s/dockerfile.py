"""A small Dockerfile reader: stages, their instructions, and what a container runs."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Instruction:
    keyword: str
    args: str


@dataclass
class Stage:
    base: str
    name: str | None
    instructions: list[Instruction] = field(default_factory=list)

    def all(self, keyword: str) -> list[str]:
        return [i.args for i in self.instructions if i.keyword == keyword]

    def last(self, keyword: str) -> str | None:
        found = self.all(keyword)
        return found[-1] if found else None


def logical_lines(text: str) -> Iterator[str]:
    """Joins continuation lines; comment lines vanish, even inside a continuation."""
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        yield pending + line
        pending = ""
    assert pending == "", "Dockerfile ends inside a continuation"


def parse_dockerfile(text: str) -> list[Stage]:
    global_args: dict[str, str] = {}
    stages: list[Stage] = []
    for line in logical_lines(text):
        keyword, _, args = line.partition(" ")
        keyword, args = keyword.upper(), args.strip()
        if keyword == "ARG" and not stages:
            arg, _, default = args.partition("=")
            global_args[arg] = default
        elif keyword == "FROM":
            words = [w for w in args.split() if not w.startswith("--")]
            base = re.sub(r"\$\{(\w+)\}|\$(\w+)", lambda m: global_args[m[1] or m[2]], words[0])
            name = words[2] if len(words) == 3 and words[1].upper() == "AS" else None
            stages.append(Stage(base=base, name=name))
        else:
            assert stages, f"{keyword} before the first FROM"
            stages[-1].instructions.append(Instruction(keyword, args))
    return stages


def exec_form(args: str) -> list[str]:
    """Exec (JSON) form only: no shell between the runtime and the process, so signals land."""
    parsed = json.loads(args)
    assert isinstance(parsed, list) and all(isinstance(a, str) for a in parsed), args
    return parsed


def image_user(final: Stage) -> tuple[int, int]:
    user = final.last("USER")
    assert user is not None, "the final stage sets no USER, so the image runs as root"
    uid, _, gid = user.partition(":")
    assert uid.isdigit() and gid.isdigit(), f"USER {user}: numeric uid:gid needed"
    return int(uid), int(gid)


def entrypoint(final: Stage) -> list[str]:
    found = final.last("ENTRYPOINT")
    return exec_form(found) if found else []


def default_cmd(final: Stage) -> list[str]:
    found = final.last("CMD")
    return exec_form(found) if found else []


def argv(container: dict[str, Any], final: Stage) -> list[str]:
    """What the container runs: Kubernetes' command/args over the image's ENTRYPOINT/CMD."""
    if "command" in container:
        return [*container["command"], *container.get("args", [])]
    return [*entrypoint(final), *container.get("args", default_cmd(final))]


BUILD_TOOLS = re.compile(
    r"(?<![\w/.-])(build-essential|gcc|g\+\+|clang|cmake|make|[\w.+-]+-dev)(?![\w.+-])"
)
