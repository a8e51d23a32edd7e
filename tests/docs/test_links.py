"""The README and docs/ stand on their own: every relative link resolves inside the
repository, and nothing points beside it (a `shared/` folder a clone does not have)."""

from pathlib import Path
from urllib.parse import unquote

import pytest

from tests.docs.markdown import DOCS, READMES, REPO_ROOT, links, prose

PAGES = [*READMES, *DOCS]


# Pages other sessions are writing now; linked already, so that their readers find them
# once they land. The lead empties this list when they are merged.
def _page_id(path: Path) -> str:
    return path.relative_to(REPO_ROOT).as_posix()


def _target(page: Path, link: str) -> Path | None:
    """The file a relative link names; None for a web address or an anchor."""
    if "://" in link or link.startswith(("mailto:", "#")):
        return None
    path = unquote(link.split("#", 1)[0])
    return (page.parent / path).resolve()


def broken_links(page: Path, text: str) -> list[str]:
    broken = []
    for link in links(text):
        target = _target(page, link)
        if target is None:
            continue
        if not target.is_relative_to(REPO_ROOT):
            broken.append(f"{link} (outside the repository)")
        elif not target.exists():
            broken.append(f"{link} (no such file)")
    return broken


def test_the_docs_are_there_and_the_readme_links_each() -> None:
    names = {p.name for p in DOCS}
    assert names >= {"architecture.md", "api-guide.md", "operator-guide.md", "security-model.md"}
    readme = links((REPO_ROOT / "README.md").read_text(encoding="utf-8"))
    for name in ("architecture.md", "api-guide.md", "operator-guide.md", "security-model.md"):
        assert f"docs/{name}" in readme, f"README.md does not link docs/{name}"


@pytest.mark.parametrize("page", PAGES, ids=_page_id)
def test_relative_links_resolve_inside_the_repository(page: Path) -> None:
    assert broken_links(page, page.read_text(encoding="utf-8")) == []


@pytest.mark.parametrize("page", PAGES, ids=_page_id)
def test_nothing_points_beside_the_repository(page: Path) -> None:
    text = page.read_text(encoding="utf-8")
    for beside in ("shared/DESIGN", "shared/vectors"):  # a climb out is caught below
        assert beside not in text, f"{_page_id(page)} mentions {beside}"
    # Nor does a path in the prose (a link or not) climb out of the repository.
    for word in prose(text).split():
        path = word.strip("`()[],.;:")
        if path.startswith("../"):
            assert (page.parent / path).resolve().is_relative_to(REPO_ROOT), path


def test_a_broken_or_escaping_link_is_caught(tmp_path: Path) -> None:
    page = REPO_ROOT / "docs" / "api-guide.md"
    text = "[gone](no-such-page.md) [out](../../elsewhere/DESIGN.md) [ok](architecture.md)"
    assert broken_links(page, text) == [
        "no-such-page.md (no such file)",
        "../../elsewhere/DESIGN.md (outside the repository)",
    ]
    # A link inside a code block is an example, not a link.
    assert broken_links(page, "```\n[gone](no-such-page.md)\n```\n") == []
