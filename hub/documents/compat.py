"""Whether a new version of a document type may follow the one before it.

A new version may only add optional properties and views, so that every body valid under
the old version stays valid (DESIGN.md, "Document types"); anything else is a new type
name. The check is conservative: a schema keyword that is added or changed is refused
unless it plainly loosens (a lower minimum, a longer enum, a dropped requirement).
"""

from collections.abc import Mapping
from typing import Any

from hub.documents.types import DocumentType
from hub.errors import BadInput

__all__ = ["check_successor"]

# Keywords that say nothing about validity.
_ANNOTATIONS = frozenset({"title", "description", "$comment", "examples", "default", "deprecated"})
_LOWER_BOUNDS = frozenset(
    {"minimum", "exclusiveMinimum", "minLength", "minItems", "minProperties", "minContains"}
)
_UPPER_BOUNDS = frozenset(
    {"maximum", "exclusiveMaximum", "maxLength", "maxItems", "maxProperties", "maxContains"}
)
# Definition fields a new version must keep as they are.
_FIXED = (
    "issuerKinds",
    "id",
    "issuedAt",
    "subject",
    "subjectScope",
    "checkCode",
    "status",
    "amount",
    "claimable",
    "rules",
)


def _refuse(problem: str) -> BadInput:
    return BadInput(f"definition: {problem}; a change that is not additive needs a new type name")


def check_successor(old: DocumentType, new: DocumentType) -> None:
    """BadInput naming the first change that could make an old body invalid."""
    for key in _FIXED:
        if old.definition.get(key) != new.definition.get(key):
            raise _refuse(f"{key} differs from version {old.version}")
    for name, pointers in old.views.items():
        if name not in new.views:
            raise _refuse(f"removes the view {name}")
        if new.views[name] != pointers:
            raise _refuse(f"changes the view {name}")
    _loosens(old.schema, new.schema, "", old.schema, new.schema)


def _loosens(old: Any, new: Any, where: str, old_root: Any, new_root: Any) -> None:
    """Refuse unless every instance ``old`` accepts, ``new`` accepts too."""
    if old == new or new is True or new == {}:
        return
    if not isinstance(old, Mapping) or not isinstance(new, Mapping):
        raise _refuse(f"tightens the schema at {where or '/'}")
    at = where or "/"
    for key in new:
        if key in _ANNOTATIONS or key in ("properties", "required", "additionalProperties"):
            continue
        if key not in old:
            raise _refuse(f"adds the constraint {key} at {at}")
        if key in _LOWER_BOUNDS:
            if new[key] > old[key]:
                raise _refuse(f"raises {key} at {at}")
        elif key in _UPPER_BOUNDS:
            if new[key] < old[key]:
                raise _refuse(f"lowers {key} at {at}")
        elif key == "enum":
            dropped = [v for v in old[key] if v not in new[key]]
            if dropped:
                raise _refuse(f"removes an allowed value at {at}")
        elif key == "type":
            old_types = set(old[key] if isinstance(old[key], list) else [old[key]])
            new_types = set(new[key] if isinstance(new[key], list) else [new[key]])
            if not old_types <= new_types:
                raise _refuse(f"narrows the type at {at}")
        elif key in ("items", "additionalItems", "contains", "propertyNames", "not"):
            if key == "not" and old[key] != new[key]:
                raise _refuse(f"changes not at {at}")
            _loosens(old[key], new[key], f"{where}/{key}", old_root, new_root)
        elif key == "$defs":
            for name, sub in old[key].items():
                if name not in new[key]:
                    raise _refuse(f"removes $defs/{name}")
                _loosens(sub, new[key][name], f"/$defs/{name}", old_root, new_root)
        elif old[key] != new[key]:
            raise _refuse(f"changes {key} at {at}")
    old_required = set(old.get("required", []))
    added = sorted(set(new.get("required", [])) - old_required)
    if added:
        raise _refuse(f"requires {where}/{added[0]}, which version before did not")
    old_props: Mapping[str, Any] = old.get("properties", {})
    new_props: Mapping[str, Any] = new.get("properties", {})
    for name, sub in old_props.items():
        if name not in new_props:
            raise _refuse(f"removes the field {where}/{name}")
        _loosens(sub, new_props[name], f"{where}/{name}", old_root, new_root)
    old_extra = old.get("additionalProperties", True)
    new_extra = new.get("additionalProperties", True)
    for name, sub in new_props.items():
        # A property the old version let through as "additional" must accept what that let.
        if name not in old_props and old_extra is not False:
            _loosens(old_extra, sub, f"{where}/{name}", old_root, new_root)
    if old_extra is not False:
        _loosens(old_extra, new_extra, f"{where}/additionalProperties", old_root, new_root)
