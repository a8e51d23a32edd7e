"""The MLLP listener (python-hl7's asyncio server): framing, size limits, connections.

What a block means and how it is answered is the intake's (adapters/hl7v2/intake.py);
this module only reads blocks off connections and writes the replies back.
"""

from __future__ import annotations

import asyncio
import logging

from hl7.mllp import HL7StreamReader, HL7StreamWriter, start_hl7_server

from adapters.hl7v2.errors import VALUE_TOO_LONG
from adapters.hl7v2.intake import Hl7Intake, Outcome, hl7_key

__all__ = ["DEFAULT_MAX_MESSAGE_BYTES", "Hl7Intake", "MllpListener", "Outcome", "hl7_key"]

log = logging.getLogger("adapters.mllp")

DEFAULT_MAX_MESSAGE_BYTES = 4 * 1024 * 1024
_START_BLOCK = b"\x0b"
_END_BLOCK = b"\x1c\r"
# Of a block refused unread (too large, badly framed), this much is kept to find its
# MSH, so that the AR can name the control id.
_HEAD_BYTES = 64 * 1024


class _Unframed(Exception):
    """A block that does not begin with the MLLP start character."""

    def __init__(self, block: bytes) -> None:
        super().__init__("unframed block")
        self.block = block


class _Oversized(Exception):
    """A block over the size limit, skipped; ``head`` holds its first bytes."""

    def __init__(self, head: bytes) -> None:
        super().__init__("oversized block")
        self.head = head


async def _read_block(reader: HL7StreamReader) -> bytes:
    """The next MLLP block without its framing.

    Raises _Oversized once a block over the reader's limit has been skipped to its end
    (python-hl7's readblock drops it without a trace, so the AR could not name it),
    _Unframed for a block without the start character, and IncompleteReadError when
    the sender hangs up.
    """
    try:
        block = await reader.readuntil(_END_BLOCK)
    except asyncio.LimitOverrunError as overrun:
        head = await reader.read(min(overrun.consumed, _HEAD_BYTES))
        await _skip_block(reader, overrun.consumed - len(head))
        raise _Oversized(head) from None
    if not block.startswith(_START_BLOCK):
        raise _Unframed(block[: -len(_END_BLOCK)][:_HEAD_BYTES])
    return block[1 : -len(_END_BLOCK)]


async def _skip_block(reader: HL7StreamReader, pending: int) -> None:
    """Drop the rest of an oversized block, ``pending`` bytes of it already buffered,
    through its end; memory stays within the reader's limit."""
    while True:
        while pending > 0:
            chunk = await reader.read(pending)
            if not chunk:  # the sender hung up inside the block
                raise asyncio.IncompleteReadError(b"", pending)
            pending -= len(chunk)
        try:
            await reader.readuntil(_END_BLOCK)
            return
        except asyncio.LimitOverrunError as overrun:
            pending = overrun.consumed


class MllpListener:
    """An MLLP server feeding an Hl7Intake; ``port`` is known once started."""

    def __init__(
        self, intake: Hl7Intake, *, max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES
    ) -> None:
        self.intake = intake
        self.max_message_bytes = max_message_bytes
        self._server: asyncio.Server | None = None
        self._connections: set[asyncio.Task[None]] = set()

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("the listener is not started")
        return int(self._server.sockets[0].getsockname()[1])

    async def start(self, host: str = "127.0.0.1", port: int = 2575) -> None:
        self._server = await start_hl7_server(
            self._connection, host, port, limit=self.max_message_bytes
        )

    async def stop(self) -> None:
        """Stop listening and drop connections. An answer not yet sent is not lost:
        what was stored stays stored, and the sender sends again."""
        if self._server is None:
            return
        self._server.close()
        for task in list(self._connections):
            task.cancel()
        await asyncio.gather(*self._connections, return_exceptions=True)
        await self._server.wait_closed()
        self._server = None

    async def _connection(self, reader: HL7StreamReader, writer: HL7StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections.add(task)
        peer = writer.get_extra_info("peername")
        try:
            while True:
                try:
                    block = await _read_block(reader)
                except asyncio.IncompleteReadError:
                    return  # the sender hung up between (or inside) messages
                except _Unframed as unframed:
                    outcome = await self.intake.refuse_unframed(
                        "block does not begin with the MLLP start character (0x0B)",
                        head=unframed.block,
                    )
                    # The header was read byte for byte (latin-1): answer in kind.
                    replies = [r.encode("latin-1", "replace") for r in outcome.replies]
                except _Oversized as oversized:
                    outcome = await self.intake.refuse_unframed(
                        f"message larger than {self.max_message_bytes} bytes",
                        VALUE_TOO_LONG,
                        head=oversized.head,
                    )
                    replies = [r.encode("latin-1", "replace") for r in outcome.replies]
                else:
                    replies, _ = await self.intake.accept_bytes(block)
                for reply in replies:
                    writer.writeblock(reply)
                await writer.drain()
        except ConnectionError:
            log.info("MLLP connection from %s dropped", peer)
        finally:
            self._connections.discard(task)
            writer.close()
