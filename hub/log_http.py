"""The public, token-free read path of the log (C2SP tlog-tiles, checkpoints, key)."""

import re

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from hub.ledger.storage import (
    BUNDLE_SIZE,
    decode_bundle,
    encode_bundle,
    read_bundle,
    read_checkpoint,
    read_tile,
)
from hub.ledger.tiles import TILE_WIDTH
from hub.ledger.tree import HASH_SIZE
from hub.services import Hub

# ASCII digits only: \d would admit other scripts' digits, and int() reads them.
_SEGMENT = re.compile(r"x[0-9]{3}")
_LAST = re.compile(r"[0-9]{3}")
# No tree of fewer than 2**64 leaves has a tile above level 7 or more than 2**48 tiles at a
# level (tiles.tile_key packs the index in 48 bits: a larger one would alias another
# level's tile, and a huge one overflows the database's 64-bit integers).
_MAX_LEVEL = 7
_MAX_INDEX = (1 << 48) - 1
_IMMUTABLE = {"Cache-Control": "public, max-age=31536000, immutable"}
_NO_CACHE = {"Cache-Control": "no-cache"}


def parse_tile_index(path: str) -> tuple[int, int | None]:
    """`x001/x234/067[.p/W]` -> (1234067, W or None); ValueError when malformed."""
    parts = path.split("/")
    width = None
    if len(parts) >= 2 and parts[-2].endswith(".p"):
        if not parts[-1].isdigit() or parts[-1] != str(int(parts[-1])):
            raise ValueError("bad partial width")
        width = int(parts[-1])
        if not 0 < width < TILE_WIDTH:
            raise ValueError("partial width out of range")
        parts = [*parts[:-2], parts[-2][:-2]]
    if (
        not parts
        or not _LAST.fullmatch(parts[-1])
        or not all(_SEGMENT.fullmatch(p) for p in parts[:-1])
    ):
        raise ValueError("bad tile index")
    digits = "".join(p.lstrip("x") for p in parts)
    return int(digits), width


def _hub(request: Request) -> Hub:
    hub: Hub = request.app.state.hub
    return hub


async def checkpoint(request: Request) -> Response:
    head = await read_checkpoint(_hub(request).db)
    if head is None:
        return PlainTextResponse("no checkpoint yet\n", status_code=503)
    return PlainTextResponse(head.note, headers=_NO_CACHE)


async def key(request: Request) -> Response:
    return PlainTextResponse(_hub(request).verifier_key + "\n")


def _not_found() -> Response:
    return PlainTextResponse("not found\n", status_code=404)


async def tile(request: Request) -> Response:
    try:
        level = int(request.path_params["level"])
        index, width = parse_tile_index(request.path_params["index"])
    except ValueError:
        return _not_found()
    if level > _MAX_LEVEL or index > _MAX_INDEX:
        return _not_found()
    found = await read_tile(_hub(request).db, level, index)
    if found is None:
        return _not_found()
    stored_width, blob = found
    want = width or TILE_WIDTH
    if stored_width < want or (width is None and stored_width != TILE_WIDTH):
        return _not_found()
    headers = _IMMUTABLE if width is None else _NO_CACHE
    return Response(
        blob[: want * HASH_SIZE], media_type="application/octet-stream", headers=headers
    )


async def entries(request: Request) -> Response:
    try:
        index, width = parse_tile_index(request.path_params["index"])
    except ValueError:
        return _not_found()
    if index > _MAX_INDEX:
        return _not_found()
    found = await read_bundle(_hub(request).db, index)
    if found is None:
        return _not_found()
    stored_width, data = found
    want = width or BUNDLE_SIZE
    if stored_width < want or (width is None and stored_width != BUNDLE_SIZE):
        return _not_found()
    if want != stored_width:
        data = encode_bundle(decode_bundle(data)[:want])
    headers = _IMMUTABLE if width is None else _NO_CACHE
    return Response(data, media_type="application/octet-stream", headers=headers)


routes = [
    Route("/log/checkpoint", checkpoint),
    Route("/log/key", key),
    Route("/log/tile/entries/{index:path}", entries),
    Route("/log/tile/{level:int}/{index:path}", tile),
]
