"""Errors the hospital-side adapters raise."""

from __future__ import annotations

from hub.errors import HubError

__all__ = ["AdapterError", "MappingError"]


class AdapterError(HubError):
    """An adapter could not do its job; the message says why, without personal values."""


class MappingError(AdapterError):
    """A message or resource does not map to a valid document.

    ``path`` names the element in the source format (for FHIR a FHIRPath expression such
    as ``Invoice.lineItem[1].priceComponent[0].amount.value``); ``problem`` says what is
    wrong with it. ``code`` is a FHIR issue type (``structure``, ``required``, ``value``,
    ``business-rule``, ``not-supported``, ...); ``field`` is the invoice field path
    (``body.items[1].amount``) when the problem was found on the mapped document;
    ``more`` carries further problems found in the same pass. An empty ``path`` means
    the problem has no element to point at (the payload is not JSON, say).
    """

    def __init__(
        self,
        path: str,
        problem: str,
        *,
        code: str = "invalid",
        field: str | None = None,
        more: tuple[MappingError, ...] = (),
    ) -> None:
        super().__init__(f"{path}: {problem}" if path else problem)
        self.path = path
        self.problem = problem
        self.code = code
        self.field = field
        self.more = more

    @property
    def all(self) -> tuple[MappingError, ...]:
        """This problem and the further ones, in the order they were found."""
        return (self, *self.more)

    def rebased(self, old_root: str, new_root: str) -> MappingError:
        """The same problems with ``old_root`` at the start of each path replaced."""
        return MappingError(
            _rebase(self.path, old_root, new_root),
            self.problem,
            code=self.code,
            field=self.field,
            more=tuple(error.rebased(old_root, new_root) for error in self.more),
        )


def _rebase(path: str, old_root: str, new_root: str) -> str:
    if path == old_root:
        return new_root
    if path.startswith(old_root) and path[len(old_root)] in ".[":
        return new_root + path[len(old_root) :]
    return path
