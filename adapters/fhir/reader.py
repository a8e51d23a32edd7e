"""One structurally valid Invoice read into an invoice body, element by element."""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from adapters.errors import MappingError
from adapters.fhir.codes import (
    _ECHOABLE,
    _MAX_EXPONENT,
    _PAYMENT_KEYS,
    _STATUS_IN,
    _UNIT_PRICE,
    _VISIT_PARTS,
    CS_CHARGE_CATEGORY,
    CS_CHARGE_ITEM,
    CS_PRICE_COMPONENT,
    EXT_PAYMENT,
    EXT_VISIT,
    SYSTEM_BILL,
    SYSTEM_BILL_CODE,
    SYSTEM_BILL_NUMBER,
    SYSTEM_CHECK_CODE,
)
from adapters.formats import number_text
from hub.documents.errors import BadDocument
from hub.documents.invoice import validate_invoice

Take = Callable[[Callable[[], Any], Any], Any]
# A date-only Invoice.creation/date is read as midnight at this offset (China's time).
DATE_ONLY_OFFSET = "+08:00"
_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
# Patient/<id>, relative or absolute, with or without a version.
_PATIENT_REFERENCE = re.compile(
    r"(?:https?://[^\s]+/)?Patient/([A-Za-z0-9\-.]{1,64})(?:/_history/[A-Za-z0-9\-.]{1,64})?"
)


def _contained(
    resource: dict[str, Any], reference: object, kind: str
) -> tuple[int, dict[str, Any]] | None:
    """The contained resource of type ``kind`` a ``#id`` reference names, with its index."""
    if not isinstance(reference, str) or not reference.startswith("#"):
        return None
    for index, contained in enumerate(resource.get("contained", [])):
        if (
            isinstance(contained, dict)
            and contained.get("resourceType") == kind
            and contained.get("id") == reference[1:]
        ):
            return index, contained
    return None


