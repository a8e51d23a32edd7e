"""``hub adapter ...``: run the hospital-side adapters and look into their outbox.

    hub adapter mllp --port 2575 --hub URL --token-file F [--key PEM]   HL7 v2 listener
    hub adapter hl7 FILE ...                                            HL7 file or batch
    hub adapter fhir FILE|DIR ... | hub adapter fhir --serve --port 8080 FHIR Invoice/Bundle
    hub adapter csv FILE ...                                            CSV export
    hub adapter json FILE|DIR --type T                                  any registered type
    hub adapter status [--dead] [--json]                                outbox counts
    hub adapter requeue (SEQ ... | --all)                               retry rejected ones

Everything goes through the outbox (``--outbox``, default var/adapter-outbox.db): it is
stored first, then delivered. Without ``--hub`` documents are only queued; a later run
with ``--hub`` (or a running listener on the same outbox) delivers them. File commands
wait up to ``--wait`` seconds for delivery and exit non-zero, with a one-line reason on
stderr, if anything of the run was refused on arrival, rejected by the hub, or is still
queued. Logs are JSON lines on stderr (common/jsonlog.py, the hub's format): warnings, and with
``-v`` what happens.

File and request intake lives in ``adapters/intake.py``; this module parses arguments,
opens the outbox and delivery, and prints. ``register`` adds these under the ``hub
adapter`` command (the hub finds it by its entry point, ``hub.adapters``); each sets
``handler`` to a coroutine function taking the parsed arguments and returning the exit
code.
``python -m adapters.cli`` runs them standalone.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from adapters.delivery import Delivery
from adapters.delivery_process import DeliveryProcess, DeliverySettings
from adapters.errors import AdapterError
from adapters.hl7v2 import DEFAULT_OFFSET
from adapters.hub_client import (
    CREDENTIALS_IN_URL,
    MAX_BATCH,
    has_credentials,
)
from adapters.intake import (
    FileTally,
    enqueue_invoices,
    expand_files,
    queue_csv_file,
    queue_fhir_file,
    queue_hl7_file,
    queue_json_file,
    refuse_fhir,
)
from adapters.json_documents import TypeDefinition, fetch_definition
from adapters.logs import json_logs
from adapters.mllp import DEFAULT_MAX_MESSAGE_BYTES, Hl7Intake, MllpListener
from adapters.outbox import INTAKE_BUSY_TIMEOUT, Outbox
from adapters.serving import (
    fhir_credential,
    serve_metrics_if_asked,
    stop_signals,
    until_signalled,
)
from adapters.signing import DocumentSigner
from common.runner import run
from hub.documents.invoice import INVOICE_TYPE

__all__ = ["DEFAULT_OUTBOX", "enqueue_invoices", "main", "refuse_fhir", "register"]

DEFAULT_OUTBOX = "var/adapter-outbox.db"

METRICS_ARGS = ("--metrics-port",)
METRICS_OPTIONS: dict[str, Any] = {
    "type": int,
    "help": "serve Prometheus /metrics (queue depth, delivery lag, dead letters, ACK"
    " latency) on this port of --host; 0: any free port",
}

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
    mllp.add_argument(*METRICS_ARGS, **METRICS_OPTIONS)
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
    fhir.add_argument(
        "--credential-file",
        help="file holding the secret senders give as Authorization: Bearer (required"
        " unless --host is loopback)",
    )
    fhir.add_argument("--fhir-version", choices=["R4B", "R5"], help="default: R5")
    fhir.add_argument("--wait", type=float, default=30.0)
    fhir.add_argument(*METRICS_ARGS, **METRICS_OPTIONS)
    fhir.set_defaults(handler=cmd_fhir)

    csv = subparsers.add_parser(
        "csv", parents=[common, files], help="queue invoices from a HIS CSV export"
    )
    csv.set_defaults(handler=cmd_csv)

    documents = subparsers.add_parser(
        "json",
        parents=[common, files],
        help="queue documents of a registered type: JSON files, NDJSON lines, or a DIR",
    )
    documents.add_argument("--type", required=True, help="the document type's name")
    documents.add_argument(
        "--type-version", type=int, help="the definition version (default: the newest)"
    )
    documents.add_argument(
        "--definition", help="the type's definition file (default: read from --hub /types)"
    )
    documents.set_defaults(handler=cmd_json)

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
    with _failing_cleanly(), _session(args) as (outbox, delivery), stop_signals() as stop:
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
            serve_metrics_if_asked(args)
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
        tallies = [await queue_hl7_file(intake, name, _read(name)) for name in args.files]
        _, refused = _report(tallies)
        delivered = await _deliver(delivery, args.wait)
        return _exit_code(refused, delivered and all(t.envelope_ok for t in tallies))
    return 1


async def cmd_fhir(args: argparse.Namespace) -> int:
    """Queue FHIR Invoices or Bundles from files and directories, or serve FHIR."""
    if not args.serve and not args.files:
        print("hub adapter fhir: give FILE(s) or --serve", file=sys.stderr)
        return 2
    with _failing_cleanly(), _session(args) as (outbox, delivery):
        if args.serve:
            return await _serve_fhir(args, outbox, delivery)
        tallies = []
        for name in expand_files(args.files, ["*.json"]):
            tally = await queue_fhir_file(outbox, name, _read(name), args.fhir_version)
            tallies.append(tally)
            _print_problems(tally)
            print(f"{name}: accepted {tally.accepted}, refused {tally.refused}")
        _, refused = _report(tallies, problems=False)
        delivered = await _deliver(delivery, args.wait)
        return _exit_code(refused, delivered)
    return 1


async def cmd_csv(args: argparse.Namespace) -> int:
    """Queue the invoices of HIS CSV exports; a bill with a bad row is refused whole."""
    with _failing_cleanly(), _session(args) as (outbox, delivery):
        tallies = [await queue_csv_file(outbox, name, _read(name)) for name in args.files]
        _, refused = _report(tallies)
        delivered = await _deliver(delivery, args.wait)
        return _exit_code(refused, delivered)
    return 1


async def cmd_json(args: argparse.Namespace) -> int:
    """Queue documents of a registered type from JSON files or NDJSON lines."""
    with _failing_cleanly(), _session(args) as (outbox, delivery):
        definition = await _definition(args)
        tallies = [
            await queue_json_file(outbox, name, _read(name), definition)
            for name in expand_files(args.files, ["*.json", "*.ndjson", "*.jsonl"])
        ]
        _, refused = _report(tallies)
        delivered = await _deliver(delivery, args.wait)
        return _exit_code(refused, delivered)
    return 1


async def _definition(args: argparse.Namespace) -> TypeDefinition:
    """The type's definition: ``--definition FILE``, else the hub's ``/types``; the
    medical invoice's id rule is known without either."""
    if args.definition:
        try:
            return TypeDefinition.from_json(json.loads(_read(args.definition)))
        except ValueError as error:
            raise AdapterError(f"--definition: not JSON ({error})") from None
    if args.hub:
        return await fetch_definition(args.hub, args.type, args.type_version)
    if args.type == INVOICE_TYPE:
        return TypeDefinition(INVOICE_TYPE, 1, ("/billCode", "/billNumber"), "/issuedAt")
    raise AdapterError(f"type {args.type}: give --hub (its /types) or --definition FILE")


