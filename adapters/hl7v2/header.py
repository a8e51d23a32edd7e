"""The MSH of a message: what it says (Header) and whether it is a message we take."""

from __future__ import annotations

from dataclasses import dataclass

from adapters.hl7v2.encoding import Encoding
from adapters.hl7v2.errors import (
    REQUIRED_FIELD_MISSING,
    UNSUPPORTED_EVENT_CODE,
    UNSUPPORTED_MESSAGE_TYPE,
    UNSUPPORTED_PROCESSING_ID,
    UNSUPPORTED_VERSION_ID,
    Hl7Error,
)
from adapters.hl7v2.tokenizer import UNKNOWN_CHARSET, Message, tokenize_head

SUPPORTED_VERSIONS = ("2.3", "2.3.1", "2.4", "2.5", "2.5.1")
MESSAGE_STRUCTURE = "DFT_P03"
MAX_CONTROL_ID = 199


@dataclass(frozen=True, slots=True)
class Header:
    """What the MSH of a message says about it. Raw fields stay escaped."""

    encoding: Encoding
    sending_application: str
    sending_facility: str
    receiving_application: str
    receiving_facility: str
    timestamp: str
    message_code: str
    trigger_event: str
    structure: str
    control_id: str
    processing_id: str
    version: str
    # MSH-18 as sent when we read that character set (the ACK echoes it), else "".
    charset: str = ""
    # MSH-15 (accept) and MSH-16 (application acknowledgement type); both empty is
    # original mode.
    accept_ack: str = ""
    application_ack: str = ""

    @property
    def sender(self) -> str:
        """MSH-3|MSH-4 as sent: control ids are unique per sender, not across them."""
        return f"{self.sending_application}|{self.sending_facility}"


def read_header(message: str, *, check_charset: bool = True) -> Header:
    """The MSH of ``message``. Raises Hl7Error (an AR) when it cannot be read.

    ``check_charset=False`` reads a header whose MSH-18 names a character set we do not
    know (as UTF-8), so that the AR refusing it can still name its control id.
    """
    head, _ = tokenize_head(message)
    if check_charset and not head.charset_known:
        raise Hl7Error("MSH", 18, UNKNOWN_CHARSET, reject=True)
    return header_of(head)


def header_of(msg: Message) -> Header:
    """The Header of a tokenized message (its first segment)."""
    msh = msg.segments[0]

    def part(position: int, component: int = 1) -> str:
        return msg.value(msh, position, component=component)

    return Header(
        encoding=msg.encoding,
        sending_application=msh.raw(3),
        sending_facility=msh.raw(4),
        receiving_application=msh.raw(5),
        receiving_facility=msh.raw(6),
        timestamp=part(7),
        message_code=part(9, 1),
        trigger_event=part(9, 2),
        structure=part(9, 3),
        control_id=part(10),
        processing_id=part(11),
        version=part(12),
        charset=msg.charset if msg.charset_known else "",
        accept_ack=part(15),
        application_ack=part(16),
    )


def check_header(header: Header) -> None:
    """Raise Hl7Error (mostly an AR) for a message we do not take."""
    if header.message_code != "DFT":
        raise Hl7Error(
            "MSH",
            9,
            "only DFT^P03 messages are taken here",
            component=1,
            code=UNSUPPORTED_MESSAGE_TYPE,
            reject=True,
        )
    if header.trigger_event != "P03":
        raise Hl7Error(
            "MSH",
            9,
            "only the P03 event (post detail financial transaction) is taken",
            component=2,
            code=UNSUPPORTED_EVENT_CODE,
            reject=True,
        )
    if header.structure not in ("", MESSAGE_STRUCTURE):
        # Another structure under DFT^P03 means segments we would misread.
        raise Hl7Error(
            "MSH",
            9,
            f"message structure must be {MESSAGE_STRUCTURE} (or empty)",
            component=3,
            code=UNSUPPORTED_MESSAGE_TYPE,
            reject=True,
        )
    if header.version not in SUPPORTED_VERSIONS:
        raise Hl7Error(
            "MSH",
            12,
            f"version must be one of {', '.join(SUPPORTED_VERSIONS)}",
            code=UNSUPPORTED_VERSION_ID,
            reject=True,
        )
    if header.processing_id != "P":
        # A public ledger cannot take back a training or debugging message once anchored.
        raise Hl7Error(
            "MSH",
            11,
            "only production messages (processing id P) are anchored",
            code=UNSUPPORTED_PROCESSING_ID,
            reject=True,
        )
    if not header.control_id.strip():
        raise Hl7Error("MSH", 10, "message control id is missing", code=REQUIRED_FIELD_MISSING)
    if len(header.control_id) > MAX_CONTROL_ID or any(ord(c) < 0x20 for c in header.control_id):
        raise Hl7Error("MSH", 10, f"message control id must be 1-{MAX_CONTROL_ID} characters")
