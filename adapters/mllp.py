"""HL7 v2 intake: the MLLP listener (python-hl7's asyncio server) and what it runs.

Each message is read, checked against the DFT^P03 profile and written to the outbox;
only once that write is committed is it answered AA. A message we do not take is
answered AR, one with bad content AE with an ERR naming the segment and field; both are
recorded as dead letters (control id, code and reason). A repeat of a stored control id
from the same sender is answered AA again and stored once; a control id reused for
different content is answered AE (HL7 code 205).

A block that is a batch (FHS/BHS) is answered with a batch of ACKs, one per message.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass

from hl7.mllp import HL7StreamReader, HL7StreamWriter, InvalidBlockError, start_hl7_server

from adapters.group_commit import GroupCommit
from adapters.hl7v2 import (
    APPLICATION_ERROR,
    DEFAULT_OFFSET,
    DUPLICATE_KEY,
    SEGMENT_SEQUENCE_ERROR,
    Hl7Error,
    ack,
    ack_batch,
    decode_with_codec,
    is_batch,
    read_dft_p03,
    read_header,
    split_batch,
)
from adapters.outbox import NewDocument, Outbox
from hub.documents.invoice import INVOICE_TYPE, invoice_document_id

__all__ = ["DEFAULT_MAX_MESSAGE_BYTES", "Hl7Intake", "MllpListener", "Outcome", "hl7_key"]

log = logging.getLogger("adapters.mllp")

DEFAULT_MAX_MESSAGE_BYTES = 4 * 1024 * 1024
_VALUE_TOO_LONG = "104"


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
    ) -> None:
        self.outbox = outbox
        self.source = source
        self.on_enqueued = on_enqueued
        self.default_offset = default_offset
        # Messages from all connections share durable commits (AA after each one's own).
        self._commits = GroupCommit(outbox)

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
            reply = ack_batch([outcome.ack for outcome in outcomes])
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
        except Exception:
            log.exception("could not store message %s in the outbox", dft.control_id)
            failure = Hl7Error(
                "MSH",
                None,
                "the adapter could not store the message; send it again",
                code=APPLICATION_ERROR,
                reject=True,
            )
            return await self._refused(message, failure)
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

    async def refuse_unframed(self, problem: str, code: str = SEGMENT_SEQUENCE_ERROR) -> Outcome:
        """Answer a block we could not even frame or size (no message to name)."""
        error = Hl7Error("MSH", None, problem, code=code, reject=True)
        return await self._refused("", error)

    async def _refused(self, message: str, error: Hl7Error, *, raw: bytes | None = None) -> Outcome:
        try:
            header = read_header(message)
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
                raw=raw if raw is not None else message.encode("utf-8") if message else None,
            )
        except Exception:  # the sender still gets its AE/AR
            log.exception("could not record a refused message")
        log.info("refused message %r: %s", control_id, error)
        return Outcome(error.ack_code, ack(message, error.ack_code, error), control_id, error)


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
                    block = await reader.readblock()
                except asyncio.IncompleteReadError:
                    return  # the sender hung up between (or inside) messages
                except InvalidBlockError:
                    outcome = await self.intake.refuse_unframed(
                        "block does not begin with the MLLP start character (0x0B)"
                    )
                    reply = outcome.ack.encode("ascii")
                except ValueError:
                    outcome = await self.intake.refuse_unframed(
                        f"message larger than {self.max_message_bytes} bytes", _VALUE_TOO_LONG
                    )
                    reply = outcome.ack.encode("ascii")
                else:
                    reply, _ = await self.intake.accept_bytes(block)
                writer.writeblock(reply)
                await writer.drain()
        except ConnectionError:
            log.info("MLLP connection from %s dropped", peer)
        finally:
            self._connections.discard(task)
            writer.close()
