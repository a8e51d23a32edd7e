"""Raw SQL on one connection or transaction, the same text for both dialects.

SQL in this project is written once with `?` placeholders and rewritten to `$n` for
PostgreSQL; both dialects share `INSERT ... ON CONFLICT` and the column types we use.
"""

import re
from collections.abc import Sequence
from datetime import datetime
from functools import lru_cache
from typing import Any

from tortoise.backends.base.client import BaseDBAsyncClient

_PLACEHOLDER = re.compile(r"\?")


class Sql:
    """The three calls the hub's hand-written SQL needs; `postgres` names the dialect."""

    postgres: bool

    async def fetch(self, query: str, params: Sequence[Any] = ()) -> list[Sequence[Any]]:
        raise NotImplementedError

    async def execute(self, query: str, params: Sequence[Any] = ()) -> None:
        raise NotImplementedError

    async def execute_many(self, query: str, rows: Sequence[Sequence[Any]]) -> None:
        raise NotImplementedError

    def moment(self, value: datetime) -> Any:
        """``value`` as a parameter for a timestamp column.

        On SQLite, the text tortoise's sqlite3 adapter would write for it. Bound as text,
        a row needs no Python adapter call while sqlite3 binds it; each such call is a
        point where the event loop can take the GIL from the writer, which holds the
        database's write lock meanwhile (~8 us a row under the submit load).
        """
        return value if self.postgres else value.isoformat(" ")


@lru_cache(maxsize=512)
def _numbered(query: str) -> str:
    count = 0

    def number(_: re.Match[str]) -> str:
        nonlocal count
        count += 1
        return f"${count}"

    return _PLACEHOLDER.sub(number, query)


class TortoiseSql(Sql):
    """Raw SQL on one tortoise client (a connection or a transaction)."""

    def __init__(self, client: BaseDBAsyncClient, postgres: bool) -> None:
        self.client = client
        self.postgres = postgres

    def _q(self, query: str) -> str:
        return _numbered(query) if self.postgres else query

    async def fetch(self, query: str, params: Sequence[Any] = ()) -> list[Sequence[Any]]:
        _, rows = await self.client.execute_query(self._q(query), list(params))
        return [tuple(r) if not isinstance(r, tuple) else r for r in rows]  # type: ignore[arg-type]

    async def execute(self, query: str, params: Sequence[Any] = ()) -> None:
        await self.client.execute_query(self._q(query), list(params))

    async def execute_many(self, query: str, rows: Sequence[Sequence[Any]]) -> None:
        if rows:
            await self.client.execute_many(self._q(query), [list(r) for r in rows])
