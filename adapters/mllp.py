"""HL7 v2 intake: the MLLP listener (python-hl7's asyncio server) and what it runs.

Each message is read, checked against the DFT^P03 profile and written to the outbox;
only once that write is committed is it answered AA. A message we do not take is
answered AR, one with bad content AE with an ERR naming the segment and field; both are
recorded as dead letters (control id, code and reason). A repeat of a stored control id
from the same sender is answered AA again and stored once; a control id reused for
different content is answered AE (HL7 code 205).

A block that is a batch (FHS/BHS) is answered with a batch of ACKs, one per message.

When the outbox cannot be written (another process holds it, the disk is full) the
answer is AR 207, "send again", within INTAKE_BUSY_TIMEOUT: the message is not at
fault, so it is not a dead letter, and nothing is acknowledged that is not stored.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass

from hl7.mllp import HL7StreamReader, HL7StreamWriter, start_hl7_server

from adapters.group_commit import GroupCommit
from adapters.hl7v2 import (
    APPLICATION_ERROR,
    DEFAULT_OFFSET,
    DUPLICATE_KEY,
    SEGMENT_SEQUENCE_ERROR,
    VALUE_TOO_LONG,
    Dft,
    Hl7Error,
    ack,
    ack_batch,
    batch_encoding,
    decode_with_codec,
    is_batch,
    read_dft_p03,
    read_header,
    split_batch,
)
from adapters.outbox import INTAKE_BUSY_TIMEOUT, NewDocument, Outbox
from hub.documents.invoice import INVOICE_TYPE, invoice_document_id

__all__ = ["DEFAULT_MAX_MESSAGE_BYTES", "Hl7Intake", "MllpListener", "Outcome", "hl7_key"]

log = logging.getLogger("adapters.mllp")

DEFAULT_MAX_MESSAGE_BYTES = 4 * 1024 * 1024
_START_BLOCK = b"\x0b"
_END_BLOCK = b"\x1c\r"
# Of a block refused unread (too large, badly framed), this much is kept to find its
# MSH, so that the AR can name the control id.
_HEAD_BYTES = 64 * 1024


def hl7_key(sender: str, control_id: str) -> str:
    """The outbox key of a message: control ids are unique per sender (MSH-3, MSH-4)."""
    return f"hl7:{sender}|{control_id}"


@dataclass(frozen=True, slots=True)
class Outcome:
    """What became of one message: its ACK code, the ACK, and the error if refused."""

    code: str  # AA | AE | AR
    ack: str
    control_id: str = ""
    error: Hl7Error | None = None
    stored: bool = False  # a new outbox entry was made


class Hl7Intake:
    """Reads HL7 messages into the outbox; shared by the listener and ``hub adapter hl7``."""

    def __init__(
        self,
        outbox: Outbox,
        *,
        source: str = "mllp",
        on_enqueued: Callable[[], None] | None = None,
        default_offset: str = DEFAULT_OFFSET,
        busy_timeout: float | None = INTAKE_BUSY_TIMEOUT,
    ) -> None:
        self.outbox = outbox
        self.source = source
        self.on_enqueued = on_enqueued
        self.default_offset = default_offset
        self.busy_timeout = busy_timeout
        # Messages from all connections share durable commits (AA after each one's own).
        self._commits = GroupCommit(outbox, busy_timeout=busy_timeout)

    async def accept_bytes(self, data: bytes) -> tuple[bytes, list[Outcome]]:
        """One MLLP block (a message or a batch) in; the reply bytes and outcomes out."""
        try:
            text, codec = decode_with_codec(data)
        except Hl7Error as error:
            # Delimiters and MSH are ASCII, so the header still reads for the ACK.
            text = data.decode("latin-1")
            outcome = await self._refused(text, error, raw=data)
            return outcome.ack.encode("ascii", "replace"), [outcome]
        if is_batch(text):
            outcomes = await self.accept_batch(text)
            reply = ack_batch([outcome.ack for outcome in outcomes], encoding=batch_encoding(text))
            codec = "utf-8"  # the batch header names no character set
        else:
            outcome = await self.accept(text)
            outcomes, reply = [outcome], outcome.ack
        return reply.encode(codec, "replace"), outcomes

    async def accept_batch(self, text: str) -> list[Outcome]:
        batch = split_batch(text)
        for problem in batch.problems:
            log.warning("batch envelope: %s", problem)
        return [await self.accept(message) for message in batch.messages]

    async def accept(self, message: str) -> Outcome:
        """Read, check and store one message; answer as its ACK says."""
        try:
            dft = read_dft_p03(message, default_offset=self.default_offset)
        except Hl7Error as error:
            return await self._refused(message, error)
        key = hl7_key(dft.sender, dft.control_id)
        document = NewDocument(
            key=key,
            type=INVOICE_TYPE,
            id=invoice_document_id(dft.body),
            body=dft.body,
            source=self.source,
            issued_at=dft.body["issuedAt"],
            supersedes=dft.supersedes,
            raw=message.encode("utf-8"),
        )
        try:
            (result,) = await self._commits.enqueue([document])
        except sqlite3.Error as error:
            # Locked by another process, or the disk: the operator needs the cause, not
            # a traceback per message.
            log.warning(
                "could not store message %r in the outbox (%s); answered AR 207",
                dft.control_id,
                error,
            )
            return _unstored(message, dft)
        except Exception:
            log.exception("could not store message %r in the outbox", dft.control_id)
            return _unstored(message, dft)
        if result.status == "conflict":
            reused = Hl7Error(
                "MSH",
                10,
                "this control id was already used for a different message",
                code=DUPLICATE_KEY,
            )
            return await self._refused(message, reused)
        if result.status == "new" and self.on_enqueued is not None:
            self.on_enqueued()
        reply = ack(message, "AA", header=dft.header)
        return Outcome("AA", reply, dft.control_id, stored=result.status == "new")

    async def refuse_unframed(
        self, problem: str, code: str = SEGMENT_SEQUENCE_ERROR, *, head: bytes = b""
    ) -> Outcome:
        """Answer a block we could not frame or size. ``head``, the block's first bytes,
        names the message (MSA-2, the dead letter's key) when its MSH can be read."""
        error = Hl7Error("MSH", None, problem, code=code, reject=True)
        # Delimiters and MSH are ASCII in every character set we read.
        text = head.removeprefix(_START_BLOCK).decode("latin-1")
        return await self._refused(text if text.startswith("MSH") else "", error, keep_raw=False)

    async def _refused(
        self,
        message: str,
        error: Hl7Error,
        *,
        raw: bytes | None = None,
        keep_raw: bool = True,
    ) -> Outcome:
        try:
            header = read_header(message, check_charset=False)
        except Hl7Error:
            key = control_id = ""
        else:
            control_id = header.control_id
            # Without a control id there is nothing to recognise a repeat by.
            key = hl7_key(header.sender, control_id) if control_id.strip() else ""
        try:
            await asyncio.to_thread(
                self.outbox.refuse,
                key=key,
                source=self.source,
                code=f"{error.ack_code}:{error.code}",
                reason=str(error),
                raw=_raw(message, raw) if keep_raw else None,
                busy_timeout=self.busy_timeout,
            )
        except Exception:  # the sender still gets its AE/AR
            log.exception("could not record a refused message")
        log.info("refused message %r: %s", control_id, error)
        return Outcome(error.ack_code, ack(message, error.ack_code, error), control_id, error)


def _raw(message: str, raw: bytes | None) -> bytes | None:
    if raw is not None:
        return raw
    return message.encode("utf-8") if message else None


def _unstored(message: str, dft: Dft) -> Outcome:
    """AR 207: the message is fine, the outbox would not take it; the sender sends again."""
    failure = Hl7Error(
        "MSH",
        None,
        "the adapter could not store the message; send it again",
        code=APPLICATION_ERROR,
        reject=True,
    )
    reply = ack(message, "AR", failure, header=dft.header)
    return Outcome("AR", reply, dft.control_id, failure)


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
                    reply = outcome.ack.encode("latin-1", "replace")
                except _Oversized as oversized:
                    outcome = await self.intake.refuse_unframed(
                        f"message larger than {self.max_message_bytes} bytes",
                        VALUE_TOO_LONG,
                        head=oversized.head,
                    )
                    reply = outcome.ack.encode("latin-1", "replace")
                else:
                    reply, _ = await self.intake.accept_bytes(block)
                writer.writeblock(reply)
                await writer.drain()
        except ConnectionError:
            log.info("MLLP connection from %s dropped", peer)
        finally:
            self._connections.discard(task)
            writer.close()
