"""``hub adapter ...``: run the hospital-side adapters and look into their outbox.

    hub adapter mllp --port 2575 --hub URL --token-file F [--key PEM]   HL7 v2 listener
    hub adapter hl7 FILE ...                                            HL7 file or batch
    hub adapter fhir FILE|DIR ... | hub adapter fhir --serve --port 8080 FHIR Invoice/Bundle
    hub adapter csv FILE ...                                            CSV export
    hub adapter status [--dead] [--json]                                outbox counts
    hub adapter requeue (SEQ ... | --all)                               retry rejected ones

Everything goes through the outbox (``--outbox``, default var/adapter-outbox.db): it is
stored first, then delivered. Without ``--hub`` documents are only queued; a later run
with ``--hub`` (or a running listener on the same outbox) delivers them. File commands
wait up to ``--wait`` seconds for delivery and exit non-zero, with a one-line reason on
stderr, if anything of the run was refused on arrival, rejected by the hub, or is still
queued. Logs are JSON lines on stderr (hub/logging.py's format): warnings, and with
``-v`` what happens.

``register`` adds these under the ``hub adapter`` command; each sets ``handler`` to a
coroutine function taking the parsed arguments and returning the exit code.
``python -m adapters.cli`` runs them standalone.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
import sys
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from adapters.delivery import Delivery
from adapters.delivery_process import DeliveryProcess, DeliverySettings
from adapters.errors import AdapterError, MappingError
from adapters.hl7v2 import DEFAULT_OFFSET, Hl7Error, decode_message, split_batch
from adapters.hub_client import (
    CREDENTIALS_IN_URL,
    MAX_BATCH,
    has_credentials,
)
from adapters.logs import json_logs
from adapters.mllp import DEFAULT_MAX_MESSAGE_BYTES, Hl7Intake, MllpListener
from adapters.outbox import INTAKE_BUSY_TIMEOUT, NewDocument, Outbox, document_key
from adapters.signing import Signer
from hub.documents.invoice import INVOICE_TYPE, invoice_document_id
from hub.runner import run

__all__ = ["DEFAULT_OUTBOX", "enqueue_invoices", "main", "register"]

DEFAULT_OUTBOX = "var/adapter-outbox.db"

Handler = Callable[[argparse.Namespace], Awaitable[int]]


def register(subparsers: argparse._SubParsersAction[Any]) -> None:
    """Add the adapter commands to ``subparsers`` (the one under ``hub adapter``)."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--hub", help="the hub's base URL, e.g. https://hub.example/")
    common.add_argument("--token", help="the hospital's JWT (prefer --token-file)")
    common.add_argument(
        "--token-file", help="file holding the JWT; reread on each request, so it can be fixed"
    )
    common.add_argument(
        "--outbox", default=DEFAULT_OUTBOX, help=f"outbox file (default {DEFAULT_OUTBOX})"
    )
    common.add_argument("--key", help="the hospital's Ed25519 signing key (PKCS#8 PEM)")
    common.add_argument(
        "--batch-size",
        type=int,
        default=100,
        help=f"documents per request to the hub, 1-{MAX_BATCH} (default 100)",
    )
    common.add_argument(
        "--backoff-cap", type=float, default=60.0, help="longest wait between retries, seconds"
    )
    common.add_argument("-v", "--verbose", action="store_true", help="log what happens")

    files = argparse.ArgumentParser(add_help=False)
    files.add_argument("files", nargs="+", metavar="FILE", help="file to read ('-': stdin)")
    files.add_argument(
        "--wait",
        type=float,
        default=30.0,
        help="seconds to wait for delivery when --hub is given (default 30)",
    )

    mllp = subparsers.add_parser("mllp", parents=[common], help="HL7 v2 DFT^P03 listener over MLLP")
    mllp.add_argument("--host", default="127.0.0.1", help="address to listen on")
    mllp.add_argument("--port", type=int, default=2575, help="port (default 2575; 0: any)")
    mllp.add_argument(
        "--max-message-bytes", type=int, default=DEFAULT_MAX_MESSAGE_BYTES, help="largest message"
    )
    mllp.add_argument(
        "--default-offset",
        default=DEFAULT_OFFSET,
        help=f"UTC offset of times that carry none (default {DEFAULT_OFFSET})",
    )
    mllp.set_defaults(handler=cmd_mllp)

    hl7 = subparsers.add_parser(
        "hl7", parents=[common, files], help="queue DFT^P03 messages from files (FHS/BHS batches)"
    )
    hl7.add_argument("--default-offset", default=DEFAULT_OFFSET)
    hl7.set_defaults(handler=cmd_hl7)

    fhir = subparsers.add_parser(
        "fhir", parents=[common], help="queue FHIR Invoices/Bundles from files, or serve FHIR"
    )
    fhir.add_argument(
        "files",
        nargs="*",
        metavar="FILE",
        help="Invoice or Bundle JSON; a directory: each *.json file in it, by name",
    )
    fhir.add_argument("--serve", action="store_true", help="serve POST /fhir and /fhir/Invoice")
    fhir.add_argument("--host", default="127.0.0.1")
    fhir.add_argument("--port", type=int, default=8080)
    fhir.add_argument("--fhir-version", choices=["R4B", "R5"], help="default: R5")
    fhir.add_argument("--wait", type=float, default=30.0)
    fhir.set_defaults(handler=cmd_fhir)

    csv = subparsers.add_parser(
        "csv", parents=[common, files], help="queue invoices from a HIS CSV export"
    )
    csv.set_defaults(handler=cmd_csv)

    status = subparsers.add_parser(
        "status", parents=[common], help="queued, delivered and dead-lettered counts"
    )
    status.add_argument("--dead", action="store_true", help="list the dead letters")
    status.add_argument("--limit", type=int, default=50, help="dead letters to list")
    status.add_argument("--json", action="store_true", help="print JSON")
    status.set_defaults(handler=cmd_status)

    requeue = subparsers.add_parser(
        "requeue",
        parents=[common],
        help="put documents the hub rejected back in the queue (after fixing the cause)",
    )
    requeue.add_argument("seqs", nargs="*", type=int, metavar="SEQ", help="outbox numbers")
    requeue.add_argument("--all", action="store_true", help="every rejected document")
    requeue.set_defaults(handler=cmd_requeue)


