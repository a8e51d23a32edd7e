"""Issue 5 acceptance: the patient verify page in headless Chromium against a real hub."""

import base64
import json
import secrets
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from hub.documents.canonical import canonical_json
from hub.documents.demo_data import demo_invoices
from hub.ledger.checkpoint import Checkpoint, format_checkpoint, parse_checkpoint
from hub.ledger.note import Signer, generate_signer_key, parse_signer_key, sign_note
from tests.vectors import TLOG_VECTORS as VECTORS_DIR
from tests.web.conftest import ARTIFACTS, LiveHub, Visit


def wait_verdict(visit: Visit) -> dict[str, str | None]:
    box = visit.page.locator("#verdict[data-verdict]")
    box.wait_for(state="visible")
    return {"verdict": box.get_attribute("data-verdict"), "step": box.get_attribute("data-step")}


def open_invoice(visit: Visit, hub: LiveHub, **codes: str) -> dict[str, str | None]:
    visit.page.goto(hub.page_url({**hub.codes(), **codes}))
    return wait_verdict(visit)


def remembered_size(visit: Visit) -> int:
    """The tree size of the checkpoint the page keeps in local storage."""
    stored = visit.page.evaluate(
        "localStorage.getItem(Object.keys(localStorage).find(k => k.includes('checkpoint')))"
    )
    note = json.loads(stored)["note"]
    return parse_checkpoint(note[: note.rfind("\n\n") + 1]).size


# --- tampering helpers: rewrite the hub's answers on their way to the page -------------


def tamper_invoice(visit: Visit, change: Callable[[dict[str, Any]], None]) -> None:
    def handle(route: Any) -> None:
        response = route.fetch()
        payload = response.json()
        if (payload.get("data") or {}).get("invoice"):
            change(payload["data"]["invoice"])
        route.fulfill(response=response, json=payload)

    visit.page.route("**/graphql", handle)


def flip_receipt_hash(doc: dict[str, Any]) -> None:
    head, sep, note = doc["inclusionProof"]["receipt"].partition("\n\n")
    lines = head.split("\n")
    first_hash = next(i for i, line in enumerate(lines) if line.startswith("index ")) + 1
    assert first_hash < len(lines), "the test invoice needs a non-empty inclusion proof"
    raw = bytearray(base64.b64decode(lines[first_hash]))
    raw[0] ^= 0x01
    lines[first_hash] = base64.b64encode(bytes(raw)).decode()
    doc["inclusionProof"]["receipt"] = "\n".join(lines) + sep + note


def change_body(doc: dict[str, Any]) -> None:
    item = doc["body"]["items"][0]
    item["name"] = item["name"][:-1] + ("X" if item["name"][-1] != "X" else "Y")


def change_issued_at(doc: dict[str, Any]) -> None:
    # The body still matches its digest, but the ledger entry names another document.
    assert doc["issuedAt"] != "2000-01-01T00:00:00+08:00"
    doc["issuedAt"] = "2000-01-01T00:00:00+08:00"


def resign(note: str, signer: Signer) -> str:
    text = note[: note.rfind("\n\n") + 1]
    return sign_note(text, signer)


def other_key_signer(name: str) -> Signer:
    skey, _ = generate_signer_key(name)
    return parse_signer_key(skey)


def sign_other_key(doc: dict[str, Any]) -> None:
    proof = doc["inclusionProof"]
    head, sep, note = proof["receipt"].partition("\n\n")
    origin = note.split("\n", 1)[0]
    proof["receipt"] = head + sep + resign(note, other_key_signer(origin))


def forged_checkpoint(hub: LiveHub, size: int) -> str:
    """A checkpoint of another tree, validly signed with the hub's own key: a fork."""
    cp = Checkpoint(hub.settings.origin, size, secrets.token_bytes(32))
    return sign_note(format_checkpoint(cp), hub.signer)


# --- the page -------------------------------------------------------------------------


