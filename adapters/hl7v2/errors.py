"""Where an HL7 message is wrong and what it earns: the source position, Hl7Error, and
the HL7 table 0357 error codes the ACKs carry."""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple

from adapters.errors import AdapterError

if TYPE_CHECKING:
    from adapters.hl7v2.header import Header

# HL7 table 0357, message error condition codes.
SEGMENT_SEQUENCE_ERROR = "100"
REQUIRED_FIELD_MISSING = "101"
DATA_TYPE_ERROR = "102"
TABLE_VALUE_NOT_FOUND = "103"
UNSUPPORTED_MESSAGE_TYPE = "200"
UNSUPPORTED_EVENT_CODE = "201"
UNSUPPORTED_PROCESSING_ID = "202"
UNSUPPORTED_VERSION_ID = "203"
VALUE_TOO_LONG = "104"
DUPLICATE_KEY = "205"
APPLICATION_ERROR = "207"
ERROR_TEXT = {
    SEGMENT_SEQUENCE_ERROR: "Segment sequence error",
    REQUIRED_FIELD_MISSING: "Required field missing",
    DATA_TYPE_ERROR: "Data type error",
    TABLE_VALUE_NOT_FOUND: "Table value not found",
    VALUE_TOO_LONG: "Value too long",
    UNSUPPORTED_MESSAGE_TYPE: "Unsupported message type",
    UNSUPPORTED_EVENT_CODE: "Unsupported event code",
    UNSUPPORTED_PROCESSING_ID: "Unsupported processing id",
    UNSUPPORTED_VERSION_ID: "Unsupported version id",
    DUPLICATE_KEY: "Duplicate key identifier",
    APPLICATION_ERROR: "Application internal error",
}


class Position(NamedTuple):
    """A place in a message, as python-hl7's accessor names one: segment, its occurrence
    (FT1 number 3 is ``sequence=3``; None for a segment that appears once), field and
    component. A tuple: one is made per field read, and only a refusal looks at them."""

    segment: str
    field: int | None = None
    sequence: int | None = None
    component: int | None = None

    def __str__(self) -> str:
        """``FT1[3]-11.1`` style."""
        where = self.segment if self.sequence is None else f"{self.segment}[{self.sequence}]"
        if self.field is not None:
            where += f"-{self.field}"
            if self.component is not None:
                where += f".{self.component}"
        return where


class Hl7Error(AdapterError):
    """A message breaks the profile; ``position`` says where (HL7 positions).

    ``code`` is an HL7 table 0357 code, and ``ack_code`` the answer it earns: ``AR`` when
    the message is not one we take (type, event, version, processing id, unreadable
    header, character set), ``AE`` when its content is wrong.
    """

    def __init__(
        self,
        segment: str,
        field: int | None,
        problem: str,
        *,
        sequence: int | None = None,
        component: int | None = None,
        code: str = DATA_TYPE_ERROR,
        reject: bool = False,
    ) -> None:
        self.position = Position(segment, field, sequence, component)
        self.problem = problem
        self.code = code
        self.ack_code = "AR" if reject else "AE"
        # Set by the reader: the MSH of the refused message when it could be read, and
        # (for bytes that did not decode) as much of its text as could be.
        self.header: Header | None = None
        self.text: str | None = None
        self.codec: str | None = None
        super().__init__(f"{self.position}: {problem}")

    @classmethod
    def at(cls, position: Position, problem: str, *, code: str = DATA_TYPE_ERROR) -> Hl7Error:
        """The error for ``problem`` found at ``position``."""
        return cls(
            position.segment,
            position.field,
            problem,
            sequence=position.sequence,
            component=position.component,
            code=code,
        )

    @property
    def segment(self) -> str:
        return self.position.segment

    @property
    def field(self) -> int | None:
        return self.position.field

    @property
    def sequence(self) -> int | None:
        return self.position.sequence

    @property
    def component(self) -> int | None:
        return self.position.component

    @property
    def location(self) -> str:
        """``FT1[3]-11.1`` style: segment, occurrence, field, component."""
        return str(self.position)