# ------------------------------------------------------------------------ commands


async def cmd_mllp(args: argparse.Namespace) -> int:
    """Listen for DFT^P03 over MLLP and deliver to the hub until SIGINT/SIGTERM."""
    # Signals are taken first: the child may deliver before the listener is up, and a
    # SIGTERM seen then must still stop both cleanly.
    with _failing_cleanly(), _session(args) as (outbox, delivery), _stop_signals() as stop:
        # Delivery runs in a child process, off the loop every sender waits on; the
        # Delivery built here only checked the options.
        deliverer = None
        if delivery is not None:
            await delivery.client.aclose()
            deliverer = DeliveryProcess(_delivery_settings(args))
        intake = Hl7Intake(
            outbox,
            on_enqueued=deliverer.wake if deliverer else None,
            default_offset=args.default_offset,
        )
        listener = MllpListener(intake, max_message_bytes=args.max_message_bytes)
        try:
            if deliverer is not None:
                await deliverer.start()
            await listener.start(args.host, args.port)
            print(
                f"listening on {args.host}:{listener.port} (MLLP), outbox {args.outbox}",
                flush=True,
            )
            if deliverer is None:
                print("no --hub given: messages are queued, not delivered", file=sys.stderr)
            await stop.wait()
        finally:
            await listener.stop()
            if deliverer is not None:
                await deliverer.stop()
        return 0
    return 1


async def cmd_hl7(args: argparse.Namespace) -> int:
    """Queue the DFT^P03 messages of files; report each refusal."""
    with _failing_cleanly(), _session(args) as (outbox, delivery):
        # No sender waits on a file: take the outbox's usual patience, not the listener's.
        intake = Hl7Intake(
            outbox, source="hl7-file", default_offset=args.default_offset, busy_timeout=None
        )
        accepted = refused = 0
        envelope_ok = True
        for name in args.files:
            try:
                text = decode_message(_read(name))
            except Hl7Error as error:
                print(f"{name}: {error}", file=sys.stderr)
                refused += 1
                continue
            batch = split_batch(text)
            for problem in batch.problems:
                envelope_ok = False
                print(f"{name}: {problem}", file=sys.stderr)
            for number, message in enumerate(batch.messages, start=1):
                outcome = await intake.accept(message)
                if outcome.code == "AA":
                    accepted += 1
                else:
                    refused += 1
                    label = outcome.control_id or f"message {number}"
                    print(f"{name}: {label}: {outcome.code} {outcome.error}", file=sys.stderr)
        print(f"accepted {accepted}, refused {refused}")
        delivered = await _deliver(delivery, args.wait)
        return _exit_code(refused, delivered and envelope_ok)
    return 1