def test_happy_path_shows_invoice_access_log_and_pass(visit: Visit, live_hub: LiveHub) -> None:
    live_hub.agency_reads()
    assert open_invoice(visit, live_hub) == {"verdict": "pass", "step": None}
    page = visit.page
    inv = live_hub.invoice
    invoice = page.locator("#invoice")
    assert inv["issuerName"] in invoice.inner_text()
    assert inv["payer"]["name"] in invoice.inner_text()
    # Items grouped by category, each group labelled in Chinese and English.
    categories = {i["category"] for i in inv["items"]}
    groups = page.locator("#invoice tbody[data-category]")
    assert {groups.nth(i).get_attribute("data-category") for i in range(groups.count())} == (
        categories
    )
    assert "挂号费" in invoice.inner_text() and "Registration" in invoice.inner_text()
    totals = inv["totals"]
    assert page.locator("#total").inner_text() == f"¥{totals['total']}"
    insurance = float(totals["insuranceFund"]) + float(totals["otherPayments"])
    patient = float(totals["personalAccount"]) + float(totals["personalCash"])
    assert page.locator("#paid-insurance").inner_text() == f"¥{insurance:.2f}"
    assert page.locator("#paid-patient").inner_text() == f"¥{patient:.2f}"
    # The access log names the agency that read it.
    assert page.locator(f"#access tr[data-agency='{live_hub.agency}']").count() >= 1
    assert "reimbursement review" in page.locator("#access").inner_text()
    for step in ("digest", "leaf", "inclusion", "signature", "consistency"):
        assert page.locator(f"#steps li[data-step='{step}']").get_attribute("data-state") == (
            "pass"
        )
    # Usable at 360 px: nothing wider than the screen.
    assert page.evaluate("document.documentElement.scrollWidth") <= 360
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "verify-pass.png"), full_page=True)


def test_keyboard_only_and_language_switch(visit: Visit, live_hub: LiveHub) -> None:
    page = visit.page
    page.goto(f"{live_hub.url}/verify")
    codes = live_hub.codes()
    # Skip link, then the language button, then the three fields and the submit button.
    page.keyboard.press("Tab")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.id") == "lang"
    page.keyboard.press("Enter")  # switches to English
    assert page.locator("h1").inner_text() == "Medical e-invoice check"
    assert page.evaluate("document.documentElement.lang") == "en"
    for name in ("code", "number", "check"):
        page.keyboard.press("Tab")
        assert page.evaluate("document.activeElement.id") == name
        page.keyboard.type(codes[name])
    page.keyboard.press("Enter")
    assert wait_verdict(visit)["verdict"] == "pass"
    assert "Verified" in page.locator("#verdict").inner_text()
    assert "Registration" in page.locator("#invoice").inner_text()
    page.locator("#lang").press("Enter")  # and back to Chinese, results re-rendered
    assert page.locator("h1").inner_text() == "医疗收费电子票据查验"
    assert "验证通过" in page.locator("#verdict").inner_text()


@pytest.mark.parametrize(
    ("change", "step"),
    [
        pytest.param(flip_receipt_hash, "inclusion", id="flipped-proof-hash"),
        pytest.param(change_body, "digest", id="body-one-character"),
        pytest.param(change_issued_at, "leaf", id="leaf-data-other-time"),
        pytest.param(sign_other_key, "signature", id="checkpoint-other-key"),
    ],
)
def test_tampering_fails_naming_the_step(
    visit: Visit, live_hub: LiveHub, change: Callable[[dict[str, Any]], None], step: str
) -> None:
    tamper_invoice(visit, change)
    assert open_invoice(visit, live_hub) == {"verdict": "fail", "step": step}
    page = visit.page
    assert page.locator(f"#steps li[data-step='{step}']").get_attribute("data-state") == "fail"
    # Nothing unverified is remembered as a trusted checkpoint.
    assert page.evaluate("Object.keys(localStorage).filter(k => k.includes('checkpoint'))") == []


def test_wrong_check_code_looks_like_a_bill_that_does_not_exist(
    visit: Visit, live_hub: LiveHub
) -> None:
    page = visit.page
    check = live_hub.invoice["checkCode"]
    wrong = ("0" if check[0] != "0" else "1") + check[1:]
    shown = []
    for codes in ({"check": wrong}, {"number": "9999999999"}):
        page.goto(live_hub.page_url({**live_hub.codes(), **codes}))
        page.locator("#status[data-state='notfound']").wait_for()
        assert page.locator("#verdict").get_attribute("data-verdict") is None
        assert page.locator("#invoice").is_hidden()
        shown.append(page.locator("main").inner_html())
    assert shown[0] == shown[1]
    assert "未找到票据" in page.locator("#status").inner_text()


