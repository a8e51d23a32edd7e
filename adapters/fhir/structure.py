"""Structure checks with the fhir.resources models, and OperationOutcome of problems."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import pydantic

from adapters.errors import MappingError
from adapters.fhir.codes import _MAX_PROBLEM_CHARS, FHIR_VERSIONS
from adapters.fhir.reader import _child
from adapters.formats import clip

# --- structure (fhir.resources) ----------------------------------------------------------


def _structure_errors(
    model: type[pydantic.BaseModel], resource: dict[str, Any], root: str
) -> list[MappingError]:
    try:
        model.model_validate(resource)
    except pydantic.ValidationError as exc:
        return [_pydantic_error(error, root) for error in exc.errors()]
    except (ValueError, TypeError) as exc:  # fhir.resources raises a few plain errors
        return [MappingError(root, _clip(str(exc)), code="structure")]
    return []


def _pydantic_error(error: Any, root: str) -> MappingError:
    path = root
    for part in error["loc"]:
        if isinstance(part, int):
            path += f"[{part}]"
        elif part == "resource_type":
            path += ".resourceType"
        else:
            # "_status" carries the extensions of the primitive "status".
            path = _child(path, str(part).removeprefix("_"))
    kind = error["type"]
    if kind == "extra_forbidden":
        return MappingError(path, "unknown element", code="structure")
    if kind == "missing":
        return MappingError(path, "required element is missing", code="required")
    if kind == "string_pattern_mismatch":
        return MappingError(path, "is not in the format of its FHIR type", code="structure")
    problem = str(error["msg"]).removeprefix("Value error, ")
    value = error.get("input")
    if isinstance(value, str) and value.strip() and value in problem:
        # A validator quoting what it was given would echo a name or an id.
        problem = problem.replace(value, "…")
    return MappingError(path, _clip(" ".join(problem.split())), code="structure")


def _clip(text: str) -> str:
    return clip(text, _MAX_PROBLEM_CHARS)


def _check_version(version: str) -> str:
    if version not in FHIR_VERSIONS:
        raise ValueError(f"FHIR version must be one of {', '.join(FHIR_VERSIONS)}")
    return version


# --- OperationOutcome --------------------------------------------------------------------


def operation_outcome(errors: Iterable[MappingError]) -> dict[str, Any]:
    """An OperationOutcome with one error issue per problem (``MappingError.all``).

    ``expression`` names the element; ``diagnostics`` says what is wrong and, for a
    problem the invoice rules found, which invoice field. No problems gives a single
    informational issue, as an OperationOutcome needs at least one.
    """
    issues: list[dict[str, Any]] = []
    for error in errors:
        for problem in error.all:
            diagnostics = problem.problem
            if problem.field is not None:
                diagnostics += f" (invoice field {problem.field})"
            issue: dict[str, Any] = {
                "severity": "error",
                "code": problem.code,
                "diagnostics": diagnostics,
            }
            if problem.path:
                issue["expression"] = [problem.path]
            issues.append(issue)
    if not issues:
        issues.append({"severity": "information", "code": "informational", "diagnostics": "ok"})
    return {"resourceType": "OperationOutcome", "issue": issues}


# --- JSON --------------------------------------------------------------------------------