async def cmd_fhir(args: argparse.Namespace) -> int:
    """Queue FHIR Invoices or Bundles from files and directories, or serve FHIR."""
    if not args.serve and not args.files:
        print("hub adapter fhir: give FILE(s) or --serve", file=sys.stderr)
        return 2
    with _failing_cleanly(), _session(args) as (outbox, delivery):
        if args.serve:
            return await _serve_fhir(args, outbox, delivery)
        accepted = refused = 0
        for name in _fhir_files(args.files):
            taken, refused_here = await _queue_fhir_file(outbox, name, args.fhir_version)
            print(f"{name}: accepted {taken}, refused {refused_here}")
            accepted += taken
            refused += refused_here
        print(f"accepted {accepted}, refused {refused}")
        delivered = await _deliver(delivery, args.wait)
        return _exit_code(refused, delivered)
    return 1


def _fhir_files(names: Sequence[str]) -> list[str]:
    """The files to read: each name, a directory standing for its *.json files sorted
    by name (a stable order, so a rerun queues in the same order)."""
    files: list[str] = []
    for name in names:
        path = Path(name)
        if name == "-" or not path.is_dir():
            files.append(name)
            continue
        found = sorted(child for child in path.glob("*.json") if child.is_file())
        if not found:
            raise AdapterError(f"{name}: a directory without *.json files")
        files.extend(str(child) for child in found)
    return files


async def _queue_fhir_file(outbox: Outbox, name: str, version: str | None) -> tuple[int, int]:
    """Queue the Invoices of one FHIR file; (accepted, refused). Each bad resource or
    entry is reported and dead-lettered; a transaction with one is refused whole."""
    from adapters.fhir import (
        FhirInvoice,
        fhir_resource_to_documents,
        is_transaction,
        load_fhir_json,
    )

    payload: object = None
    try:
        payload = load_fhir_json(_read(name))
        results = fhir_resource_to_documents(payload, version)
    except MappingError as unreadable:
        results = [(0, unreadable)]
    good = [result for _, result in results if isinstance(result, FhirInvoice)]
    failed = [(index, result) for index, result in results if isinstance(result, MappingError)]
    for index, problem in failed:
        await asyncio.to_thread(
            outbox.refuse,
            key=f"fhir:{name}#{index}",
            source="fhir-file",
            code=problem.code,
            reason=str(problem),
        )
        print(f"{name}: {problem}", file=sys.stderr)
    if failed and is_transaction(payload):
        # All or nothing, as the REST endpoint answers a transaction.
        print(f"{name}: a transaction with bad entries: nothing of it queued", file=sys.stderr)
        return 0, len(results)
    await enqueue_invoices(
        outbox,
        [document.body for document in good],
        source="fhir-file",
        supersedes=[document.supersedes for document in good],
    )
    return len(good), len(failed)


async def cmd_csv(args: argparse.Namespace) -> int:
    """Queue the invoices of HIS CSV exports; a bill with a bad row is refused whole."""
    from adapters.csv_export import read_csv_export

    with _failing_cleanly(), _session(args) as (outbox, delivery):
        accepted = refused = 0
        for name in args.files:
            result = read_csv_export(_read(name))
            for error in result.errors:
                refused += 1
                await asyncio.to_thread(
                    outbox.refuse,
                    key=f"csv:{name}:{error.line}",
                    source="csv-file",
                    code="row",
                    reason=str(error),
                )
                print(f"{name}: {error}", file=sys.stderr)
            await enqueue_invoices(
                outbox, result.invoices, source="csv-file", supersedes=result.supersedes
            )
            accepted += len(result.invoices)
        print(f"accepted {accepted}, refused {refused}")
        delivered = await _deliver(delivery, args.wait)
        return _exit_code(refused, delivered)
    return 1


