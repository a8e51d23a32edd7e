"""HL7 v2 DFT^P03 (v2.3 to v2.5.1) to the medical invoice and back; ACKs; batch files.

Pure: text in, text or dicts out. The profile is DESIGN.md's "HL7 v2 profile"; the
field table is in adapters/README.md ("HL7 v2"). Additions of ours, all optional on
input: PID-3 repetition with identifier type ``NNCHN`` (or PID-19) for ``payer.idMasked``;
PV1-44/45 for the admission and discharge dates; without PV1 the visit is outpatient,
its department comes from FT1-13 and its record number from PID-18; FT1-11.1.2 (money
denomination) for the currency; ``ZEB-12`` total, ``ZEB-13`` currency, ``ZEB-14``
status, ``ZEB-15`` the version a correction or reversal supersedes. ``patientRef`` is the
first PID-3 repetition that is not the national id (``NNCHN``).

The tokenizer and escape handling are our own rather than python-hl7's: its unescape
turns each ``\\Xhh\\`` byte into a Latin-1 character (so UTF-8 bytes come back as
mojibake), its escape writes non-ASCII as ``\\Xhhhh\\`` that it cannot read back, and
an error must name the segment occurrence and field, which its accessors do not track.

Modules: ``errors`` (Position, Hl7Error, table 0357), ``encoding`` (delimiters,
escapes), ``tokenizer`` (segments, character sets), ``header`` (MSH and its checks),
``reader`` (DFT^P03 -> body), ``writer`` (body -> DFT^P03), ``acks``, ``batches``,
``intake`` (one message or block into the outbox, answered).

Error texts name segments, fields and rules, never a personal value.
"""

from adapters.hl7v2.acks import ack, ack_batch
from adapters.hl7v2.batches import Batch, batch_encoding, is_batch, split_batch
from adapters.hl7v2.encoding import Encoding, escape, unescape
from adapters.hl7v2.errors import (
    APPLICATION_ERROR,
    DATA_TYPE_ERROR,
    DUPLICATE_KEY,
    REQUIRED_FIELD_MISSING,
    SEGMENT_SEQUENCE_ERROR,
    TABLE_VALUE_NOT_FOUND,
    VALUE_TOO_LONG,
    Hl7Error,
    Position,
)
from adapters.hl7v2.header import SUPPORTED_VERSIONS, Header, read_header
from adapters.hl7v2.reader import DEFAULT_OFFSET, Dft, parse_dft_p03, read_dft_p03
from adapters.hl7v2.tokenizer import decode_message, decode_with_codec
from adapters.hl7v2.writer import invoice_to_dft_p03

__all__ = [
    "APPLICATION_ERROR",
    "DATA_TYPE_ERROR",
    "DEFAULT_OFFSET",
    "DUPLICATE_KEY",
    "REQUIRED_FIELD_MISSING",
    "SEGMENT_SEQUENCE_ERROR",
    "SUPPORTED_VERSIONS",
    "TABLE_VALUE_NOT_FOUND",
    "VALUE_TOO_LONG",
    "Batch",
    "Dft",
    "Encoding",
    "Header",
    "Hl7Error",
    "Position",
    "ack",
    "ack_batch",
    "batch_encoding",
    "decode_message",
    "decode_with_codec",
    "escape",
    "invoice_to_dft_p03",
    "is_batch",
    "parse_dft_p03",
    "read_dft_p03",
    "read_header",
    "split_batch",
    "unescape",
]
