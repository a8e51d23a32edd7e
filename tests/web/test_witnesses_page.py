"""The verify page shows who witnessed the receipt's checkpoint and checks it in the browser.

The hub's answers are rewritten on their way to the page (Playwright routes): a policy of
three witnesses whose keys the test holds, and cosignature lines made with them, so the
page's WebCrypto Ed25519 check of tlog-cosignature v1 runs on real signatures.
"""

import base64
import time
from typing import Any

from hub.ledger.checkpoint import Checkpoint, format_checkpoint
from hub.ledger.cosignature import cosign, format_cosigner_key, generate_cosigner_key
from hub.ledger.note import Signer, sign_note
from hub.ledger.receipt import Receipt, format_receipt, parse_receipt
from hub.ledger.tree import inclusion_proof, leaf_hash, root_from_leaf_hashes
from tests.web.conftest import LiveHub, Visit
from tests.web.test_verify_page import wait_verdict

WITNESSES = [generate_cosigner_key(f"w{i}.agency.example") for i in range(3)]
POLICY = (
    "".join(f"witness W{i} {format_cosigner_key(w.verifier)}\n" for i, w in enumerate(WITNESSES))
    + "group two 2 W0 W1 W2\nquorum two\n"
)


def _text(note: str) -> str:
    return note[: note.rfind("\n\n") + 1]


def _rewrite(visit: Visit, change: Any) -> None:
    visit.page.route(
        "**/log/policy",
        lambda route: route.fulfill(status=200, body=POLICY, content_type="text/plain"),
    )

    def handle(route: Any) -> None:
        response = route.fetch()
        payload = response.json()
        doc = (payload.get("data") or {}).get("invoice")
        if doc:
            doc["inclusionProof"]["receipt"] = change(doc["inclusionProof"]["receipt"])
        route.fulfill(response=response, json=payload)

    visit.page.route("**/graphql", handle)


def _cosigned(receipt: str, signers: list[Signer]) -> str:
    head, sep, note = receipt.partition("\n\n")
    now = int(time.time())
    return head + sep + note + "".join(cosign(s, _text(note), now) for s in signers)


def _open(visit: Visit, hub: LiveHub) -> dict[str, str | None]:
    visit.page.goto(hub.page_url())
    verdict = wait_verdict(visit)
    visit.page.locator("#witnesses[data-witnessed]").wait_for(state="visible")
    return verdict


def test_the_page_shows_who_witnessed(visit: Visit, live_hub: LiveHub) -> None:
    _rewrite(visit, lambda r: _cosigned(r, WITNESSES[:2]))
    assert _open(visit, live_hub)["verdict"] == "pass"
    box = visit.page.locator("#witnesses")
    assert box.get_attribute("data-witnessed") == "yes"
    names = box.locator("li[data-witness]")
    assert [names.nth(i).get_attribute("data-witness") for i in range(names.count())] == [
        "W0",
        "W1",
    ]


def test_one_cosignature_short_of_the_quorum_warns(visit: Visit, live_hub: LiveHub) -> None:
    _rewrite(visit, lambda r: _cosigned(r, WITNESSES[:1]))
    _open(visit, live_hub)
    box = visit.page.locator("#witnesses[role='alert']")
    assert box.get_attribute("data-witnessed") == "no"
    assert "未经见证" in box.inner_text()


def test_a_forged_cosignature_warns(visit: Visit, live_hub: LiveHub) -> None:
    def forge(receipt: str) -> str:
        cosigned = _cosigned(receipt, WITNESSES[:2])
        last = cosigned.rstrip("\n").rsplit(" ", 1)
        blob = bytearray(base64.b64decode(last[1]))
        blob[-1] ^= 1
        return f"{last[0]} {base64.b64encode(bytes(blob)).decode()}\n"

    _rewrite(visit, forge)
    _open(visit, live_hub)
    assert visit.page.locator("#witnesses").get_attribute("data-witnessed") == "bad"


def test_a_split_view_receipt_warns(visit: Visit, live_hub: LiveHub) -> None:
    """A tree holding the patient's invoice, signed with the hub's key, shown to them alone."""

    def split_view(receipt: str) -> str:
        real = parse_receipt(receipt)
        assert real.extra is not None
        leaves = [leaf_hash(b"other %d" % i) for i in range(real.index + 4)]
        leaves[real.index] = leaf_hash(real.extra)
        cp = Checkpoint(live_hub.settings.origin, len(leaves), root_from_leaf_hashes(leaves))
        note = sign_note(format_checkpoint(cp), live_hub.signer)
        proof = tuple(inclusion_proof(leaves, real.index))
        return format_receipt(Receipt(real.index, proof, note, real.extra))

    _rewrite(visit, split_view)
    verdict = _open(visit, live_hub)
    assert visit.page.locator("#witnesses").get_attribute("data-witnessed") == "no"
    assert verdict["verdict"] == "fail"  # and the log's own history disagrees with it


def test_the_witness_box_follows_the_language_switch(visit: Visit, live_hub: LiveHub) -> None:
    _rewrite(visit, lambda r: _cosigned(r, WITNESSES[:1]))
    _open(visit, live_hub)
    box = visit.page.locator("#witnesses")
    assert "未经见证" in box.inner_text()
    visit.page.locator("#lang").click()
    visit.page.locator("#witnesses", has_text="Not witnessed").wait_for()
