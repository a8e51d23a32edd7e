"""What the doc tests read out of the repository's Markdown: links and marked examples."""

import re
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
DOCS = sorted((REPO_ROOT / "docs").glob("*.md"))
READMES = [REPO_ROOT / "README.md", *sorted(REPO_ROOT.glob("*/README.md"))]

EXAMPLE_MARK = "<!-- example -->"
_FENCE = re.compile(r"^```(\w*)\s*$")
# [text](target) and [text]: target; images too. Code spans and blocks are skipped.
_INLINE_LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
_REFERENCE_LINK = re.compile(r"^\s*\[[^\]]+\]:\s*(\S+)", re.MULTILINE)
_CODE_SPAN = re.compile(r"`[^`]*`")


def prose(text: str) -> str:
    """The text outside fenced code blocks and code spans."""
    kept, fenced = [], False
    for line in text.splitlines():
        if _FENCE.match(line.strip()):
            fenced = not fenced
            continue
        if not fenced:
            kept.append(_CODE_SPAN.sub("", line))
    return "\n".join(kept)


def links(text: str) -> list[str]:
    body = prose(text)
    return _INLINE_LINK.findall(body) + _REFERENCE_LINK.findall(body)


def examples(path: Path) -> list[tuple[int, str]]:
    """Each `sh` block right after an EXAMPLE_MARK line: (its first line number, its text)."""
    lines = path.read_text(encoding="utf-8").splitlines()
    found: list[tuple[int, str]] = []
    for n, line in enumerate(lines):
        if line.strip() != EXAMPLE_MARK:
            continue
        start = n + 1
        fence = _FENCE.match(lines[start].strip()) if start < len(lines) else None
        assert fence and fence.group(1) == "sh", f"{path}:{n + 1}: {EXAMPLE_MARK} not before ```sh"
        end = next(i for i in range(start + 1, len(lines)) if lines[i].strip() == "```")
        found.append((start + 2, "\n".join(lines[start + 1 : end])))
    return found
