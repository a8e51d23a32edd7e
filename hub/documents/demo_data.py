"""Realistic, valid demo medical invoices from Hainan county hospitals.

Deterministic for a seed and fast (integer cents, one ``random.Random``), because
the demo seed, the benches and the tests all draw on it. Every invoice is
``status: "issued"``; reversals are later versions, which is the caller's business.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any, TypeVar

__all__ = ["DEMO_HOSPITALS", "DemoHospital", "demo_invoices"]

_T = TypeVar("_T")

# Bill numbers of one seed live in their own block, so two seeds never collide.
_SEED_BLOCKS = 1000
_BLOCK = 10_000_000


@dataclass(frozen=True, slots=True)
class DemoHospital:
    id: str
    name: str
    # 46 (Hainan) + county + 01 (medical charge bill) + 26 (year)
    bill_code: str


DEMO_HOSPITALS: tuple[DemoHospital, ...] = (
    DemoHospital("hosp-chengmai", "澄迈县人民医院", "46230126"),
    DemoHospital("hosp-dingan", "定安县人民医院", "46210126"),
    DemoHospital("hosp-tunchang", "屯昌县人民医院", "46220126"),
    DemoHospital("hosp-lingao", "临高县人民医院", "46240126"),
    DemoHospital("hosp-baisha", "白沙黎族自治县人民医院", "46250126"),
    DemoHospital("hosp-changjiang", "昌江黎族自治县人民医院", "46260126"),
    DemoHospital("hosp-ledong", "乐东黎族自治县人民医院", "46270126"),
    DemoHospital("hosp-lingshui", "陵水黎族自治县人民医院", "46280126"),
    DemoHospital("hosp-baoting", "保亭黎族苗族自治县人民医院", "46290126"),
    DemoHospital("hosp-qiongzhong", "琼中黎族苗族自治县人民医院", "46300126"),
)

# (code, name, unit price in cents) per category; prices near Hainan public-hospital tariffs.
_Charge = tuple[str, str, int]
_CHARGES: dict[str, tuple[_Charge, ...]] = {
    "registration": (("110100001", "挂号费", 100), ("110100002", "急诊挂号费", 200)),
    "consultation": (
        ("110200001", "普通门诊诊察费", 1000),
        ("110200001a", "副主任医师诊察费", 2000),
        ("110200001b", "主任医师诊察费", 3000),
    ),
    "general_treatment": (("110200006", "一般诊疗费", 1000),),
    "laboratory": (
        ("250101015", "血常规（五分类）", 2500),
        ("250102001", "尿常规", 1000),
        ("250302001", "葡萄糖测定", 800),
        ("250307005", "肌酐测定", 800),
        ("250401015", "C反应蛋白测定", 3000),
        ("250305003", "丙氨酸氨基转移酶测定", 500),
        ("250104008", "糖化血红蛋白测定", 4500),
    ),
    "examination": (
        ("210102015", "胸部DR摄影", 8000),
        ("220201001", "彩色多普勒超声常规检查", 12000),
        ("310701001", "常规心电图检查", 2500),
        ("210300001", "颅脑CT平扫", 18000),
    ),
    "treatment": (
        ("120400006", "静脉输液", 1000),
        ("120400001", "肌肉注射", 300),
        ("311000028", "雾化吸入", 1500),
        ("120500001", "换药（小）", 1200),
    ),
    "surgery": (
        ("330100006", "清创缝合术", 15000),
        ("330700009", "体表肿物切除术", 35000),
        ("331003006", "阑尾切除术", 120000),
    ),
    "materials": (
        ("C14010101", "一次性使用输液器", 450),
        ("C14020101", "一次性使用无菌注射器 5ml", 80),
        ("C02030101", "医用纱布块", 120),
        ("C14010301", "静脉留置针", 1800),
    ),
    "western_medicine": (
        ("XJ01CAA040", "阿莫西林胶囊 0.25g×24粒", 1260),
        ("XJ01DDC110", "头孢克肟分散片 0.1g×6片", 2130),
        ("XB05BBA001", "0.9%氯化钠注射液 250ml", 385),
        ("XM01AEI009", "布洛芬缓释胶囊 0.3g×20粒", 1580),
        ("XA10BAE001", "盐酸二甲双胍片 0.5g×48片", 990),
        ("XC08CAA098", "苯磺酸氨氯地平片 5mg×7片", 630),
    ),
    "patent_medicine": (
        ("ZA04BAL032", "连花清瘟胶囊 0.35g×24粒", 2680),
        ("ZA12BAD013", "复方丹参滴丸 27mg×180丸", 2850),
        ("ZA01BAB036", "板蓝根颗粒 10g×20袋", 1500),
    ),
    # Herbal pieces are priced per gram; quantities are grams.
    "herbal_pieces": (
        ("T00100", "黄芪", 35),
        ("T00200", "当归", 60),
        ("T00300", "甘草", 18),
        ("T00400", "茯苓", 28),
    ),
    "bed": (("110900001", "普通病房床位费（三人间）", 3000),),
    "nursing": (("120100002", "一级护理", 3600), ("120100003", "二级护理", 2200)),
    "other": (("999000001", "病历本工本费", 100), ("999000002", "救护车费", 6000)),
}
_INPATIENT_CONSULTATION: _Charge = ("110200005", "住院诊察费", 1500)
# Extra outpatient lines are drawn from these, without repeating a charge.
_OUTPATIENT_EXTRAS: tuple[tuple[str, _Charge], ...] = tuple(
    (category, charge)
    for category in (
        "laboratory",
        "examination",
        "western_medicine",
        "patent_medicine",
        "treatment",
        "materials",
        "herbal_pieces",
    )
    for charge in _CHARGES[category]
)
_OUTPATIENT_DEPARTMENTS = ("内科", "外科", "儿科", "妇产科", "急诊科", "中医科", "眼科", "口腔科")
_INPATIENT_DEPARTMENTS = ("内科", "外科", "骨科", "儿科", "妇产科", "神经内科", "心血管内科")

_SURNAMES = "王陈李林吴符黄张邢羊云周冯郑蔡梁许钟何韩"
_GIVEN = "海琼文明华丽春秋玉兰志强小燕国庆美玲建军德芳晓"
_CHECK_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_FIRST_DAY = date(2026, 1, 5).toordinal()
_DAYS = 320


def demo_invoices(count: int, seed: int = 0) -> list[dict[str, Any]]:
    """``count`` valid ``medical_invoice`` bodies, the same for the same ``(count, seed)``.

    Bill numbers are sequential per hospital and unique within a call and across seeds
    in ``0..999``; the first ``n`` invoices of a run are the run of ``n``. A patient
    (``patientRef``) keeps the same name and masked id across invoices and calls, and has
    several invoices on average.
    """
    if not 0 <= count <= _BLOCK:
        raise ValueError(f"count must be between 0 and {_BLOCK}")
    rng = random.Random(seed)
    next_number = [(seed % _SEED_BLOCKS) * _BLOCK + 1] * len(DEMO_HOSPITALS)
    invoices = []
    for i in range(count):
        h = _below(rng, len(DEMO_HOSPITALS))
        number = next_number[h]
        next_number[h] = number + 1
        # The pool of patients grows with the run, so a prefix of a run is a shorter run.
        patient = _below(rng, 10 + i // 3)
        invoices.append(_invoice(rng, DEMO_HOSPITALS[h], number, patient, i))
    return invoices


def _invoice(
    rng: random.Random, hospital: DemoHospital, number: int, patient: int, serial: int
) -> dict[str, Any]:
    day = date.fromordinal(_FIRST_DAY + _below(rng, _DAYS))
    issued_at = (
        f"{day.isoformat()}T{_between(rng, 7, 18):02d}:{_below(rng, 60):02d}:"
        f"{_below(rng, 60):02d}+08:00"
    )
    inpatient = rng.random() < 0.2
    if inpatient:
        stay = _between(rng, 2, 15)
        items = _inpatient_items(rng, stay)
        visit: dict[str, str | None] = {
            "type": "inpatient",
            "department": _pick(rng, _INPATIENT_DEPARTMENTS),
            "recordNumber": f"ZY{day.year}{serial % 1_000_000:06d}",
            "admittedOn": date.fromordinal(day.toordinal() - stay).isoformat(),
            "dischargedOn": day.isoformat(),
        }
    else:
        items = _outpatient_items(rng)
        visit = {
            "type": "outpatient",
            "department": _pick(rng, _OUTPATIENT_DEPARTMENTS),
            "recordNumber": f"MZ{day.year}{day.month:02d}{day.day:02d}{serial % 10_000:04d}",
            "admittedOn": None,
            "dischargedOn": None,
        }
    total = sum(cents for _, cents in items)
    return {
        "billCode": hospital.bill_code,
        "billNumber": f"{number:010d}",
        "checkCode": "".join(rng.choices(_CHECK_ALPHABET, k=6)),
        "issuedAt": issued_at,
        "issuerName": hospital.name,
        "payer": {"name": _patient_name(patient), "idMasked": _patient_id_masked(patient)},
        "patientRef": f"P-{patient:06d}",
        "visit": visit,
        "items": [item for item, _ in items],
        "totals": _totals(rng, total, inpatient),
        "currency": "CNY",
        "status": "issued",
    }


def _outpatient_items(rng: random.Random) -> list[tuple[dict[str, str], int]]:
    items = [_item("registration", _CHARGES["registration"][0], 100)]
    if rng.random() < 0.3:
        items.append(_item("general_treatment", _CHARGES["general_treatment"][0], 100))
    else:
        items.append(_item("consultation", _pick(rng, _CHARGES["consultation"]), 100))
    for category, charge in rng.sample(_OUTPATIENT_EXTRAS, _between(rng, 1, 5)):
        if category == "herbal_pieces":
            # grams per dose x 7 doses; half grams happen, which exercises the rounding
            hundredths = _between(rng, 20, 61) * 50 * 7
        elif category in ("western_medicine", "patent_medicine"):
            hundredths = _between(rng, 1, 4) * 100
        else:
            hundredths = 100
        items.append(_item(category, charge, hundredths))
    return items


def _inpatient_items(rng: random.Random, days: int) -> list[tuple[dict[str, str], int]]:
    per_day = days * 100
    items = [
        _item("bed", _CHARGES["bed"][0], per_day),
        _item("nursing", _pick(rng, _CHARGES["nursing"]), per_day),
        _item("consultation", _INPATIENT_CONSULTATION, per_day),
        _item("treatment", _CHARGES["treatment"][0], per_day),
        _item("materials", _CHARGES["materials"][0], per_day),
    ]
    for charge in rng.sample(_CHARGES["laboratory"], _between(rng, 2, 5)):
        items.append(_item("laboratory", charge, _between(rng, 1, 3) * 100))
    for charge in rng.sample(_CHARGES["examination"], _between(rng, 1, 3)):
        items.append(_item("examination", charge, 100))
    for charge in rng.sample(_CHARGES["western_medicine"], _between(rng, 2, 5)):
        items.append(_item("western_medicine", charge, _between(rng, 1, 11) * 100))
    if rng.random() < 0.3:
        items.append(_item("surgery", _pick(rng, _CHARGES["surgery"]), 100))
    if rng.random() < 0.1:
        items.append(_item("other", _CHARGES["other"][1], 100))
    return items


def _item(category: str, charge: _Charge, hundredths: int) -> tuple[dict[str, str], int]:
    code, name, price = charge
    # quantity in hundredths x price in cents, back to cents rounded half-up
    amount = (hundredths * price + 50) // 100
    if hundredths % 100:
        quantity = f"{hundredths // 100}.{hundredths % 100:02d}".rstrip("0")
    else:
        quantity = str(hundredths // 100)
    item = {
        "category": category,
        "code": code,
        "name": name,
        "quantity": quantity,
        "unitPrice": _PRICE_TEXT[price],
        "amount": _money(amount),
    }
    return item, amount


def _totals(rng: random.Random, total: int, inpatient: bool) -> dict[str, str]:
    scheme = rng.random()
    if scheme < 0.15:  # uninsured: the patient pays everything out of pocket
        fund = other = account = 0
        self_pay = cash = total
    else:
        employee = scheme < 0.6  # employee insurance has a personal account; residents none
        self_pay = total * _pick(rng, (0, 0, 5, 10, 20)) // 100
        eligible = total - self_pay
        ratio = (85 if inpatient else 70) if employee else (70 if inpatient else 50)
        fund = eligible * ratio // 100
        # serious-illness insurance or medical assistance for some inpatient stays
        other = (eligible - fund) * 30 // 100 if inpatient and rng.random() < 0.2 else 0
        personal = total - fund - other
        account = personal * _pick(rng, (0, 50, 100)) // 100 if employee else 0
        cash = personal - account
    return {
        "total": _money(total),
        "insuranceFund": _money(fund),
        "otherPayments": _money(other),
        "personalAccount": _money(account),
        "personalCash": _money(cash),
        "selfPay": _money(self_pay),
    }


def _money(cents: int) -> str:
    return f"{cents // 100}.{cents % 100:02d}"


# random.randrange/choice cost ~1 µs a call, a third of the whole run; a float draw is
# uniform enough for demo data.
def _below(rng: random.Random, n: int) -> int:
    return int(rng.random() * n)


def _between(rng: random.Random, low: int, high: int) -> int:
    return low + int(rng.random() * (high - low))


def _pick(rng: random.Random, choices: Sequence[_T]) -> _T:
    return choices[int(rng.random() * len(choices))]


_PRICE_TEXT = {
    charge[2]: _money(charge[2])
    for charges in (*_CHARGES.values(), (_INPATIENT_CONSULTATION,))
    for charge in charges
}


def _patient_name(patient: int) -> str:
    # Derived from the patient number alone, so a patient is the same person in every call.
    surname = _SURNAMES[patient % len(_SURNAMES)]
    rest = patient // len(_SURNAMES)
    given = _GIVEN[rest % len(_GIVEN)]
    if rest % 3:
        given += _GIVEN[(rest // len(_GIVEN) + patient) % len(_GIVEN)]
    return surname + given


def _patient_id_masked(patient: int) -> str:
    tail = (patient * 7919 + 1234) % 10_000
    last = "X" if tail % 11 == 0 else str(tail % 10)
    return f"460***********{tail // 10:03d}{last}"
