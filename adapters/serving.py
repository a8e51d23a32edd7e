"""What the long-running adapter commands share: stopping on SIGINT/SIGTERM, the
Prometheus /metrics server, and the FHIR endpoint's credential rule (required unless it
listens on loopback only)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ipaddress
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from adapters.delivery import Delivery
from adapters.errors import AdapterError

__all__ = [
    "fhir_credential",
    "loopback",
    "serve_metrics_if_asked",
    "stop_signals",
    "until_signalled",
]


async def until_signalled(delivery: Delivery | None, also: asyncio.Task[Any] | None = None) -> None:
    """Run delivery until SIGINT/SIGTERM (or ``also`` ends), then stop it cleanly."""
    with stop_signals() as stop:
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


def fhir_credential(args: argparse.Namespace) -> str | None:
    """The FHIR endpoint's bearer secret; required unless it listens on loopback only,
    since what it takes is delivered under the hospital's token."""
    if args.credential_file:
        secret = Path(args.credential_file).read_text(encoding="utf-8").strip()
        if len(secret) < 16:
            raise AdapterError("--credential-file: the secret must be at least 16 characters")
        return secret
    if not loopback(args.host):
        raise AdapterError(
            f"--host {args.host} is reachable from other machines: give --credential-file"
            " (the secret FHIR senders send as Authorization: Bearer)"
        )
    return None


def loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def serve_metrics_if_asked(args: argparse.Namespace) -> None:
    """Serve /metrics in a thread when asked (it ends with the process)."""
    if args.metrics_port is None:
        return
    from adapters.metrics import serve_metrics

    server, _ = serve_metrics(args.host, args.metrics_port, str(args.outbox))
    print(f"metrics on http://{args.host}:{server.server_port}/metrics", flush=True)


@contextlib.contextmanager
def stop_signals() -> Iterator[asyncio.Event]:
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