def _report(tallies: Sequence[FileTally], *, problems: bool = True) -> tuple[int, int]:
    """Print each refusal and the total; (accepted, refused)."""
    if problems:
        for tally in tallies:
            _print_problems(tally)
    accepted = sum(tally.accepted for tally in tallies)
    refused = sum(tally.refused for tally in tallies)
    print(f"accepted {accepted}, refused {refused}")
    return accepted, refused


def _print_problems(tally: FileTally) -> None:
    for problem in tally.problems:
        print(problem, file=sys.stderr)


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

    async def lookup(receipt: str) -> dict[str, Any] | None:
        return await asyncio.to_thread(outbox.state_of, int(receipt.lstrip("#")))

    app = create_fhir_app(
        enqueue,
        refuse=lambda errors: refuse_fhir(outbox, errors),
        lookup=lookup,
        credential=fhir_credential(args),
    )
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
    serve_metrics_if_asked(args)
    print(f"serving FHIR on http://{args.host}:{args.port}/fhir, outbox {args.outbox}", flush=True)
    try:
        await until_signalled(delivery, also=serving)
    finally:
        server.should_exit = True
        await serving
        if delivery is not None:
            await delivery.client.aclose()
    return 0


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
        DocumentSigner.from_file(args.key)  # an unreadable key is told before anything starts
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
