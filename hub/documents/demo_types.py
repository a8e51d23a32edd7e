"""Demo documents of the other shipped types: a finance bureau's non-tax revenue receipts
(非税收入票据) and the medical-insurance bureau's settlements (医保结算单) of demo invoices.

Deterministic for a seed, like the invoices (hub.documents.demo_data), and valid under
the shipped definitions.
"""

import hashlib
import random
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any

__all__ = [
    "FINANCE_BUREAU",
    "INSURANCE_BUREAU",
    "RECEIPT_BILL_CODE",
    "demo_receipts",
    "demo_settlements",
    "insured_ref",
]

FINANCE_BUREAU = ("finance-bureau", "海南省财政厅", "finance_bureau")
INSURANCE_BUREAU = ("medical-insurance-bureau", "海南省医疗保障局", "insurance_bureau")
# 46 (Hainan) + 00 (province) + 05 (non-tax revenue receipt) + 26 (year)
RECEIPT_BILL_CODE = "46000526"

# (code, name, legal basis, amount in cents)
_FEES = (
    ("103040101", "机动车驾驶证工本费", "价格主管部门核定标准", 1000),
    ("103050201", "不动产登记费", "发改价格规〔2016〕2559号", 8000),
    ("103040501", "居民身份证工本费", "价费字〔2003〕183号", 2000),
    ("103090101", "交通违法罚款", "《道路交通安全法》第九十条", 20000),
    ("103150301", "考试考务费", "琼发改收费〔2021〕1号", 12000),
    ("103050801", "房屋租赁登记费", "价格主管部门核定标准", 5000),
)
_UNITS = ("海口市公安局交通警察支队", "海口市不动产登记中心", "海南省人事考试局", "三亚市公安局")
_NAMES = "王陈李林吴符黄张邢羊云周冯郑蔡梁许钟何韩"
_GIVEN = "海琼文明华丽春秋玉兰志强小燕国庆美玲建军德芳晓"
_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


def _money(cents: int) -> str:
    return f"{cents // 100}.{cents % 100:02d}"


def demo_receipts(count: int, seed: int = 0) -> list[dict[str, Any]]:
    """``count`` valid ``fiscal_receipt`` bodies with numbers 1..count of the demo code."""
    rng = random.Random(seed)
    receipts = []
    for number in range(1, count + 1):
        fees = rng.sample(_FEES, rng.randint(1, 2))
        payer = rng.randrange(1, 60)
        day = 5 + rng.randrange(300)
        month, mday = 1 + (day // 28) % 12, 1 + day % 28
        receipts.append(
            {
                "billCode": RECEIPT_BILL_CODE,
                "billNumber": f"{seed * 100_000 + number:010d}",
                "checkCode": "".join(rng.choices(_ALPHABET, k=6)),
                "issuedAt": f"2026-{month:02d}-{mday:02d}T{rng.randint(8, 17):02d}:"
                f"{rng.randrange(60):02d}:00+08:00",
                "issuerName": rng.choice(_UNITS),
                "payer": {
                    "name": _NAMES[payer % len(_NAMES)] + _GIVEN[payer * 7 % len(_GIVEN)],
                    "idMasked": f"4601**********{payer:04d}",
                },
                "payerRef": f"F-{payer:06d}",
                "items": [
                    {"code": code, "name": name, "basis": basis, "amount": _money(cents)}
                    for code, name, basis, cents in fees
                ],
                "amount": _money(sum(cents for *_, cents in fees)),
                "currency": "CNY",
                "status": "issued",
            }
        )
    return receipts


def insured_ref(payer_id_masked: str, name: str) -> str:
    """A national medical-insurance number for a demo person (stable per person)."""
    digest = hashlib.sha256(f"{name}|{payer_id_masked}".encode()).hexdigest()
    return "H46" + str(int(digest[:12], 16) % 10**12).zfill(12)


def demo_settlements(
    invoices: Sequence[tuple[str, Mapping[str, Any]]], seed: int = 0
) -> list[dict[str, Any]]:
    """One ``insurance_settlement`` body per (issuing hospital id, invoice body)."""
    rng = random.Random(seed)
    settlements = []
    for serial, (hospital, invoice) in enumerate(invoices, start=1):
        totals = invoice["totals"]
        payer = invoice["payer"]
        settlements.append(
            {
                "settlementNumber": f"JS{invoice['issuedAt'][:4]}{serial:08d}",
                "checkCode": "".join(rng.choices(_ALPHABET, k=6)),
                "settledAt": invoice["issuedAt"],
                "insuredRef": insured_ref(payer["idMasked"], payer["name"]),
                "insured": {
                    "name": payer["name"],
                    "idMasked": payer["idMasked"],
                    "scheme": rng.choice(("employee", "resident")),
                },
                "invoice": {
                    "issuer": hospital,
                    "billCode": invoice["billCode"],
                    "billNumber": invoice["billNumber"],
                },
                "amounts": {
                    "total": totals["total"],
                    "fundPaid": totals["insuranceFund"],
                    "accountPaid": totals["personalAccount"],
                    "cashPaid": str(
                        Decimal(totals["personalCash"]) + Decimal(totals["otherPayments"])
                    ),
                },
                "currency": invoice["currency"],
                "status": "issued",
            }
        )
    return settlements
