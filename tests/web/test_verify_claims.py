"""The verify page tells the patient who reimbursed the bill, how much and when."""

from hub.demo import CLAIMING
from tests.web.conftest import LiveHub, Visit
from tests.web.test_verify_page import open_invoice

CLAIMS = (
    "query($c: String!, $n: String!, $k: String!) {"
    " invoice(billCode: $c, billNumber: $n, checkCode: $k) { claims { agency amount at } } }"
)


def test_the_page_lists_the_claims_on_the_bill(visit: Visit, live_hub: LiveHub) -> None:
    codes = live_hub.codes()
    claims = live_hub.graphql(
        CLAIMS, {"c": codes["code"], "n": codes["number"], "k": codes["check"]}
    )["invoice"]["claims"]
    assert {c["agency"] for c in claims} == set(CLAIMING)  # the demo claimed it twice
    assert open_invoice(visit, live_hub)["verdict"] == "pass"
    page = visit.page
    for c in claims:
        line = page.locator(f"#claims li[data-agency='{c['agency']}']").inner_text()
        assert f"¥{c['amount']}" in line and "已报销" in line
        assert c["at"][:4] in line  # the year of the booking
    page.locator("#lang").click()
    english = page.locator("#claims").inner_text()
    assert "Reimbursed by" in english and CLAIMING[0] in english
