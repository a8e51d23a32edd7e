"""Delivery in a process of its own, beside the MLLP listener.

The listener reads, checks and stores every message on one event loop and answers each
only after its commit, so every millisecond that loop spends elsewhere is a millisecond
every sender waits. Delivering on it too (reading batches, the HTTP exchange with the
hub, settling the results) took a fifth of it under MLLP load; in a child process,
with its own interpreter and GIL, it runs beside the listener instead (the end-to-end
MLLP rate went from ~1,700 to ~2,100 messages/s on the 2-vCPU VM where it was measured).

Parent to child, on the child's stdin: one JSON line of DeliverySettings (the token
too, so that it is in neither the command line nor the environment), then a byte
whenever new documents are queued. EOF, the parent stopping or gone, ends the child
after its round in progress. A child that dies is started again.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import sys
from dataclasses import asdict, dataclass

from adapters.delivery import Backoff, Delivery
from adapters.hub_client import HubClient, token_from_file
from adapters.logs import json_logs
from adapters.outbox import Outbox
from adapters.signing import DocumentSigner

__all__ = ["DeliveryProcess", "DeliverySettings"]

log = logging.getLogger("adapters.delivery")

# Between restarts of a child that keeps dying.
_FIRST_RESTART = 0.5
_LAST_RESTART = 30.0


@dataclass(frozen=True, slots=True)
class DeliverySettings:
    """What a Delivery is built from: the adapter's command-line options."""

    outbox: str
    hub: str
    token: str | None = None
    token_file: str | None = None
    key: str | None = None
    batch_size: int = 100
    backoff_cap: float = 60.0
    verbose: bool = False
    # Seconds between looks at the outbox when not woken (other processes may fill it).
    poll_interval: float = 1.0

    def delivery(self, outbox: Outbox) -> Delivery:
        token = token_from_file(self.token_file) if self.token_file else self.token
        if token is None:
            raise ValueError("a token or a token file is needed")
        return Delivery(
            outbox,
            HubClient(self.hub, token),
            signer=DocumentSigner.from_file(self.key) if self.key else None,
            batch_size=self.batch_size,
            backoff=Backoff(cap=self.backoff_cap),
            poll_interval=self.poll_interval,
        )


class DeliveryProcess:
    """Runs ``settings``' delivery in a child process, started again if it dies."""

    def __init__(self, settings: DeliverySettings) -> None:
        self.settings = settings
        self._process: asyncio.subprocess.Process | None = None
        self._supervising: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()
        self._waking = False

    @property
    def pid(self) -> int | None:
        """The running child's pid, if one runs."""
        process = self._process
        return process.pid if process is not None and process.returncode is None else None

    async def start(self) -> None:
        """Start the child (OSError if it cannot be); it is restarted should it die."""
        process = await self._spawn()
        self._supervising = asyncio.create_task(self._supervise(process))

    def wake(self) -> None:
        """New documents are queued: the child delivers now rather than at its next poll."""
        # Called for every message stored; one byte per turn of the loop wakes the child
        # as well as one per message, at a fraction of the system calls.
        if not self._waking:
            self._waking = True
            asyncio.get_running_loop().call_soon(self._send_wake)

    def _send_wake(self) -> None:
        self._waking = False
        process = self._process
        if process is None or process.stdin is None or process.stdin.is_closing():
            return  # a new child delivers what is queued as it starts
        # A byte still unsent wakes the child as well as two.
        if process.stdin.transport.get_write_buffer_size() == 0:
            with contextlib.suppress(ConnectionError):
                process.stdin.write(b"\n")

    async def stop(self, timeout: float = 30.0) -> None:
        """Let the child finish its round and exit (killed after ``timeout`` seconds)."""
        self._stopping.set()
        self._close_stdin()
        if self._supervising is None:
            return
        try:
            await asyncio.wait_for(asyncio.shield(self._supervising), timeout)
        except TimeoutError:
            process = self._process
            if process is not None and process.returncode is None:
                process.kill()
            await self._supervising

    def _close_stdin(self) -> None:
        process = self._process
        if process is not None and process.stdin is not None:
            process.stdin.close()

    async def _supervise(self, process: asyncio.subprocess.Process | None) -> None:
        loop = asyncio.get_running_loop()
        delay = _FIRST_RESTART
        while True:
            if process is not None:
                started = loop.time()
                code = await process.wait()
                if self._stopping.is_set():
                    return
                log.warning("the delivery process exited (code %s); starting it again", code)
                if loop.time() - started > _LAST_RESTART:
                    delay = _FIRST_RESTART  # it had been running well: no penalty
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), delay)
            if self._stopping.is_set():
                return
            delay = min(delay * 2, _LAST_RESTART)
            try:
                process = await self._spawn()
            except OSError as error:
                log.warning("could not start the delivery process: %s", error)
                process = None
            if self._stopping.is_set():
                self._close_stdin()  # stop() came while it was starting

    async def _spawn(self) -> asyncio.subprocess.Process:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "adapters.delivery_process",
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.DEVNULL,
            env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
        )
        assert process.stdin is not None
        process.stdin.write(json.dumps(asdict(self.settings)).encode() + b"\n")
        self._process = process
        return process


async def _deliver_until_eof(settings: DeliverySettings) -> None:
    outbox = Outbox(settings.outbox)
    delivery = settings.delivery(outbox)
    loop = asyncio.get_running_loop()

    def read_stdin() -> None:
        try:
            data = os.read(0, 65536)
        except BlockingIOError:
            return
        if data:
            delivery.wake()
        else:
            loop.remove_reader(0)
            delivery.stop()

    os.set_blocking(0, False)
    loop.add_reader(0, read_stdin)
    loop.add_signal_handler(signal.SIGTERM, delivery.stop)
    try:
        await delivery.run()
    finally:
        await delivery.client.aclose()
        outbox.close()


def _read_settings() -> DeliverySettings | None:
    line = b""
    while not line.endswith(b"\n"):
        chunk = os.read(0, 1)  # byte by byte: what follows the line is wake-ups
        if not chunk:
            return None
        line += chunk
    return DeliverySettings(**json.loads(line))


def main() -> int:
    # Ctrl-C reaches the whole process group; the listener decides when this one ends.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    settings = _read_settings()
    if settings is None:
        return 0
    with json_logs(settings.verbose):
        asyncio.run(_deliver_until_eof(settings))
    return 0


if __name__ == "__main__":
    sys.exit(main())
