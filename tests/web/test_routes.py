"""The verify page's HTTP surface: headers, assets and the printable QR code (no browser)."""

import re
from collections.abc import AsyncIterator
from dataclasses import replace
from urllib.parse import urlencode

import httpx
import pytest

from hub.app import create_app
from hub.config import DEFAULT_PUBLIC_URL, Settings
from hub.services import Hub
from hub.web.routes import ASSETS, qr_svg

CODES = {"code": "46010126", "number": "0000012345", "check": "a1B2c3"}


@pytest.fixture
async def client(hub: Hub) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=create_app(hub=hub))
    async with httpx.AsyncClient(transport=transport, base_url="http://hub.test") as c:
        yield c


@pytest.mark.parametrize("path", ["/verify", "/verify/print"])
async def test_page_has_a_strict_csp_and_no_inline_code(
    client: httpx.AsyncClient, path: str
) -> None:
    r = await client.get(path)
    assert r.status_code == 200
    csp = {d.split()[0]: d.split()[1:] for d in r.headers["content-security-policy"].split("; ")}
    assert csp["default-src"] == ["'self'"]
    assert csp["script-src"] == ["'self'"] and csp["style-src"] == ["'self'"]
    assert r.headers["referrer-policy"] == "no-referrer"  # the URL holds the check code
    assert r.headers["x-content-type-options"] == "nosniff"
    html = r.text
    assert not re.search(r"<script(?![^>]*\bsrc=)", html), "inline script"
    assert "<style" not in html and " style=" not in html and not re.search(r" on\w+=", html)
    assert not re.search(r"(src|href)=\"(https?:)?//", html), "a third-party resource"
    assert f'data-mode="{path.rsplit("/", 1)[1]}"' in html


async def test_assets_are_served_and_nothing_else(client: httpx.AsyncClient) -> None:
    for name, media in ASSETS.items():
        r = await client.get(f"/verify/static/{name}")
        assert r.status_code == 200 and r.headers["content-type"] == media
        imports = re.findall(r'from "\./([\w.]+)"', r.text)
        assert all(i in ASSETS for i in imports), imports
    for bad in ("routes.py", "__init__.py", "..%2Froutes.py", "verify.html"):
        assert (await client.get(f"/verify/static/{bad}")).status_code == 404


async def test_qr_code_opens_the_page_with_the_codes(client: httpx.AsyncClient) -> None:
    r = await client.get(f"/verify/qr.svg?{urlencode(CODES)}")
    assert r.status_code == 200 and r.headers["content-type"] == "image/svg+xml"
    assert r.content == qr_svg(f"{DEFAULT_PUBLIC_URL}/verify?{urlencode(CODES)}")
    assert r.content != qr_svg(
        f"{DEFAULT_PUBLIC_URL}/verify?{urlencode({**CODES, 'check': 'zzzzzz'})}"
    )
    for bad in ({**CODES, "check": "a1B2c"}, {**CODES, "code": "4601012x"}, {}):
        assert (await client.get(f"/verify/qr.svg?{urlencode(bad)}")).status_code == 404


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
async def test_qr_code_links_to_hub_public_url_never_the_host_header(hub: Hub) -> None:
    public = Settings.from_env({"HUB_PUBLIC_URL": "https://hub.example.org/"}).public_url
    assert public == "https://hub.example.org"
    hub.settings = replace(hub.settings, public_url=public)
    transport = httpx.ASGITransport(app=create_app(hub=hub))
    async with httpx.AsyncClient(transport=transport, base_url="http://hub.test") as c:
        r = await c.get(f"/verify/qr.svg?{urlencode(CODES)}", headers={"Host": "evil.example"})
    assert r.content == qr_svg(f"https://hub.example.org/verify?{urlencode(CODES)}")
    for bad in ("ftp://x", "https://hub.example.org/?next=evil", "hub.example.org"):
        with pytest.raises(ValueError, match="HUB_PUBLIC_URL"):
            Settings.from_env({"HUB_PUBLIC_URL": bad})
