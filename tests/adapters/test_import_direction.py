"""DESIGN.md's import direction, adapter side: the adapters use only the hub's canonical
document models (``hub.documents``: the invoice rules, canonical JSON, their errors),
the root of the exception tree (``hub.errors``) and ``common``; the hub and ``common``
never import the adapters."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# What of the hub the adapters may import: the canonical document models, and the root
# of the one exception tree their errors hang from.
ALLOWED_HUB = ("hub.documents.invoice", "hub.documents.canonical", "hub.documents.errors")
ALLOWED_HUB += ("hub.errors",)
ALLOWED_HUB += ("hub.documents.demo_data",)


def imports(package: str, root: Path = ROOT) -> list[tuple[str, str]]:
    """(file, imported module) for every import in ``package``, lazy ones included."""
    found = []
    for path in sorted((root / package).rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                found += [(str(path.relative_to(root)), alias.name) for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                found.append((str(path.relative_to(root)), node.module))
    return found


def hub_internals(found: list[tuple[str, str]]) -> list[tuple[str, str]]:
    return [
        (file, module)
        for file, module in found
        if (module == "hub" or module.startswith(("hub.", "schema")))
        and not module.startswith(ALLOWED_HUB)
    ]


def test_the_adapters_import_only_the_canonical_document_models_of_the_hub() -> None:
    assert hub_internals(imports("adapters")) == []


def test_the_hub_and_common_never_import_the_adapters() -> None:
    wrong = [
        (file, module)
        for package in ("hub", "schema", "common")
        for file, module in imports(package)
        if module == "adapters" or module.startswith("adapters.")
    ]
    assert wrong == []


def test_the_walk_finds_a_lazy_import_of_a_hub_internal(tmp_path: Path) -> None:
    (tmp_path / "adapters").mkdir()
    (tmp_path / "adapters" / "x.py").write_text(
        "from hub.documents.invoice import CATEGORIES\n"
        "def f():\n    from hub.runner import run\n    import hub.db\n"
    )
    assert hub_internals(imports("adapters", tmp_path)) == [
        ("adapters/x.py", "hub.runner"),
        ("adapters/x.py", "hub.db"),
    ]