def test_second_visit_verifies_consistency(visit: Visit, live_hub: LiveHub) -> None:
    page = visit.page
    assert open_invoice(visit, live_hub)["verdict"] == "pass"
    cons = page.locator("#consistency")
    assert cons.get_attribute("data-consistency") == "first"
    first = remembered_size(visit)
    grown = live_hub.grow(3)
    assert grown > first
    page.reload()
    assert wait_verdict(visit) == {"verdict": "pass", "step": None}
    assert cons.get_attribute("data-consistency") == "ok"
    assert f"{first}" in cons.inner_text() and f"{grown}" in cons.inner_text()
    assert page.locator("#warning").is_hidden()


@pytest.mark.parametrize("grow_by", [0, 5], ids=["same-size", "larger"])
def test_forked_checkpoint_warns(visit: Visit, live_hub: LiveHub, grow_by: int) -> None:
    size = int(live_hub.graphql("{ checkpoint { treeSize } }")["checkpoint"]["treeSize"])
    fork = forged_checkpoint(live_hub, size + grow_by)
    visit.page.route(
        "**/log/checkpoint", lambda route: route.fulfill(status=200, body=fork, headers={})
    )
    assert open_invoice(visit, live_hub) == {"verdict": "fail", "step": "consistency"}
    warning = visit.page.locator("#warning[role='alert']")
    assert warning.is_visible()
    assert "改写" in warning.inner_text()
    assert visit.page.locator("#consistency").get_attribute("data-consistency") == "failed"


def test_remembered_checkpoint_from_a_fork_warns(visit: Visit, live_hub: LiveHub) -> None:
    """The log once showed this browser another tree; today's log cannot extend it."""
    assert open_invoice(visit, live_hub)["verdict"] == "pass"
    page = visit.page
    key = page.evaluate("Object.keys(localStorage).find(k => k.includes('checkpoint'))")
    size = int(live_hub.graphql("{ checkpoint { treeSize } }")["checkpoint"]["treeSize"])
    fork = forged_checkpoint(live_hub, size - 1)
    page.evaluate("([k, note]) => localStorage.setItem(k, JSON.stringify({note}))", [key, fork])
    page.reload()
    assert wait_verdict(visit) == {"verdict": "fail", "step": "consistency"}
    assert page.locator("#warning").is_visible()


def _download(visit: Visit, link: str, into: Path) -> Path:
    with visit.page.expect_download() as info:
        visit.page.locator(link).click()
    target = into / info.value.suggested_filename
    info.value.save_as(target)
    return target