async def cmd_status(args: argparse.Namespace) -> int:
    """Print the outbox counts, the last delivery attempt and (--dead) the dead letters."""
    with _failing_cleanly():
        if not Path(args.outbox).exists():
            print(f"hub adapter: no outbox at {args.outbox}", file=sys.stderr)
            return 1
        with Outbox(args.outbox) as outbox:
            counts = outbox.counts()
            state = outbox.delivery_state()
            letters = outbox.dead_letters(args.limit) if args.dead or args.json else []
        if args.json:
            print(
                json.dumps(
                    {
                        "outbox": str(args.outbox),
                        "queued": counts.queued,
                        "delivered": counts.delivered,
                        "deadLettered": counts.dead,
                        "rejected": counts.rejected,
                        "refused": counts.refused,
                        "delivery": asdict(state) if state else None,
                        "deadLetters": [asdict(letter) for letter in letters],
                    },
                    ensure_ascii=False,
                    indent=2,
                )
            )
            return 0
        print(f"outbox      {args.outbox}")
        print(f"queued      {counts.queued}")
        print(f"delivered   {counts.delivered}")
        print(
            f"dead        {counts.dead} (rejected by the hub {counts.rejected}, "
            f"refused on arrival {counts.refused})"
        )
        if state is not None:
            line = f"last round  {state.at} {state.kind}: {state.message}"
            if state.failures:
                line += f" ({state.failures} failures in a row)"
            print(line)
            if state.kind == "auth":
                print("            the hub refuses the token: fix it (--token-file is reread)")
            if state.last_success_at:
                print(f"last ok     {state.last_success_at}")
        for letter in letters:
            what = letter.document_id or letter.key or "(no key)"
            times = f" x{letter.times}" if letter.times > 1 else ""
            print(
                f"{letter.kind:8} #{letter.seq} {letter.at} {letter.source} {what} "
                f"{letter.code}{times}: {letter.reason}"
            )
        return 0
    return 1


async def cmd_requeue(args: argparse.Namespace) -> int:
    with _failing_cleanly():
        if not args.all and not args.seqs:
            print("hub adapter requeue: give SEQ numbers or --all", file=sys.stderr)
            return 2
        with Outbox(args.outbox) as outbox:
            count = outbox.requeue(None if args.all else args.seqs)
        print(f"requeued {count}")
        return 0
    return 1


# ------------------------------------------------------------------------ helpers


async def enqueue_invoices(
    outbox: Outbox,
    bodies: Sequence[dict[str, Any]],
    *,
    source: str,
    supersedes: Sequence[int | None] | None = None,
    busy_timeout: float | None = None,
) -> list[str]:
    """Queue valid invoice bodies (idempotent per body and supersedes); one outbox
    reference each. ``supersedes``: per body, the version it replaces (or None)."""
    versions = list(supersedes) if supersedes is not None else [None] * len(bodies)
    if len(versions) != len(bodies):
        raise ValueError("supersedes needs one entry per body")
    documents = [
        NewDocument(
            key=document_key(INVOICE_TYPE, invoice_document_id(body), body, version),
            type=INVOICE_TYPE,
            id=invoice_document_id(body),
            body=body,
            source=source,
            issued_at=body["issuedAt"],
            supersedes=version,
        )
        for body, version in zip(bodies, versions, strict=True)
    ]
    if not documents:
        return []
    results = await asyncio.to_thread(outbox.enqueue, documents, busy_timeout=busy_timeout)
    return [f"#{result.seq}" for result in results]


async def _serve_fhir(args: argparse.Namespace, outbox: Outbox, delivery: Delivery | None) -> int:
    import uvicorn

    from adapters.fhir import FhirInvoice
    from adapters.fhir_server import create_fhir_app

    async def enqueue(documents: list[FhirInvoice]) -> list[str]:
        receipts = await enqueue_invoices(
            outbox,
            [document.body for document in documents],
            source="fhir",
            supersedes=[document.supersedes for document in documents],
            busy_timeout=INTAKE_BUSY_TIMEOUT,
        )
        if delivery is not None:
            delivery.wake()
        return receipts

    app = create_fhir_app(enqueue, refuse=lambda errors: refuse_fhir(outbox, errors))
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            host=args.host,
            port=args.port,
            log_level="info" if args.verbose else "warning",
            # uvicorn's own handlers would log plain text: its records go to ours.
            log_config=None,
            lifespan="off",
        )
    )
    serving = asyncio.create_task(server.serve())
    print(f"serving FHIR on http://{args.host}:{args.port}/fhir, outbox {args.outbox}", flush=True)
    try:
        await _until_signalled(delivery, also=serving)
    finally:
        server.should_exit = True
        await serving
        if delivery is not None:
            await delivery.client.aclose()
    return 0


