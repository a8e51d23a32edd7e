"""The public, token-free read path of the log (C2SP tlog-tiles, checkpoints, key, policy).

Tiles and entry bundles are addressed by their canonical tlog-tiles path only (see
`hub.ledger.layout`); anything else is 404. Both are immutable once served, partial ones
included: a partial tile names its width, and the first W hashes of a tile never change.
"""

import gzip

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from hub.ledger.layout import (
    BUNDLE_SIZE,
    TILE_WIDTH,
    TilePath,
    decode_bundle,
    encode_bundle,
    parse_tile_path,
)
from hub.ledger.storage import read_bundle, read_checkpoint, read_tile
from hub.ledger.tree import HASH_SIZE
from hub.services import Hub
from hub.witness.cosignatures import newest_witnessed

_IMMUTABLE = {"Cache-Control": "public, max-age=31536000, immutable"}
_NO_CACHE = {"Cache-Control": "no-cache"}
# Until witnesses have cosigned a checkpoint, ask clients back soon.
RETRY_AFTER_SECONDS = 2


def _hub(request: Request) -> Hub:
    hub: Hub = request.app.state.hub
    return hub


async def checkpoint(request: Request) -> Response:
    hub = _hub(request)
    policy = hub.policy
    head = await (read_checkpoint(hub.db) if policy is None else newest_witnessed(hub.db, policy))
    if head is None:
        message = "no checkpoint yet\n" if policy is None else "no witnessed checkpoint yet\n"
        return PlainTextResponse(
            message, status_code=503, headers={"Retry-After": str(RETRY_AFTER_SECONDS)}
        )
    return PlainTextResponse(head.note, headers=_NO_CACHE)


async def key(request: Request) -> Response:
    return PlainTextResponse(_hub(request).verifier_key + "\n")


async def policy(request: Request) -> Response:
    """The witness policy checkpoints are held to; 204 when the log has none (not an error:
    browsers log a 404 as one)."""
    found = _hub(request).policy
    if found is None:
        return Response(status_code=204, headers=_NO_CACHE)
    return PlainTextResponse(found.text, headers=_NO_CACHE)


def _not_found() -> Response:
    return PlainTextResponse("not found\n", status_code=404)


def accepts_gzip(header: str) -> bool:
    """Whether an Accept-Encoding header admits gzip (RFC 9110 12.5.3: q=0 refuses)."""
    for item in header.split(","):
        coding, *params = (p.strip() for p in item.split(";"))
        if coding.lower() not in ("gzip", "x-gzip", "*"):
            continue
        for param in params:
            name, _, value = param.partition("=")
            if name.strip().lower() == "q":
                try:
                    return float(value) > 0
                except ValueError:
                    return False
        return True
    return False


async def tile(request: Request) -> Response:
    try:
        path = parse_tile_path(request.path_params["path"])
    except ValueError:
        return _not_found()
    return await (_tile if path.level is not None else _entries)(request, path)


async def _tile(request: Request, path: TilePath) -> Response:
    assert path.level is not None
    found = await read_tile(_hub(request).db, path.level, path.index)
    if found is None:
        return _not_found()
    stored_width, blob = found
    want = path.width or TILE_WIDTH
    if stored_width < want or (path.width is None and stored_width != TILE_WIDTH):
        return _not_found()
    return Response(
        blob[: want * HASH_SIZE], media_type="application/octet-stream", headers=_IMMUTABLE
    )


async def _entries(request: Request, path: TilePath) -> Response:
    found = await read_bundle(_hub(request).db, path.index)
    if found is None:
        return _not_found()
    stored_width, data = found
    want = path.width or BUNDLE_SIZE
    if stored_width < want or (path.width is None and stored_width != BUNDLE_SIZE):
        return _not_found()
    if want != stored_width:
        data = encode_bundle(decode_bundle(data)[:want])
    headers = {**_IMMUTABLE, "Vary": "Accept-Encoding"}
    if accepts_gzip(request.headers.get("accept-encoding", "")):
        # mtime=0: the same bundle always compresses to the same bytes (caches, ETags).
        data = gzip.compress(data, compresslevel=6, mtime=0)
        headers["Content-Encoding"] = "gzip"
    return Response(data, media_type="application/octet-stream", headers=headers)


routes = [
    Route("/log/checkpoint", checkpoint),
    Route("/log/key", key),
    Route("/log/policy", policy),
    Route("/log/tile/{path:path}", tile),
]
