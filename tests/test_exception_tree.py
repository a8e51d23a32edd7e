"""The one exception tree: every exception class of the project hangs from `HubError`, and
the drawing in hub/errors.py's docstring is that tree, each class under its parent and
beside the module it lives in."""

import importlib
import inspect
import re
from collections.abc import Iterable
from pathlib import Path
from types import ModuleType

import hub.errors
from hub.errors import HubError

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("hub", "schema", "adapters", "common")
# One drawn row: the box-drawing prefix, the class name, the module that defines it.
_ROW = re.compile(r"^(?P<prefix>[ │├└─]*)(?P<name>[A-Z]\w+) +(?P<module>[a-z_][\w.]*)$")

Drawn = tuple[str, str, str | None]  # (module, class, parent class)


def project_modules(root: Path = ROOT) -> list[ModuleType]:
    modules = []
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            parts = list(path.relative_to(root).with_suffix("").parts)
            if "migrations" in parts:
                continue
            if parts[-1] == "__init__":
                parts.pop()
            modules.append(importlib.import_module(".".join(parts)))
    return modules


def exception_classes(modules: Iterable[ModuleType]) -> list[type[BaseException]]:
    """The public exception classes the modules define (not those they import).

    A leading underscore marks control flow that never leaves its module (a parser's
    early exit, a transaction's rollback): those are not part of the tree."""
    return [
        value
        for module in modules
        for name, value in vars(module).items()
        if inspect.isclass(value)
        and issubclass(value, BaseException)
        and value.__module__ == module.__name__
        and not name.startswith("_")
    ]


def outside_the_tree(classes: Iterable[type[BaseException]]) -> list[str]:
    return sorted(f"{c.__module__}.{c.__name__}" for c in classes if not issubclass(c, HubError))


def as_built(classes: Iterable[type[BaseException]]) -> set[Drawn]:
    found: set[Drawn] = set()
    for c in classes:
        parents = [b.__name__ for b in c.__bases__ if issubclass(b, HubError)]
        found.add((c.__module__, c.__name__, parents[0] if parents else None))
    return found


def as_drawn(docstring: str) -> set[Drawn]:
    found: set[Drawn] = set()
    parents: list[str] = []  # the class drawn last at each depth
    for line in docstring.splitlines():
        row = _ROW.match(line[4:]) if line.startswith("    ") else None
        if row is None:
            continue
        depth = len(row["prefix"]) // 4
        del parents[depth:]
        found.add((row["module"], row["name"], parents[-1] if parents else None))
        parents.append(row["name"])
    return found


def test_every_exception_of_the_project_hangs_from_hub_error() -> None:
    assert outside_the_tree(exception_classes(project_modules())) == []


def test_a_second_root_is_found() -> None:
    module = ModuleType("hub.elsewhere")
    exec(
        "from hub.errors import BadInput\n"
        "class Stray(ValueError): pass\n"
        "class _EarlyExit(Exception): pass\n"
        "class Fine(BadInput): pass\n",
        module.__dict__,
    )
    assert outside_the_tree(exception_classes([module])) == ["hub.elsewhere.Stray"]


def test_the_drawing_is_the_tree() -> None:
    drawn = as_drawn(hub.errors.__doc__ or "")
    built = as_built(exception_classes(project_modules()))
    assert ("hub.errors", "HubError", None) in drawn
    assert sorted(built - drawn) == [], "in the code, not drawn in hub/errors.py"
    assert sorted(drawn - built) == [], "drawn in hub/errors.py, not in the code"


def test_the_drawing_is_read_row_by_row() -> None:
    text = (
        "Some prose that names BadInput hub.errors in passing.\n\n"
        "    HubError          hub.errors\n"
        "    ├── BadInput      hub.errors\n"
        "    │   └── Deep      a.b\n"
        "    └── Other         c\n"
    )
    assert as_drawn(text) == {
        ("hub.errors", "HubError", None),
        ("hub.errors", "BadInput", "HubError"),
        ("a.b", "Deep", "BadInput"),
        ("c", "Other", "HubError"),
    }