async def refuse_fhir(outbox: Outbox, errors: Sequence[MappingError]) -> None:
    """Dead-letter what the FHIR endpoint refused, as file mode does: the problem (an
    element path and a rule), never the resource. A request has no id to key it by, so
    each refusal is its own dead letter."""
    for error in errors:
        await asyncio.to_thread(
            outbox.refuse,
            key="",
            source="fhir",
            code=error.code,
            reason=str(error),
            busy_timeout=INTAKE_BUSY_TIMEOUT,
        )


async def _until_signalled(
    delivery: Delivery | None, also: asyncio.Task[Any] | None = None
) -> None:
    """Run delivery until SIGINT/SIGTERM (or ``also`` ends), then stop it cleanly."""
    with _stop_signals() as stop:
        delivering = asyncio.create_task(delivery.run()) if delivery else None
        waiting = asyncio.create_task(stop.wait())
        try:
            await asyncio.wait(
                [task for task in (waiting, also, delivering) if task is not None],
                return_when=asyncio.FIRST_COMPLETED,
            )
        finally:
            waiting.cancel()
            if delivery is not None and delivering is not None:
                delivery.stop()
                await delivering


@contextlib.contextmanager
def _stop_signals() -> Iterator[asyncio.Event]:
    """An event set by SIGINT or SIGTERM, in place of their default (dying at once)."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        yield stop
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)


async def _deliver(delivery: Delivery | None, wait: float) -> bool:
    """Deliver what is queued: True when it all reached the hub and none was rejected."""
    if delivery is None:
        return True
    try:
        done = await delivery.drain(wait)
    finally:
        await delivery.client.aclose()
    counts = await asyncio.to_thread(delivery.outbox.counts)
    print(f"delivered {counts.delivered}, queued {counts.queued}, dead {counts.dead}")
    if not done:
        state = await asyncio.to_thread(delivery.outbox.delivery_state)
        reason = f": {state.message}" if state and state.kind != "ok" else ""
        print(f"hub adapter: {counts.queued} still queued after {wait:g}s{reason}", file=sys.stderr)
    if delivery.rejected:
        print(
            f"hub adapter: the hub rejected {delivery.rejected} document(s)"
            " (see hub adapter status --dead)",
            file=sys.stderr,
        )
    return done and not delivery.rejected


def _exit_code(refused: int, delivered: bool) -> int:
    """0 only when nothing was refused on arrival and delivery went through."""
    if refused:
        print(
            f"hub adapter: {refused} refused on arrival (see hub adapter status --dead)",
            file=sys.stderr,
        )
    return 0 if refused == 0 and delivered else 1


@contextlib.contextmanager
def _session(args: argparse.Namespace) -> Iterator[tuple[Outbox, Delivery | None]]:
    with json_logs(args.verbose), _opened(args) as opened:
        yield opened


def _delivery_settings(args: argparse.Namespace) -> DeliverySettings:
    return DeliverySettings(
        outbox=str(args.outbox),
        hub=args.hub,
        token=args.token,
        token_file=args.token_file,
        key=args.key,
        batch_size=args.batch_size,
        backoff_cap=args.backoff_cap,
        verbose=args.verbose,
    )


@contextlib.contextmanager
def _opened(args: argparse.Namespace) -> Iterator[tuple[Outbox, Delivery | None]]:
    if args.key:
        Signer.from_file(args.key)  # an unreadable key is told before anything starts
    if args.hub and has_credentials(args.hub):
        raise AdapterError(f"--hub: {CREDENTIALS_IN_URL}")
    if args.hub and not (args.token or args.token_file):
        raise AdapterError("--hub needs --token or --token-file")
    if not 1 <= args.batch_size <= MAX_BATCH:
        raise AdapterError(f"--batch-size must be 1-{MAX_BATCH}")
    outbox = Outbox(args.outbox)
    try:
        delivery = _delivery_settings(args).delivery(outbox) if args.hub else None
        yield outbox, delivery
    finally:
        outbox.close()


@contextlib.contextmanager
def _failing_cleanly() -> Iterator[None]:
    """One line, no traceback, for what an operator can fix."""
    try:
        yield
    except AdapterError as error:
        print(f"hub adapter: error: {error}", file=sys.stderr)
    except OSError as error:
        print(f"hub adapter: error: {error}", file=sys.stderr)


def _read(name: str) -> bytes:
    if name == "-":
        return sys.stdin.buffer.read()
    return Path(name).read_bytes()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="hub adapter", description="hospital-side adapters")
    register(parser.add_subparsers(dest="adapter", required=True))
    args = parser.parse_args(argv)
    try:
        return run(args.handler(args))
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
