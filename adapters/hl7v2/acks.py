"""Acknowledgements: original-mode ACKs with ERR segments, and batches of them."""

from __future__ import annotations

import itertools
import secrets
from datetime import UTC, datetime

from adapters.formats import clip
from adapters.hl7v2.encoding import Encoding, escape
from adapters.hl7v2.errors import ERROR_TEXT, Hl7Error
from adapters.hl7v2.header import SUPPORTED_VERSIONS, Header, read_header
from adapters.hl7v2.writer import segment_text

ACK_CODES = ("AA", "AE", "AR", "CA", "CE", "CR")
# MSA-3 is ST(80) in v2.3-v2.5; the whole problem goes to ERR (ERR-8 from v2.5).
MSA3_MAX = 80
# ERR-8 carries the problem; capped so that one ACK stays small.
_MAX_TEXT = 400


def ack(
    message: str | None,
    code: str,
    error: Hl7Error | None = None,
    *,
    control_id: str | None = None,
    now: datetime | None = None,
    header: Header | None = None,
) -> str:
    """An ACK to ``message``: ``AA``, ``AE``, ``AR``, or in enhanced mode the commit
    acknowledgements ``CA``, ``CE``, ``CR``.

    ``error`` becomes an ERR segment (v2.5: ERR-2 location, ERR-3 code, ERR-4 severity,
    ERR-8 text; v2.3/2.4: ERR-1) and MSA-3 (within its 80 characters). ``header`` is
    ``message``'s MSH when the caller has already read it (then ``message`` may be
    None); an unreadable message still gets an answer, with default delimiters and an
    empty MSA-2. The ACK names the message's character set (MSH-18) when it has one,
    as it is written in it.
    """
    if code not in ACK_CODES:
        raise ValueError(f"code must be one of {', '.join(ACK_CODES)}")
    if header is None and message:
        header = _readable_header(message)
    enc = header.encoding if header else Encoding(codec="utf-8")
    version = header.version if header and header.version in SUPPORTED_VERSIONS else "2.5"
    moment = (now or datetime.now(UTC)).strftime("%Y%m%d%H%M%S%z")
    event = header.trigger_event if header else ""
    event = escape(event, enc)
    # In the message's own component separator: a sender with other delimiters reads
    # the ACK with them.
    parts = ["ACK", event] if version == "2.3" else ["ACK", event, "ACK"]
    message_type = enc.component.join(parts)
    msh = segment_text(
        "MSH",
        enc,
        {
            3: header.receiving_application if header else "LEDGERHUB",
            4: header.receiving_facility if header else "HUB",
            5: header.sending_application if header else "",
            6: header.sending_facility if header else "",
            7: moment,
            9: message_type,
            10: escape(control_id or _ack_control_id(), enc),
            11: "P",
            12: version,
            18: escape(header.charset, enc) if header else "",
        },
    )
    original = escape(header.control_id, enc) if header else ""
    text = _msa_text(str(error), enc) if error else ""
    segments = [msh, segment_text("MSA", enc, {1: code, 2: original, 3: text})]
    if error is not None:
        segments.append(_err(error, enc, version))
    return "\r".join(segments) + "\r"


def _msa_text(text: str, enc: Encoding) -> str:
    """``text`` escaped and clipped so that MSA-3 holds at most MSA3_MAX characters."""
    limit = MSA3_MAX
    while True:
        escaped = escape(clip(text, limit, "..."), enc)
        if len(escaped) <= MSA3_MAX:
            return escaped
        limit -= len(escaped) - MSA3_MAX


def _readable_header(message: str) -> Header | None:
    """As much of ``message``'s MSH as can be read, for answering it; None if none."""
    try:
        return read_header(message, check_charset=False)
    except Hl7Error:
        return None


_ACK_ID_PREFIX = secrets.token_hex(6)
_ack_ids = itertools.count(1)


def _ack_control_id() -> str:
    # Unique per ACK without a random draw (a getrandom call) for each: a random
    # per-process prefix and a counter, 20 characters as MSH-10 allows in v2.3.
    return f"{_ACK_ID_PREFIX}{next(_ack_ids):08x}"[:20]


def _err(error: Hl7Error, enc: Encoding, version: str) -> str:
    c, s = enc.component, enc.subcomponent
    sequence = str(error.sequence or 1)
    position = "" if error.field is None else str(error.field)
    component = "" if error.component is None else str(error.component)
    meaning = ERROR_TEXT.get(error.code, "")
    if version in ("2.5", "2.5.1"):
        location = c.join((error.segment, sequence, position, "", component)).rstrip(c)
        return segment_text(
            "ERR",
            enc,
            {
                2: location,
                3: c.join((error.code, meaning, "HL70357")),
                4: "E",
                8: escape(clip(str(error), _MAX_TEXT, "..."), enc),
            },
        )
    # v2.3/2.4: ERR-1 "error code and location", the code as subcomponents of its CE.
    code = s.join((error.code, meaning, "HL70357"))
    return segment_text("ERR", enc, {1: c.join((error.segment, sequence, position, code))})


def ack_batch(
    acks: list[str], *, now: datetime | None = None, encoding: Encoding | None = None
) -> str:
    """The acknowledgements of a batch, as a batch: BHS, the ACKs, BTS with their count.

    ``encoding``: the delimiters of the batch answered (default ``|^~\\&``).
    """
    moment = (now or datetime.now(UTC)).strftime("%Y%m%d%H%M%S%z")
    enc = encoding or Encoding()
    header = segment_text("BHS", enc, {3: "LEDGERHUB", 4: "HUB", 7: moment})
    body = "".join(a if a.endswith("\r") else a + "\r" for a in acks)
    return f"{header}\r{body}BTS{enc.field}{len(acks)}\r"
