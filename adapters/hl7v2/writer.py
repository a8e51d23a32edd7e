"""An invoice body written as a DFT^P03 (the inverse of the reader), and segment text."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from adapters.hl7v2.encoding import Encoding, escape
from adapters.hl7v2.header import MAX_CONTROL_ID, SUPPORTED_VERSIONS
from adapters.hl7v2.reader import NATIONAL_ID_TYPE, PATIENT_ID_TYPE, VISIT_CLASS
from adapters.hl7v2.tokenizer import HEADER_SEGMENTS
from hub.documents.invoice import CATEGORIES, validate_invoice

_CLASS_OF_VISIT = {value: key for key, value in VISIT_CLASS.items()}
_ISO = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})T([0-9]{2}):([0-9]{2}):([0-9]{2})(\.[0-9]+)?"
    r"(Z|[+-][0-9]{2}:[0-9]{2})"
)


def invoice_to_dft_p03(
    body: Mapping[str, Any],
    control_id: str,
    version: str = "2.5",
    *,
    supersedes: int | None = None,
    sending_application: str = "HIS",
) -> str:
    """A DFT^P03 carrying ``body`` (validated first; raises BadDocument).

    Reading it back with read_dft_p03 gives ``body`` unchanged, except that an
    ``issuedAt`` in ``Z`` comes back as ``+00:00`` (HL7 has one way to write UTC).
    Raises ValueError for a version we do not speak or a time HL7 cannot hold.
    """
    if version not in SUPPORTED_VERSIONS:
        raise ValueError(f"version must be one of {', '.join(SUPPORTED_VERSIONS)}")
    if not control_id or len(control_id) > MAX_CONTROL_ID:
        raise ValueError(f"control_id must be 1-{MAX_CONTROL_ID} characters")
    validate_invoice(body)
    enc = Encoding()

    def e(text: str) -> str:
        return escape(text, enc)

    issued = _iso_to_dtm(body["issuedAt"])
    visit = body["visit"]
    payer = body["payer"]
    totals = body["totals"]
    currency = body["currency"]
    message_type = "DFT^P03" if version == "2.3" else "DFT^P03^DFT_P03"
    segments = [
        segment_text(
            "MSH",
            enc,
            {
                3: e(sending_application),
                4: e(body["billCode"]),
                5: "LEDGERHUB",
                6: "HUB",
                7: issued,
                9: message_type,
                10: e(control_id),
                11: "P",
                12: version,
                17: "CHN",
                18: "UNICODE UTF-8",
            },
        ),
        segment_text("EVN", enc, {1: "P03", 2: issued}),
        segment_text(
            "PID",
            enc,
            {
                1: "1",
                3: f"{e(body['patientRef'])}^^^^{PATIENT_ID_TYPE}"
                f"~{e(payer['idMasked'])}^^^^{NATIONAL_ID_TYPE}",
                5: e(payer["name"]),
                18: e(visit["recordNumber"]),
            },
        ),
        segment_text(
            "PV1",
            enc,
            {
                1: "1",
                2: _CLASS_OF_VISIT[visit["type"]],
                3: e(visit["department"]),
                19: e(visit["recordNumber"]),
                44: _date_to_dtm(visit["admittedOn"]),
                45: _date_to_dtm(visit["dischargedOn"]),
            },
        ),
    ]
    day = issued[:8]
    for number, item in enumerate(body["items"], start=1):
        segments.append(
            segment_text(
                "FT1",
                enc,
                {
                    1: str(number),
                    4: day,
                    6: "CG",
                    7: f"{e(item['code'])}^{e(item['name'])}",
                    8: e(item["category"]),
                    9: CATEGORIES[item["category"]],
                    10: e(item["quantity"]),
                    11: f"{e(item['amount'])}&{e(currency)}",
                    12: f"{e(item['unitPrice'])}&{e(currency)}",
                    13: e(visit["department"]),
                },
            )
        )
    segments.append(
        segment_text(
            "ZEB",
            enc,
            {
                1: "1",
                2: e(body["billCode"]),
                3: e(body["billNumber"]),
                4: e(body["checkCode"]),
                5: issued,
                6: e(totals["insuranceFund"]),
                7: e(totals["otherPayments"]),
                8: e(totals["personalAccount"]),
                9: e(totals["personalCash"]),
                10: e(totals["selfPay"]),
                11: e(body["issuerName"]),
                12: e(totals["total"]),
                13: e(currency),
                14: e(body["status"]),
                15: "" if supersedes is None else str(supersedes),
            },
        )
    )
    return "\r".join(segments) + "\r"


def segment_text(name: str, enc: Encoding, fields: Mapping[int, str]) -> str:
    """One segment's text from its fields by position (values already escaped)."""
    last = max(position for position, value in fields.items() if value)
    values = [fields.get(position, "") for position in range(1, last + 1)]
    if name in HEADER_SEGMENTS:
        # <name>-1 is the separator itself and <name>-2 the encoding characters.
        return name + enc.field + enc.characters + enc.field + enc.field.join(values[2:])
    return name + enc.field + enc.field.join(values)


def _iso_to_dtm(value: str) -> str:
    match = _ISO.fullmatch(value)
    if match is None:
        raise ValueError("issuedAt must be an ISO-8601 date-time with offset")
    year, month, day, hour, minute, second, fraction, zone = match.groups()
    if fraction and len(fraction) > 5:
        raise ValueError("HL7 times carry at most 4 fractional digits")
    offset = "+0000" if zone == "Z" else zone.replace(":", "")
    return f"{year}{month}{day}{hour}{minute}{second}{fraction or ''}{offset}"


def _date_to_dtm(value: str | None) -> str:
    return "" if value is None else value.replace("-", "")


# --------------------------------------------------------------------------- ACKs