class _Reader:
    """Reads one structurally valid Invoice; remembers which element gave each field."""

    def __init__(self) -> None:
        self.where: dict[str, str] = {}
        self.currency = ""

    def invoice(self, resource: dict[str, Any]) -> dict[str, Any]:
        """The body; every problem of the mapping is raised at once (``MappingError.all``)."""
        problems: list[MappingError] = []

        def take(read: Callable[[], Any], fallback: Any) -> Any:
            try:
                return read()
            except MappingError as error:
                problems.extend(error.all)
                return fallback

        # Currency first: every Money is checked against it.
        total = take(lambda: self._totals_and_currency(resource), "")
        bill_code, bill_number, check_code = take(lambda: self._identifiers(resource), ("", "", ""))
        body = {
            "billCode": bill_code,
            "billNumber": bill_number,
            "checkCode": check_code,
            "issuedAt": take(lambda: self._issued_at(resource), ""),
            "issuerName": take(lambda: self._issuer(resource), ""),
            "payer": take(lambda: self._payer(resource), {}),
            "patientRef": take(lambda: self._patient(resource), ""),
            "visit": take(lambda: self._visit(resource), {}),
            "items": take(lambda: self._items(resource, take), []),
            "totals": {"total": total, **take(lambda: self._payment(resource), {})},
            "currency": self.currency,
            "status": take(lambda: self._status(resource), ""),
        }
        if problems:
            first, *more = problems
            raise MappingError(
                first.path, first.problem, code=first.code, field=first.field, more=tuple(more)
            )
        try:
            validate_invoice(body)
        except BadDocument as error:
            raise MappingError(
                self._locate(error.field), error.problem, code="business-rule", field=error.field
            ) from None
        # After the invoice rules, so that a malformed total is reported as such first.
        self._net_equals_gross(resource, total)
        return body

    # - elements ---------------------------------------------------------------------------

    def _totals_and_currency(self, resource: dict[str, Any]) -> str:
        gross = resource.get("totalGross")
        name = "totalGross" if gross is not None else "totalNet"
        chosen = gross if gross is not None else resource.get("totalNet")
        if not isinstance(chosen, dict):
            raise MappingError(
                "Invoice.totalGross", "the invoice total is required", code="required"
            )
        currency = chosen.get("currency")
        if not isinstance(currency, str):
            raise MappingError(
                f"Invoice.{name}.currency", "required element is missing", code="required"
            )
        self.currency = currency
        self.where["body.currency"] = f"Invoice.{name}.currency"
        return self._amount(chosen, f"Invoice.{name}", "body.totals.total")

    def _net_equals_gross(self, resource: dict[str, Any], total: str) -> None:
        net = resource.get("totalNet")
        if resource.get("totalGross") is None or not isinstance(net, dict):
            return
        if self._amount(net, "Invoice.totalNet", None) != total:
            raise MappingError(
                "Invoice.totalNet.value",
                "differs from totalGross; a medical e-bill carries no tax",
                code="business-rule",
            )

    def _identifiers(self, resource: dict[str, Any]) -> tuple[str, str, str]:
        found: dict[str, tuple[str, str]] = {}
        for index, identifier in enumerate(resource.get("identifier", [])):
            system = identifier.get("system")
            if system in (SYSTEM_BILL, SYSTEM_BILL_CODE, SYSTEM_BILL_NUMBER, SYSTEM_CHECK_CODE):
                path = f"Invoice.identifier[{index}]"
                if system in found:
                    raise MappingError(path, f"a second identifier with system {system}")
                found[system] = (self._text(identifier, "value", path, None), f"{path}.value")
        combined = found.get(SYSTEM_BILL)
        parts = combined[0].split("-") if combined is not None else []
        values = []
        for system, field, position in (
            (SYSTEM_BILL_CODE, "body.billCode", 0),
            (SYSTEM_BILL_NUMBER, "body.billNumber", 1),
        ):
            if system in found:
                value, path = found[system]
            elif combined is not None and len(parts) == 2:
                value, path = parts[position], combined[1]
            else:
                raise MappingError(
                    "Invoice.identifier",
                    f"needs an identifier with system {system} (or {SYSTEM_BILL} "
                    "with the value <billCode>-<billNumber>)",
                    code="required",
                )
            self.where[field] = path
            values.append(value)
        bill_code, bill_number = values
        if combined is not None and combined[0] != f"{bill_code}-{bill_number}":
            raise MappingError(
                combined[1],
                f"must be <billCode>-<billNumber> and agree with the {SYSTEM_BILL_CODE} "
                f"and {SYSTEM_BILL_NUMBER} identifiers",
            )
        if SYSTEM_CHECK_CODE not in found:
            raise MappingError(
                "Invoice.identifier",
                f"needs an identifier with system {SYSTEM_CHECK_CODE} (the check code)",
                code="required",
            )
        check_code, self.where["body.checkCode"] = found[SYSTEM_CHECK_CODE]
        return bill_code, bill_number, check_code

    def _status(self, resource: dict[str, Any]) -> str:
        self.where["body.status"] = "Invoice.status"
        status = resource.get("status")
        if status is None:
            raise MappingError("Invoice.status", "required element is missing", code="required")
        if status not in _STATUS_IN:
            raise MappingError(
                "Invoice.status",
                "only issued (or balanced) and cancelled invoices are anchored",
                code="not-supported",
            )
        return _STATUS_IN[status]

    def _issued_at(self, resource: dict[str, Any]) -> str:
        creation, date = resource.get("creation"), resource.get("date")
        if creation is not None and date is not None and creation != date:
            raise MappingError("Invoice.date", "differs from Invoice.creation")
        name = "creation" if creation is not None else "date"
        if resource.get(name) is None:
            raise MappingError(
                "Invoice.date",
                "required (R5: Invoice.creation): when the bill was issued",
                code="required",
            )
        self.where["body.issuedAt"] = f"Invoice.{name}"
        value = _string(resource[name], f"Invoice.{name}")
        if _DATE.fullmatch(value):
            # A date alone (valid FHIR dateTime): the start of that day, local time.
            return f"{value}T00:00:00{DATE_ONLY_OFFSET}"
        return value

    def _issuer(self, resource: dict[str, Any]) -> str:
        issuer = self._object(resource, "issuer", "Invoice")
        if issuer.get("display") is None:
            contained = _contained(resource, issuer.get("reference"), "Organization")
            if contained is not None and isinstance(contained[1].get("name"), str):
                index, organization = contained
                self.where["body.issuerName"] = f"Invoice.contained[{index}].name"
                return str(organization["name"])
            if issuer.get("reference") is not None or issuer.get("identifier") is not None:
                raise MappingError(
                    "Invoice.issuer.display",
                    "the issuer's name is required: give issuer.display (or reference a"
                    " contained Organization with a name)",
                    code="required",
                )
        return self._text(issuer, "display", "Invoice.issuer", "body.issuerName")

    def _payer(self, resource: dict[str, Any]) -> dict[str, str]:
        recipient = self._object(resource, "recipient", "Invoice")
        self.where["body.payer"] = "Invoice.recipient"
        name = self._text(recipient, "display", "Invoice.recipient", "body.payer.name")
        identifier = self._object(recipient, "identifier", "Invoice.recipient")
        masked = self._text(
            identifier, "value", "Invoice.recipient.identifier", "body.payer.idMasked"
        )
        return {"name": name, "idMasked": masked}

    def _patient(self, resource: dict[str, Any]) -> str:
        subject = self._object(resource, "subject", "Invoice")
        identifier = subject.get("identifier")
        if isinstance(identifier, dict) and identifier.get("value") is not None:
            return self._text(identifier, "value", "Invoice.subject.identifier", "body.patientRef")
        reference = subject.get("reference")
        contained = _contained(resource, reference, "Patient")
        if contained is not None:
            index, patient = contained
            for number, found in enumerate(patient.get("identifier", [])):
                if isinstance(found, dict) and isinstance(found.get("value"), str):
                    self.where["body.patientRef"] = (
                        f"Invoice.contained[{index}].identifier[{number}].value"
                    )
                    return str(found["value"])
            if isinstance(patient.get("id"), str):
                self.where["body.patientRef"] = f"Invoice.contained[{index}].id"
                return str(patient["id"])
        match = _PATIENT_REFERENCE.fullmatch(reference) if isinstance(reference, str) else None
        if match is not None:
            self.where["body.patientRef"] = "Invoice.subject.reference"
            return match[1]
        raise MappingError(
            "Invoice.subject.identifier",
            "the patient needs an identifier (or a Patient/<id> reference, or a contained Patient)",
            code="required",
        )

    def _visit(self, resource: dict[str, Any]) -> dict[str, str | None]:
        path, parts = self._extension(resource, EXT_VISIT)
        self.where["body.visit"] = path
        visit: dict[str, str | None] = {}
        for key, element in _VISIT_PARTS.items():
            found = parts.get(key)
            if found is None:
                if key in ("admittedOn", "dischargedOn"):
                    visit[key] = None
                    continue
                raise MappingError(
                    f"{path}.extension", f"needs the sub-extension {key}", code="required"
                )
            part_path, part = found
            if element not in part:
                raise MappingError(part_path, f"{key} must have a {element}")
            self.where[f"body.visit.{key}"] = f"{part_path}.{element}"
            visit[key] = _string(part[element], f"{part_path}.{element}")
        return visit

    def _payment(self, resource: dict[str, Any]) -> dict[str, str]:
        path, parts = self._extension(resource, EXT_PAYMENT)
        self.where["body.totals"] = path
        payment = {}
        for key in _PAYMENT_KEYS:
            if key not in parts:
                raise MappingError(
                    f"{path}.extension", f"needs the sub-extension {key}", code="required"
                )
            part_path, part = parts[key]
            money = part.get("valueMoney")
            if not isinstance(money, dict):
                raise MappingError(part_path, f"{key} must have a valueMoney")
            payment[key] = self._amount(money, f"{part_path}.valueMoney", f"body.totals.{key}")
        return payment

    def _extension(
        self, resource: dict[str, Any], url: str
    ) -> tuple[str, dict[str, tuple[str, dict[str, Any]]]]:
        """The path of our extension ``url`` and its sub-extensions by url."""
        matches = [
            index
            for index, extension in enumerate(resource.get("extension", []))
            if extension.get("url") == url
        ]
        if not matches:
            raise MappingError("Invoice.extension", f"needs the extension {url}", code="required")
        path = f"Invoice.extension[{matches[0]}]"
        if len(matches) > 1:
            raise MappingError(f"Invoice.extension[{matches[1]}]", f"a second extension {url}")
        allowed = _VISIT_PARTS if url == EXT_VISIT else _PAYMENT_KEYS
        parts: dict[str, tuple[str, dict[str, Any]]] = {}
        for index, part in enumerate(resource["extension"][matches[0]].get("extension", [])):
            part_path = f"{path}.extension[{index}]"
            name = part.get("url")
            if name not in allowed:
                raise MappingError(
                    f"{part_path}.url", f"unknown sub-extension; one of {', '.join(allowed)}"
                )
            if name in parts:
                raise MappingError(part_path, f"a second sub-extension {name}")
            parts[name] = (part_path, part)
        return path, parts

    def _items(self, resource: dict[str, Any], take: Take) -> list[dict[str, str]]:
        self.where["body.items"] = "Invoice.lineItem"
        items = []
        for index, line in enumerate(resource.get("lineItem", [])):
            path, field = f"Invoice.lineItem[{index}]", f"body.items[{index}]"
            items.append(take(functools.partial(self._item, line, path, field), None))
        return [item for item in items if item is not None]

    def _item(self, line: dict[str, Any], path: str, field: str) -> dict[str, str]:
        self.where[field] = path
        concept = line.get("chargeItemCodeableConcept")
        if concept is None:
            raise MappingError(
                f"{path}.chargeItemReference",
                "charge items are not resolved: give the item inline as chargeItemCodeableConcept",
                code="not-supported",
            )
        concept_path = f"{path}.chargeItemCodeableConcept"
        codings = list(enumerate(concept.get("coding", [])))
        categories = [(i, c) for i, c in codings if c.get("system") == CS_CHARGE_CATEGORY]
        if not categories:
            raise MappingError(
                f"{concept_path}.coding",
                f"needs a coding with system {CS_CHARGE_CATEGORY} (the charge category)",
                code="required",
            )
        ours = [(i, c) for i, c in codings if c.get("system") == CS_CHARGE_ITEM]
        others = [(i, c) for i, c in codings if c.get("system") != CS_CHARGE_CATEGORY]
        # A foreign billing code is accepted when it is the only candidate.
        candidates = ours or others
        if len(candidates) != 1:
            raise MappingError(
                f"{concept_path}.coding",
                f"needs one coding with system {CS_CHARGE_ITEM} (the item code)",
                code="required",
            )
        category_index, category = categories[0]
        item_index, item = candidates[0]
        category_path = f"{concept_path}.coding[{category_index}]"
        item_path = f"{concept_path}.coding[{item_index}]"
        if concept.get("text") is not None:
            name = self._text(concept, "text", concept_path, f"{field}.name")
        else:
            name = self._text(item, "display", item_path, f"{field}.name")
        quantity, amount, unit_price = self._prices(line, path, field)
        return {
            "category": self._text(category, "code", category_path, f"{field}.category"),
            "code": self._text(item, "code", item_path, f"{field}.code"),
            "name": name,
            "quantity": quantity,
            "unitPrice": unit_price,
            "amount": amount,
        }

    def _prices(self, line: dict[str, Any], path: str, field: str) -> tuple[str, str, str]:
        base: tuple[str, dict[str, Any]] | None = None
        unit: tuple[str, dict[str, Any]] | None = None
        for index, component in enumerate(line.get("priceComponent", [])):
            component_path = f"{path}.priceComponent[{index}]"
            kind = component.get("type")
            if kind == "base":
                if base is not None:
                    raise MappingError(component_path, "a second base component")
                base = (component_path, component)
            elif kind == "informational":
                if _has_code(component.get("code"), CS_PRICE_COMPONENT, _UNIT_PRICE):
                    if unit is not None:
                        raise MappingError(component_path, "a second unit-price component")
                    unit = (component_path, component)
            else:
                raise MappingError(
                    f"{component_path}.type",
                    "only base and informational components are supported; a medical e-bill "
                    "has no surcharge, deduction, discount or tax per line",
                    code="not-supported",
                )
        if base is None:
            raise MappingError(
                f"{path}.priceComponent",
                "needs a base component carrying the line amount (factor = quantity)",
                code="required",
            )
        base_path, component = base
        if component.get("factor") is None:
            quantity = "1"
            self.where[f"{field}.quantity"] = base_path
        else:
            self.where[f"{field}.quantity"] = f"{base_path}.factor"
            quantity = _quantity_text(_decimal(component["factor"], f"{base_path}.factor"))
        money = self._object(component, "amount", base_path)
        amount = self._amount(money, f"{base_path}.amount", f"{field}.amount")
        if unit is not None:
            unit_path, unit_component = unit
            money = self._object(unit_component, "amount", unit_path)
            return (
                quantity,
                amount,
                self._amount(money, f"{unit_path}.amount", f"{field}.unitPrice"),
            )
        derived = _exact_unit_price(quantity, amount)
        if derived is None:
            raise MappingError(
                f"{path}.priceComponent",
                "needs an informational component with code "
                f"{CS_PRICE_COMPONENT}#{_UNIT_PRICE}: the unit price follows from the amount "
                "only for a whole quantity",
                code="required",
            )
        self.where[f"{field}.unitPrice"] = f"{base_path}.amount.value"
        return quantity, amount, derived

    # - primitives -------------------------------------------------------------------------

    def _object(self, parent: dict[str, Any], key: str, path: str) -> dict[str, Any]:
        value = parent.get(key)
        if value is None:
            raise MappingError(f"{path}.{key}", "required element is missing", code="required")
        if not isinstance(value, dict):
            raise MappingError(f"{path}.{key}", "must be an object", code="structure")
        return value

    def _text(self, parent: dict[str, Any], key: str, path: str, field: str | None) -> str:
        element = f"{path}.{key}"
        if field is not None:
            self.where[field] = element
        if parent.get(key) is None:
            raise MappingError(element, "required element is missing", code="required")
        return _string(parent[key], element)

    def _amount(self, money: dict[str, Any], path: str, field: str | None) -> str:
        if field is not None:
            self.where[field] = f"{path}.value"
        currency = money.get("currency")
        if currency is not None and currency != self.currency:
            raise MappingError(f"{path}.currency", "differs from the currency of the invoice total")
        if money.get("value") is None:
            raise MappingError(f"{path}.value", "required element is missing", code="required")
        return _money_text(_decimal(money["value"], f"{path}.value"))

    def _locate(self, field: str) -> str:
        probe: str | None = field
        while probe is not None:
            if probe in self.where:
                return self.where[probe]
            probe = _parent(probe)
        return "Invoice"


