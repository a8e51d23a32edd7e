"""HL7 v2 intake: one message or MLLP block read, checked, stored, and answered.

Each message is tokenized once: the reader hands on its Header (on a refusal too, in
``Hl7Error.header``), and the ACK is written from it. Only once the outbox write is
committed is a message answered AA. A message we do not take is answered AR, one with
bad content AE with an ERR naming the segment and field; both are recorded as dead
letters (control id, code and reason). A repeat of a stored control id from the same
sender is answered AA again and stored once; a control id reused for different content
is answered AE (HL7 code 205).

Enhanced acknowledgement mode (MSH-15 or MSH-16 set): the commit ACK (CA, CE, CR) once
the message is durable or refused, then the application ACK, each as the message's
MSH-15/MSH-16 (AL, NE, ER, SU) asks.

A block that is a batch (FHS/BHS) is answered with a batch of ACKs, one per message.

When the outbox cannot be written (another process holds it, the disk is full) the
answer is AR 207 (enhanced mode: CE), "send again", within INTAKE_BUSY_TIMEOUT: the
message is not at fault, so it is not a dead letter, and nothing is acknowledged that
is not stored.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from adapters.group_commit import GroupCommit
from adapters.hl7v2.acks import ack, ack_batch
from adapters.hl7v2.batches import batch_encoding, is_batch, split_batch
from adapters.hl7v2.errors import (
    APPLICATION_ERROR,
    DUPLICATE_KEY,
    SEGMENT_SEQUENCE_ERROR,
    Hl7Error,
)
from adapters.hl7v2.header import Header, read_header
from adapters.hl7v2.reader import DEFAULT_OFFSET, read_dft_p03
from adapters.hl7v2.tokenizer import decode_with_codec
from adapters.metrics import ACK_SECONDS
from adapters.outbox import INTAKE_BUSY_TIMEOUT, NewDocument, Outbox
from hub.documents.invoice import INVOICE_TYPE, invoice_document_id

__all__ = ["Hl7Intake", "Outcome", "hl7_key"]

log = logging.getLogger("adapters.mllp")

_START_BLOCK = b"\x0b"
# The commit acknowledgement for an original-mode code (AR 207 is CE: send again).
_COMMIT = {"AA": "CA", "AE": "CA", "AR": "CR"}


def hl7_key(sender: str, control_id: str) -> str:
    """The outbox key of a message: control ids are unique per sender (MSH-3, MSH-4)."""
    return f"hl7:{sender}|{control_id}"


@dataclass(frozen=True, slots=True)
class Outcome:
    """What became of one message: its ACK code, the ACK, and the error if refused.

    ``replies`` are the acknowledgements to send, in order: the ACK in original mode;
    in enhanced mode those of the commit and application ACKs that MSH-15/16 ask for
    (possibly none).
    """

    code: str  # AA | AE | AR
    ack: str
    control_id: str = ""
    error: Hl7Error | None = None
    stored: bool = False  # a new outbox entry was made
    replies: tuple[str, ...] = field(default=())


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

    async def accept_bytes(self, data: bytes) -> tuple[list[bytes], list[Outcome]]:
        """One MLLP block (a message or a batch) in; the reply blocks and outcomes out."""
        started = time.perf_counter()
        replies, outcomes = await self._accept_bytes(data)
        ACK_SECONDS.observe(time.perf_counter() - started)
        return replies, outcomes

    async def _accept_bytes(self, data: bytes) -> tuple[list[bytes], list[Outcome]]:
        try:
            text, codec = decode_with_codec(data)
        except Hl7Error as error:
            # Delimiters and MSH are ASCII, so the header still reads for the ACK.
            error.header = _readable_header(error.text or "", error.codec)
            outcome = await self._refused(error, raw=data)
            reply_codec = error.codec or "ascii"
            return [reply.encode(reply_codec, "replace") for reply in outcome.replies], [outcome]
        if is_batch(text):
            outcomes = await self.accept_batch(text)
            acks = [reply for outcome in outcomes for reply in outcome.replies]
            # In the character set the batch was read in (its first MSH-18), which the
            # ACKs inside it name.
            reply = ack_batch(acks, encoding=batch_encoding(text))
            return [reply.encode(codec, "replace")], outcomes
        outcome = await self.accept(text)
        return [reply.encode(codec, "replace") for reply in outcome.replies], [outcome]

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
            return await self._refused(error, raw=message.encode("utf-8"))
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
            return _unstored(dft.header)
        except Exception:
            log.exception("could not store message %r in the outbox", dft.control_id)
            return _unstored(dft.header)
        if result.status == "conflict":
            reused = Hl7Error(
                "MSH",
                10,
                "this control id was already used for a different message",
                code=DUPLICATE_KEY,
            )
            reused.header = dft.header
            return await self._refused(reused, raw=message.encode("utf-8"))
        if result.status == "new" and self.on_enqueued is not None:
            self.on_enqueued()
        return _outcome("AA", dft.header, None, stored=result.status == "new")

    async def refuse_unframed(
        self, problem: str, code: str = SEGMENT_SEQUENCE_ERROR, *, head: bytes = b""
    ) -> Outcome:
        """Answer a block we could not frame or size. ``head``, the block's first bytes,
        names the message (MSA-2, the dead letter's key) when its MSH can be read."""
        error = Hl7Error("MSH", None, problem, code=code, reject=True)
        # Delimiters and MSH are ASCII in every character set we read.
        text = head.removeprefix(_START_BLOCK).decode("latin-1")
        error.header = _readable_header(text) if text.startswith("MSH") else None
        return await self._refused(error, raw=None)

    async def _refused(self, error: Hl7Error, *, raw: bytes | None) -> Outcome:
        header = error.header
        control_id = header.control_id if header else ""
        # Without a control id there is nothing to recognise a repeat by.
        key = hl7_key(header.sender, control_id) if header and control_id.strip() else ""
        try:
            await asyncio.to_thread(
                self.outbox.refuse,
                key=key,
                source=self.source,
                code=f"{error.ack_code}:{error.code}",
                reason=str(error),
                raw=raw or None,
                busy_timeout=self.busy_timeout,
            )
        except Exception:  # the sender still gets its AE/AR
            log.exception("could not record a refused message")
        log.info("refused message %r: %s", control_id, error)
        return _outcome(error.ack_code, header, error)


def _readable_header(text: str, codec: str | None = None) -> Header | None:
    """As much of a refused message's MSH as can be read, for answering it."""
    try:
        header = read_header(text, check_charset=False)
    except Hl7Error:
        return None
    if codec is not None:
        header = replace(header, encoding=replace(header.encoding, codec=codec))
    return header


def _unstored(header: Header) -> Outcome:
    """AR 207: the message is fine, the outbox would not take it; the sender sends again."""
    failure = Hl7Error(
        "MSH",
        None,
        "the adapter could not store the message; send it again",
        code=APPLICATION_ERROR,
        reject=True,
    )
    return _outcome("AR", header, failure, commit="CE")


def _outcome(
    code: str,
    header: Header | None,
    error: Hl7Error | None,
    *,
    stored: bool = False,
    commit: str | None = None,
) -> Outcome:
    """The Outcome of one message and the acknowledgements its header asks for."""
    answer = ack(None, code, error, header=header)
    control_id = header.control_id if header else ""
    if header is None or not (header.accept_ack or header.application_ack):
        return Outcome(code, answer, control_id, error, stored, (answer,))
    commit = commit or _COMMIT[code]
    accepted = commit == "CA"
    replies = []
    if _wanted(header.accept_ack, accepted):
        replies.append(ack(None, commit, None if accepted else error, header=header))
    if accepted and _wanted(header.application_ack, code == "AA"):
        replies.append(answer)
    return Outcome(code, answer, control_id, error, stored, tuple(replies))


def _wanted(condition: str, success: bool) -> bool:
    """Whether an acknowledgement is sent under MSH-15/16 ``condition`` (HL7 table 0155):
    AL always (and an empty or unknown one), NE never, ER on error, SU on success."""
    if condition == "NE":
        return False
    if condition == "ER":
        return not success
    if condition == "SU":
        return success
    return True
