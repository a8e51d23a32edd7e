"""HTTP routes of the patient verify page: the page, its assets and a printable QR code.

Everything the page needs comes from this origin; the Content-Security-Policy says so,
and forbids inline script and style, so injected markup cannot run.
"""

import io
import re
from functools import cache
from importlib import resources
from urllib.parse import urlencode

import qrcode
import qrcode.image.svg
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'"
)
# The page URL carries the check code: it must not leak through Referer or a shared cache.
PAGE_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
    "X-Frame-Options": "DENY",
}
ASSETS = {
    "verify.js": "text/javascript; charset=utf-8",
    "proof.js": "text/javascript; charset=utf-8",
    "i18n.js": "text/javascript; charset=utf-8",
    "witnesses.js": "text/javascript; charset=utf-8",
    "claims.js": "text/javascript; charset=utf-8",
    "fields.js": "text/javascript; charset=utf-8",
    "verify.css": "text/css; charset=utf-8",
    "icon.svg": "image/svg+xml",
}
_CODES = {
    "code": re.compile(r"[0-9]{8}"),
    "number": re.compile(r"[0-9]{10}"),
    "check": re.compile(r"[0-9A-Za-z]{6}"),
}


@cache
def _asset(name: str) -> bytes:
    return resources.files(__package__).joinpath(name).read_bytes()


def _page(mode: str) -> Response:
    html = _asset("verify.html").decode("utf-8").replace("{{mode}}", mode)
    return Response(html, media_type="text/html; charset=utf-8", headers=PAGE_HEADERS)


async def verify_page(request: Request) -> Response:
    return _page("verify")


async def print_page(request: Request) -> Response:
    return _page("print")


async def static(request: Request) -> Response:
    name = request.path_params["name"]
    if name not in ASSETS:
        return PlainTextResponse("not found\n", status_code=404)
    headers = {**PAGE_HEADERS, "Cache-Control": "no-cache"}
    return Response(_asset(name), media_type=ASSETS[name], headers=headers)


def qr_svg(url: str) -> bytes:
    """An SVG QR code (no Pillow needed) encoding ``url``."""
    image = qrcode.make(url, image_factory=qrcode.image.svg.SvgPathImage, border=2)
    out = io.BytesIO()
    image.save(out)
    return out.getvalue()


async def qr(request: Request) -> Response:
    codes = {k: request.query_params.get(k, "") for k in _CODES}
    if not all(pattern.fullmatch(codes[k]) for k, pattern in _CODES.items()):
        return PlainTextResponse("not found\n", status_code=404)
    # The configured public origin, never the request's Host: a proxy that forwards any
    # host would otherwise print codes that send patients elsewhere.
    url = f"{request.app.state.hub.settings.public_url}/verify?{urlencode(codes)}"
    return Response(qr_svg(url), media_type="image/svg+xml", headers=PAGE_HEADERS)


routes = [
    Route("/verify", verify_page),
    Route("/verify/print", print_page),
    Route("/verify/qr.svg", qr),
    Route("/verify/static/{name}", static),
]
