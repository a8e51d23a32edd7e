"""`hub witness serve`: the C2SP tlog-witness v1.0.0 add-checkpoint API over HTTP.

    POST /add-checkpoint    old <size>\\n, consistency proof lines, \\n, the checkpoint

Answers, in the order the checks run (DESIGN.md, "Witnesses"): 400 a malformed body or
an old size above the checkpoint's; 404 an origin it does not follow; 403 no valid
signature by the log's key; 409 (``text/x.tlog.size``, its own size) an old size that is
not its own, or a checkpoint of its own size with another root; 422 a bad proof, a
proof from size 0, or a size-0 checkpoint whose root is not the empty tree's; 200 with
its cosignature line. ``GET /<sha256(origin) hex>/checkpoint`` serves the latest
checkpoint it cosigned for a log, with the log's and its own signatures.
"""

import asyncio
import hashlib
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from hub.errors import HubError
from hub.ledger.checkpoint import Checkpoint, parse_checkpoint, parse_decimal
from hub.ledger.cosignature import cosign
from hub.ledger.note import NoteError, Signer, Verifier, b64decode, open_note, split_note
from hub.ledger.tree import EMPTY_ROOT, HASH_SIZE, ProofError, verify_consistency
from hub.witness.state import Cosigned, WitnessState

log = logging.getLogger("hub.witness")

MAX_BODY = 64 * 1024
MAX_PROOF_LINES = 63
SIZE_TYPE = "text/x.tlog.size"


class CheckpointRefused(HubError):
    """The witness will not cosign; ``status`` is the tlog-witness HTTP answer and
    ``size`` the size it has cosigned when that is the reason (409)."""

    code = "CHECKPOINT_REFUSED"

    def __init__(self, status: int, message: str, size: int | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.size = size


@dataclass(frozen=True)
class AddCheckpoint:
    old_size: int
    proof: tuple[bytes, ...]
    note: str


def parse_request(body: bytes) -> AddCheckpoint:
    """The add-checkpoint request body; CheckpointRefused(400) when it is not one."""
    try:
        text = body.decode("utf-8")
        head, sep, note = text.partition("\n\n")
        if not sep:
            raise NoteError("no empty line before the checkpoint")
        lines = head.split("\n")
        if not lines[0].startswith("old "):
            raise NoteError("the first line must be 'old <size>'")
        old = parse_decimal(lines[0][4:], "old size")
        if len(lines) - 1 > MAX_PROOF_LINES:
            raise NoteError(f"more than {MAX_PROOF_LINES} consistency proof lines")
        proof = []
        for n, line in enumerate(lines[1:]):
            h = b64decode(line, f"proof line {n + 1}")
            if len(h) != HASH_SIZE:
                raise NoteError(f"proof line {n + 1} is not a 32-byte hash")
            proof.append(h)
        split_note(note)  # the form of the note, before anything is looked up
    except (UnicodeDecodeError, NoteError) as exc:
        raise CheckpointRefused(400, f"malformed request: {exc}") from None
    return AddCheckpoint(old, tuple(proof), note)


class Witness:
    """The checks and the state of one witness, for any number of logs."""

    def __init__(self, signer: Signer, logs: Sequence[Verifier], state: WitnessState) -> None:
        self.signer = signer
        self.state = state
        self.logs: dict[str, list[Verifier]] = {}
        for key in logs:
            self.logs.setdefault(key.name, []).append(key)

    def _verify(self, req: AddCheckpoint) -> tuple[str, Checkpoint]:
        text = req.note[: req.note.rfind("\n\n") + 1]
        origin = text.split("\n", 1)[0]
        keys = self.logs.get(origin)
        if keys is None:
            raise CheckpointRefused(404, f"unknown log origin {origin[:80]!r}")
        try:
            open_note(req.note, keys)
        except NoteError as exc:
            raise CheckpointRefused(403, f"checkpoint not signed by the log's key: {exc}") from None
        try:
            cp = parse_checkpoint(text)
        except NoteError as exc:
            raise CheckpointRefused(400, str(exc)) from None
        return text, cp

    def add_checkpoint(self, req: AddCheckpoint, now: int | None = None) -> str:
        """The cosignature line for ``req``, once the new state is durable.

        Raises CheckpointRefused when it may not be cosigned."""
        text, cp = self._verify(req)
        if req.old_size > cp.size:
            raise CheckpointRefused(
                400, f"old size {req.old_size} exceeds checkpoint size {cp.size}"
            )

        def decide(stored: Cosigned | None) -> tuple[Cosigned, str]:
            mine = stored.size if stored else 0
            if req.old_size != mine:
                raise CheckpointRefused(409, f"my size is {mine}", mine)
            if cp.size == 0 and cp.root != EMPTY_ROOT:
                raise CheckpointRefused(422, "a tree of size 0 has the empty tree's root")
            if req.old_size == 0:
                if req.proof:
                    raise CheckpointRefused(422, "no consistency proof is needed from size 0")
            elif stored is not None and cp.size == stored.size:
                if req.proof:
                    raise CheckpointRefused(422, "no consistency proof is needed for equal sizes")
                if cp.root != stored.root:
                    raise CheckpointRefused(409, f"a different tree of my size {mine}", mine)
            else:
                assert stored is not None
                try:
                    verify_consistency(stored.size, cp.size, req.proof, stored.root, cp.root)
                except ProofError as exc:
                    raise CheckpointRefused(422, f"consistency proof: {exc}") from None
            line = cosign(self.signer, text, now or int(time.time()))
            return Cosigned(cp.size, cp.root, req.note + line), line

        return self.state.advance(cp.origin, decide)


def create_witness_app(witness: Witness) -> Starlette:
    async def add_checkpoint(request: Request) -> Response:
        body = await request.body()
        try:
            if len(body) > MAX_BODY:
                raise CheckpointRefused(400, f"request body over {MAX_BODY} bytes")
            req = parse_request(body)
            # The transaction waits on the disk: keep the event loop free meanwhile.
            line = await asyncio.to_thread(witness.add_checkpoint, req)
        except CheckpointRefused as refused:
            log.info("refused", extra={"status": refused.status, "reason": str(refused)})
            if refused.size is not None:
                return PlainTextResponse(
                    f"{refused.size}\n", status_code=refused.status, media_type=SIZE_TYPE
                )
            return PlainTextResponse(f"{refused}\n", status_code=refused.status)
        log.info("cosigned", extra={"origin": req.note.split("\n", 1)[0]})
        return PlainTextResponse(line)

    origins: Mapping[str, str] = {
        hashlib.sha256(origin.encode()).hexdigest(): origin for origin in witness.logs
    }

    async def latest(request: Request) -> Response:
        origin = origins.get(request.path_params["origin_hash"])
        found = witness.state.latest(origin) if origin else None
        if found is None:
            return PlainTextResponse("not found\n", status_code=404)
        return PlainTextResponse(found.note, headers={"Cache-Control": "no-cache"})

    async def healthz(request: Request) -> Response:
        return PlainTextResponse("ok\n")

    return Starlette(
        routes=[
            Route("/add-checkpoint", add_checkpoint, methods=["POST"]),
            Route("/healthz", healthz),
            Route("/{origin_hash}/checkpoint", latest),
        ]
    )
