"""The import rules of DESIGN.md's "Layout", checked over a source tree with `ast`.

Rules (a violation is `(rule, module, what)`):

- `hub-imports-outside`: a hub module imports `schema` or `adapters`. Only the
  composition root, `hub.app`, may import `schema`.
- `schema-storage`: a schema module imports the storage layer (`hub.store`, `hub.models`,
  tortoise) or holds SQL text: the GraphQL
  layer asks the hub's services, it does not query tables.
- `adapters-internals`: an adapters module imports a hub module other than the public
  document models in ADAPTER_MAY_IMPORT (the canonical JSON, the invoice model and its
  error) and the exception tree; everything else it needs of the hub goes over
  HTTP/GraphQL.
- `ledger-core-impure`: a module of the pure ledger core (LEDGER_CORE) imports anything
  of the project outside that core but the exception tree.
- `errors-import`: the exception tree (ERRORS) imports anything at all: it is the one
  module every layer may import, so it must stand on nothing.
- `ledger-knows-documents`: a hub.ledger module names a table that is not the ledger's
  own in SQL text.
- `hub-cycle`: the hub's subpackages and top-level modules (`hub.ledger`, `hub.access`,
  `hub.services`, ...) import each other in a cycle; reported once per cycle, with one
  import on it for each step.

Every import counts, at module level or inside a function, `TYPE_CHECKING` ones too: a
deferred import is still a dependency.
"""

import ast
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

PACKAGES = ("hub", "schema", "adapters")
COMPOSITION_ROOT = "hub.app"
ERRORS = "hub.errors"
ADAPTER_MAY_IMPORT = frozenset(
    {"hub.documents.canonical", "hub.documents.invoice", "hub.documents.errors", ERRORS}
)
# Tree and tile math, the tlog-tiles layout and the C2SP formats: no I/O, no storage.
LEDGER_CORE = frozenset(
    {
        "hub.ledger.tree",
        "hub.ledger.tiles",
        "hub.ledger.layout",
        "hub.ledger.note",
        "hub.ledger.checkpoint",
        "hub.ledger.receipt",
    }
)
STORAGE = ("hub.store", "hub.models", "tortoise")
LEDGER_TABLE = re.compile(r"^ledger_\w+$")
_SQL = re.compile(
    r"\b(SELECT|INSERT\s+INTO|UPDATE|DELETE\s+FROM)\b.*\b(FROM|INTO|SET|WHERE|VALUES)\b", re.S
)
# SQL keywords in capitals, table names in lower case, as the project writes its SQL.
_TABLE_NAMED = re.compile(r"\b(?:FROM|JOIN|INTO|UPDATE)\s+([a-z_][a-z0-9_]*)")

Violation = tuple[str, str, str]


@dataclass(frozen=True)
class Module:
    name: str
    imports: frozenset[str]  # every module (or module.attribute) an import names
    strings: tuple[str, ...]  # string constants: where SQL text would be


