"""The public, token-free definitions of document types: GET /types, GET /types/<name>/<v>.

Anyone can fetch the definition a document was validated against and check its digest
against the `type` leaf (SHA-256 of exactly the bytes served here).
"""

import base64
import re

from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from hub.services import Hub

_VERSION = re.compile(r"[1-9][0-9]{0,6}")
_IMMUTABLE = {"Cache-Control": "public, max-age=31536000, immutable"}
_NO_CACHE = {"Cache-Control": "no-cache"}


async def list_types(request: Request) -> Response:
    hub: Hub = request.app.state.hub
    registry = await hub.types.refresh()
    listed = [
        {"name": t.name, "version": t.version, "digest": base64.b64encode(t.digest).decode()}
        for t in registry.all()
    ]
    return JSONResponse(listed, headers=_NO_CACHE)


async def get_type(request: Request) -> Response:
    hub: Hub = request.app.state.hub
    name, version = request.path_params["name"], request.path_params["version"]
    found = None
    if _VERSION.fullmatch(version):
        found = (await hub.types.refresh()).version(name, int(version))
    if found is None:
        return PlainTextResponse("no such document type version\n", status_code=404)
    # A built-in definition not yet registered here may still be replaced by a registration.
    headers = _IMMUTABLE if found.leaf_index is not None else _NO_CACHE
    return Response(found.canonical, media_type="application/json", headers=headers)


routes = [
    Route("/types", list_types, methods=["GET"]),
    Route("/types/{name}/{version}", get_type, methods=["GET"]),
]