def _string(value: object, path: str) -> str:
    if not isinstance(value, str):
        raise MappingError(path, "must be a string", code="structure")
    return value


def _decimal(value: object, path: str) -> Decimal:
    if isinstance(value, Decimal) and value.is_finite():
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return Decimal(value)
    if isinstance(value, float) and value == value and abs(value) != float("inf"):
        # Shortest repr: exact for every decimal of at most 15 significant digits.
        return Decimal(repr(value))
    raise MappingError(path, "must be a JSON number", code="structure")


def _money_text(value: Decimal) -> str:
    """Exactly 2 decimals when that loses nothing; otherwise the plain text, which the
    invoice rules then refuse with their own message."""
    return _plain(value, places=2)


def _quantity_text(value: Decimal) -> str:
    return _plain(value, places=0)


def _plain(value: Decimal, places: int) -> str:
    if abs(value.adjusted()) > _MAX_EXPONENT:
        return str(value)
    return number_text(f"{value:f}", places)


def _exact_unit_price(quantity: str, amount: str) -> str | None:
    """``amount / quantity`` when the quantity is whole and the division exact to the cent.

    Only then is the unit price certain: with a fractional quantity the amount was
    rounded, and several unit prices give it.
    """
    try:
        count, total = Decimal(quantity), Decimal(amount)
    except ArithmeticError:
        return None
    if not count.is_finite() or count <= 0 or count != count.to_integral_value():
        return None
    if not total.is_finite() or abs(total.adjusted()) > _MAX_EXPONENT:
        return None
    price = total / count
    cents = price.quantize(Decimal("0.01"))
    return _money_text(cents) if cents * count == total else None


def _has_code(concept: object, system: str, code: str) -> bool:
    if not isinstance(concept, dict):
        return False
    return any(
        coding.get("system") == system and coding.get("code") == code
        for coding in concept.get("coding", [])
    )


def _parent(field: str) -> str | None:
    cut = max(field.rfind("."), field.rfind("["))
    return field[:cut] if cut > 0 else None


def _child(path: str, key: str) -> str:
    shown = key if _ECHOABLE.fullmatch(key) else "?"
    return f"{path}.{shown}"