def module_name(root: Path, path: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def read_module(root: Path, path: Path) -> Module:
    name = module_name(root, path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    imports: set[str] = set()
    strings: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imports.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            # `from a.b import c` names a.b.c: module c, or attribute c of a.b.
            imports.update(f"{base}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            strings.append(node.value)
    return Module(name, frozenset(imports), tuple(strings))


def read_tree(root: Path) -> dict[str, Module]:
    modules = {}
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            if "migrations" not in path.relative_to(root).parts:
                module = read_module(root, path)
                modules[module.name] = module
    return modules


def _top(name: str) -> str:
    return name.split(".", 1)[0]


def _resolve(name: str, modules: Mapping[str, Module]) -> str | None:
    """The project module an imported name belongs to (`hub.db.Database` -> `hub.db`)."""
    while name:
        if name in modules:
            return name
        name = name.rpartition(".")[0]
    return None


def _targets(module: Module, modules: Mapping[str, Module]) -> set[str]:
    found = {_resolve(name, modules) for name in module.imports}
    return {t for t in found if t is not None and t != module.name}


def _is_storage(name: str) -> bool:
    return any(name == s or name.startswith(s + ".") for s in STORAGE)


def check(
    modules: Mapping[str, Module], cycle_exempt: Iterable[tuple[str, str]] = ()
) -> list[Violation]:
    """Every violation; imports in `cycle_exempt` ((importer, imported) modules) are left
    out of the cycle search, so a known cycle does not hide a new one."""
    found: list[Violation] = []
    for name, module in sorted(modules.items()):
        targets = _targets(module, modules)
        top = _top(name)
        if top == "hub":
            for target in sorted(targets):
                if _top(target) == "adapters" or (
                    _top(target) == "schema" and name != COMPOSITION_ROOT
                ):
                    found.append(("hub-imports-outside", name, target))
        if top == "schema":
            storage = {_resolve(i, modules) or _top(i) for i in module.imports if _is_storage(i)}
            found += [("schema-storage", name, target) for target in sorted(storage)]
            if any(_SQL.search(s) for s in module.strings):
                found.append(("schema-storage", name, "SQL text"))
        if top == "adapters":
            for target in sorted(targets):
                if _top(target) == "hub" and target not in ADAPTER_MAY_IMPORT:
                    found.append(("adapters-internals", name, target))
        if name in LEDGER_CORE:
            for target in sorted(targets):
                if target not in LEDGER_CORE and target != ERRORS:
                    found.append(("ledger-core-impure", name, target))
        if name == ERRORS:
            found += [("errors-import", name, target) for target in sorted(module.imports)]
        if name.startswith("hub.ledger."):
            for table in sorted(_foreign_tables(module.strings)):
                found.append(("ledger-knows-documents", name, f"table {table}"))
    found += _cycles(modules, frozenset(cycle_exempt))
    return found


def _foreign_tables(strings: Iterable[str]) -> set[str]:
    tables = set()
    for text in strings:  # a query may be built from pieces: each names its tables
        tables |= {t for t in _TABLE_NAMED.findall(text) if not LEDGER_TABLE.match(t)}
    return tables


def _unit(name: str) -> str | None:
    """The node of the hub's dependency graph a module belongs to: its subpackage, or
    itself for a top-level module (`hub.ledger.tree` -> `hub.ledger`, `hub.db` -> itself)."""
    parts = name.split(".")
    if parts[0] != "hub" or len(parts) < 2:
        return None
    return ".".join(parts[:2])


def unit_graph(
    modules: Mapping[str, Module], exempt: frozenset[tuple[str, str]] = frozenset()
) -> dict[str, dict[str, tuple[str, str]]]:
    """unit -> {unit it imports: (one importing module, the module it imports)}."""
    graph: dict[str, dict[str, tuple[str, str]]] = {}
    for name, module in sorted(modules.items()):
        unit = _unit(name)
        if unit is None:
            continue
        edges = graph.setdefault(unit, {})
        for target in sorted(_targets(module, modules)):
            other = _unit(target)
            if (name, target) in exempt:
                continue
            if other is not None and other != unit and other not in edges:
                edges[other] = (name, target)
    return graph


def _cycles(modules: Mapping[str, Module], exempt: frozenset[tuple[str, str]]) -> list[Violation]:
    graph = unit_graph(modules, exempt)
    found = []
    for component in _strongly_connected(graph):
        if len(component) < 2:
            continue
        steps = [
            f"{importer} -> {imported}"
            for unit in sorted(component)
            for other, (importer, imported) in sorted(graph.get(unit, {}).items())
            if other in component
        ]
        found.append(("hub-cycle", " <-> ".join(sorted(component)), "; ".join(steps)))
    return found


def _strongly_connected(graph: Mapping[str, Mapping[str, object]]) -> Iterator[set[str]]:
    """Tarjan's algorithm, iteratively (no recursion limit to reach)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph.get(start, {}))))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, {})))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component = set()
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.add(member)
                    if member == node:
                        break
                yield component
