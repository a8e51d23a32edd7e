"""The hub as the adapter sees it: ``submitDocuments`` over HTTP GraphQL, nothing else.

Failures are sorted by what the caller should do about them:

- HubUnavailable: try again later (transport errors, HTTP 429/5xx, RATE_LIMITED,
  UNAVAILABLE).
- HubAuthError: the token is refused (HTTP 401/403, UNAUTHENTICATED, FORBIDDEN); keep
  the documents and wait for an operator to fix it.
- HubRequestError: the request as a whole was refused (BAD_INPUT, a body too large);
  smaller batches may isolate the document at fault.
- HubProtocolError: an answer this client cannot read; try again later, and say so.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
import orjson

from adapters.errors import AdapterError

__all__ = [
    "MAX_BATCH",
    "SUBMIT_DOCUMENTS",
    "HubAuthError",
    "HubCallError",
    "HubClient",
    "HubProtocolError",
    "HubRequestError",
    "HubUnavailable",
    "SubmitAnswer",
    "has_credentials",
    "redact_url",
    "token_from_file",
]

MAX_BATCH = 500

SUBMIT_DOCUMENTS = """
mutation($docs: [DocumentInput!]!) {
  submitDocuments(documents: $docs) {
    results { id leafIndex leafHash status error { code message } }
    checkpoint { origin treeSize rootHash note }
  }
}
"""

_RETRY_CODES = frozenset({"RATE_LIMITED", "UNAVAILABLE"})
_AUTH_CODES = frozenset({"UNAUTHENTICATED", "FORBIDDEN"})
_REQUEST_CODES = frozenset({"BAD_INPUT"})
_STATUSES = frozenset({"CREATED", "DUPLICATE", "REJECTED"})
_MAX_MESSAGE = 500


class HubCallError(AdapterError):
    """The hub did not take a batch. ``code`` is the GraphQL or HTTP reason."""

    def __init__(self, message: str, *, code: str = "") -> None:
        super().__init__(message)
        self.code = code


class HubUnavailable(HubCallError):
    """Retry later; ``retry_after`` is the hub's hint in seconds, if it gave one."""

    def __init__(self, message: str, *, code: str = "", retry_after: float | None = None):
        super().__init__(message, code=code)
        self.retry_after = retry_after


class HubAuthError(HubCallError):
    """The hub refused the token."""


class HubRequestError(HubCallError):
    """The hub refused the request as a whole."""


class HubProtocolError(HubCallError):
    """The hub's answer is not what the contract promises."""


@dataclass(frozen=True, slots=True)
class SubmitAnswer:
    """One document's outcome, in input order."""

    id: str
    status: str  # CREATED | DUPLICATE | REJECTED
    leaf_index: int | None = None
    leaf_hash: str | None = None
    error_code: str | None = None
    error_message: str | None = None

    @property
    def delivered(self) -> bool:
        """CREATED and DUPLICATE both mean the document is in the ledger."""
        return self.status in ("CREATED", "DUPLICATE")


CREDENTIALS_IN_URL = (
    "the hub URL must not carry a user or password (user:password@host): they would be"
    " sent as Basic auth in place of the hub token; give the token with --token-file"
)