def _hub_proof_verify(receipt: Path, key: str, document: Path) -> subprocess.CompletedProcess[str]:
    code = "from hub.cli import main; raise SystemExit(main())"
    args = ["proof", "verify", str(receipt), "--key", key, "--document", str(document)]
    return subprocess.run(
        [sys.executable, "-c", code, *args],
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize("tampered", [False, True], ids=["genuine", "body-changed"])
def test_downloads_give_the_same_verdict_offline(
    visit: Visit, live_hub: LiveHub, tmp_path: Path, tampered: bool
) -> None:
    if tampered:
        tamper_invoice(visit, change_body)
    verdict = open_invoice(visit, live_hub)["verdict"]
    assert verdict == ("fail" if tampered else "pass")
    receipt = _download(visit, "#dl-receipt", tmp_path)
    document = _download(visit, "#dl-json", tmp_path)
    key = _download(visit, "#dl-key", tmp_path).read_text().strip()
    assert receipt.name.endswith(".tlog-proof")
    exported = json.loads(document.read_text())
    assert set(exported) == {"issuer", "type", "id", "version", "issuedAt", "body", "salt"}
    assert len(base64.b64decode(exported["salt"])) == 32
    result = _hub_proof_verify(receipt, key, document)
    assert (result.returncode == 0) == (verdict == "pass"), result.stdout + result.stderr
    command = visit.page.locator("#dl-command").inner_text()
    assert command.startswith(f"hub proof verify {receipt.name} --key ")


def test_print_view_has_a_qr_code_linking_to_the_page(visit: Visit, live_hub: LiveHub) -> None:
    page = visit.page
    page.goto(live_hub.page_url(path="/verify/print"))
    assert wait_verdict(visit)["verdict"] == "pass"
    assert page.locator("#lookup").is_hidden()
    qr = page.locator("#qr-img")
    assert qr.is_visible()
    assert page.evaluate("document.getElementById('qr-img').naturalWidth") > 0
    src = qr.get_attribute("src")
    assert src is not None and src.startswith("/verify/qr.svg?")


def test_proof_module_agrees_with_the_golden_vectors_and_jcs(
    visit: Visit, live_hub: LiveHub
) -> None:
    """The browser's Merkle and JCS code against the vectors the Python ledger passes."""
    vectors = []
    for path in sorted(VECTORS_DIR.rglob("*.json")):
        v = json.loads(path.read_text())
        v["kind"] = path.relative_to(VECTORS_DIR).parts[0]
        v["name"] = str(path.relative_to(VECTORS_DIR))
        vectors.append(v)
    page = visit.page
    page.goto(f"{live_hub.url}/verify")
    wrong = page.evaluate(
        """async (vectors) => {
          const m = await import('/verify/static/proof.js');
          const d = (s) => { try { return m.b64decode(s); } catch { return new Uint8Array(); } };
          const wrong = [];
          for (const v of vectors) {
            const proof = (v.proof || []).map(d);
            let ok = true;
            try {
              if (v.kind === 'inclusion') {
                await m.verifyInclusion(v.leafIdx, v.treeSize, d(v.leafHash), proof, d(v.root));
              } else {
                await m.verifyConsistency(v.size1, v.size2, proof, d(v.root1), d(v.root2));
              }
            } catch (e) { ok = false; }
            if (ok === v.wantErr) wrong.push(v.name);
          }
          return wrong;
        }""",
        vectors,
    )
    assert len(vectors) > 180
    assert wrong == []
    tricky: list[Any] = [
        {"\u20ac": 1, "\r": 2, "\U0001f600": 3, "\ufb33": 4, "a": [None, True, False, -0]},
        {"s": 'quote" backslash\\ \u2028 \x1f \u00e9 \U0001f600', "n": 9007199254740991},
        *demo_invoices(5, seed=3),
    ]
    in_js = page.evaluate(
        """async (values) => {
          const m = await import('/verify/static/proof.js');
          return values.map((v) => m.jcs(v));
        }""",
        tricky,
    )
    assert [s.encode() for s in in_js] == [canonical_json(v) for v in tricky]


def test_any_type_with_a_check_code_is_checked_with_its_labels(
    visit: Visit, live_hub: LiveHub
) -> None:
    from hub.demo import DEMO_RECEIPTS
    from hub.documents.demo_types import demo_receipts

    receipt = demo_receipts(DEMO_RECEIPTS, seed=0)[0]
    query = {
        "type": "fiscal_receipt",
        "id": f"{receipt['billCode']}-{receipt['billNumber']}",
        "check": receipt["checkCode"],
    }
    page = visit.page
    page.goto(f"{live_hub.url}/verify?" + "&".join(f"{k}={v}" for k, v in query.items()))
    assert wait_verdict(visit) == {"verdict": "pass", "step": None}
    shown = page.locator("#invoice").inner_text()
    assert receipt["payer"]["name"] in shown and receipt["items"][0]["name"] in shown
    lang = page.evaluate("document.documentElement.lang")
    assert ("非税收入票据" if lang == "zh-CN" else "Non-tax revenue receipt") in shown
    assert ("执收单位" if lang == "zh-CN" else "Collecting unit") in shown
    page.locator("#lang").click()
    switched = page.locator("#invoice").inner_text()
    assert ("Collecting unit" if lang == "zh-CN" else "执收单位") in switched
    page.goto(
        f"{live_hub.url}/verify?"
        + "&".join(f"{k}={v}" for k, v in {**query, "check": "ZZZZZZ"}.items())
    )
    page.locator("#status[data-state='notfound']").wait_for()