def has_credentials(url: str) -> bool:
    """Whether ``url`` has userinfo, which httpx would send instead of the bearer token."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "@" in url
    return parts.username is not None or parts.password is not None


def redact_url(url: str) -> str:
    """``url`` with the password of its userinfo replaced by ``***``, for showing it
    (status, errors, logs); the URL itself is unchanged otherwise."""
    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:  # a malformed port, say: show nothing after the scheme
        return url.split("://", 1)[0] + "://***" if "://" in url else "***"
    if password is None:
        return url
    host = parts.netloc.rpartition("@")[2]
    user = parts.username or ""
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))


def _password(url: str) -> str | None:
    try:
        return urlsplit(url).password
    except ValueError:
        return None


def token_from_file(path: str | Path) -> Callable[[], str]:
    """A token source that rereads ``path`` on each request, so a fixed token is picked
    up without a restart."""

    def read() -> str:
        try:
            return Path(path).read_text(encoding="utf-8").strip()
        except OSError as error:
            raise HubAuthError(f"cannot read the token file {path}: {error.strerror}") from None

    return read


class HubClient:
    """``submitDocuments`` against ``url`` (the hub's base URL or its /graphql)."""

    def __init__(
        self,
        url: str,
        token: str | Callable[[], str],
        *,
        timeout: float = 30.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        if has_credentials(url):
            raise ValueError(CREDENTIALS_IN_URL)
        base = url.rstrip("/")
        self.url = base if base.endswith("/graphql") else f"{base}/graphql"
        # What messages show: a password in the URL's userinfo stays out of them.
        self.shown_url = redact_url(self.url)
        self._password = _password(self.url)
        self._token = token if callable(token) else (lambda: token)
        self._http = httpx.AsyncClient(timeout=timeout, transport=transport)

    async def __aenter__(self) -> HubClient:
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def submit_documents(self, documents: Sequence[Mapping[str, Any]]) -> list[SubmitAnswer]:
        """One result per document, in order. Raises a HubCallError subclass otherwise."""
        if not documents:
            return []
        if len(documents) > MAX_BATCH:
            raise ValueError(f"at most {MAX_BATCH} documents per call")
        headers = {
            "Authorization": f"Bearer {self._token()}",
            "Content-Type": "application/json",
        }
        payload = {"query": SUBMIT_DOCUMENTS, "variables": {"docs": list(documents)}}
        try:
            response = await self._http.post(
                self.url, content=orjson.dumps(payload), headers=headers
            )
        except httpx.TransportError as error:
            detail = str(error).replace(self.url, self.shown_url)
            if self._password:
                detail = detail.replace(self._password, "***")
            raise HubUnavailable(
                f"hub unreachable at {self.shown_url}: {type(error).__name__}: {detail}"
            ) from None
        return _results(response, len(documents))


def _results(response: httpx.Response, expected: int) -> list[SubmitAnswer]:
    status = response.status_code
    if status in (401, 403):
        raise HubAuthError(f"hub refused the token (HTTP {status}): {_text(response)}")
    if status == 429 or status >= 500:
        # 503 is the hub saying that it, or its database, is down for now (UNAVAILABLE,
        # with Retry-After): an outage to wait out, its reason worth showing.
        reason = _text(response) if status in (429, 503) else ""
        raise HubUnavailable(
            f"hub answered HTTP {status}" + (f": {reason}" if reason else ""),
            code="RATE_LIMITED" if status == 429 else "UNAVAILABLE",
            retry_after=_retry_after(response),
        )
    if status == 413:
        raise HubRequestError("hub refused the request as too large (HTTP 413)", code="TOO_LARGE")
    try:
        answer = response.json()
    except ValueError:
        raise HubProtocolError(f"hub answered HTTP {status} without JSON") from None
    if not isinstance(answer, dict):
        raise HubProtocolError(f"hub answered HTTP {status} with JSON that is not an object")
    errors = answer.get("errors")
    if errors:
        _raise_graphql(errors, status, response)
    if status != 200:
        raise HubProtocolError(f"hub answered HTTP {status}")
    try:
        rows = answer["data"]["submitDocuments"]["results"]
        results = [_result(row) for row in rows]
    except (KeyError, TypeError, ValueError) as error:
        raise HubProtocolError(f"hub answer lacks submitDocuments results ({error})") from None
    if len(results) != expected:
        raise HubProtocolError(f"hub answered {len(results)} results for {expected} documents")
    return results


def _raise_graphql(errors: object, status: int, response: httpx.Response) -> None:
    first = errors[0] if isinstance(errors, list) and errors else {}
    if not isinstance(first, dict):
        first = {}
    extensions = first.get("extensions")
    code = str(extensions.get("code", "")) if isinstance(extensions, dict) else ""
    message = _clip(str(first.get("message", "")))
    if code in _AUTH_CODES:
        raise HubAuthError(f"hub refused the token ({code}): {message}", code=code)
    if code in _RETRY_CODES:
        raise HubUnavailable(
            f"hub is busy ({code}): {message}", code=code, retry_after=_retry_after(response)
        )
    if code in _REQUEST_CODES:
        raise HubRequestError(f"hub refused the request ({code}): {message}", code=code)
    raise HubProtocolError(
        f"hub answered HTTP {status} with an error ({code or 'no code'}): {message}", code=code
    )


def _result(row: Mapping[str, Any]) -> SubmitAnswer:
    status = row["status"]
    if status not in _STATUSES:
        raise ValueError(f"unknown status {status!r}")
    error = row.get("error") or {}
    leaf = row.get("leafIndex")
    return SubmitAnswer(
        id=str(row["id"]),
        status=status,
        leaf_index=int(leaf) if leaf is not None else None,
        leaf_hash=row.get("leafHash"),
        error_code=error.get("code"),
        error_message=error.get("message"),
    )


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("Retry-After", "")
    try:
        seconds = float(value)
    except ValueError:
        return None
    return seconds if 0 <= seconds <= 3600 else None


def _text(response: httpx.Response) -> str:
    try:
        answer = response.json()
        errors = answer.get("errors") if isinstance(answer, dict) else None
        if isinstance(errors, list) and errors and isinstance(errors[0], dict):
            return _clip(str(errors[0].get("message", "")))
    except ValueError:
        pass
    return _clip(response.text)


def _clip(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= _MAX_MESSAGE else text[: _MAX_MESSAGE - 3] + "..."
