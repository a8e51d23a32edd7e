"""The ledger's integrating transactions on a SQLite file, run in a child process.

In the serving process a writer thread shares one GIL with the event loop: each of the
transaction's SQLite calls lets go of it and must win it back from a loop busy parsing and
validating the next requests, so under load the transaction spent more time waiting for
the GIL than working, and every caller waits for the transaction. A child process has its
own interpreter: the transaction runs at its own pace while the loop keeps its GIL.

The child opens its own write connection and builds the work it runs for each group from
a factory named by "module:function" (the ledger's is hub.services.integrating_work, which
loads the log's signing key there): this module knows the database, not the ledger. Over
a socket pair go the submissions, pickled into an anonymous memory file whose descriptor
rides along (a group is ~1 MB: written to the socket it would have to go out in pieces,
each waiting behind whole requests on a busy loop), and back, what the work answered.
The loop does the pickling and the socket I/O itself: helper threads would each have to
win the GIL back from it, the cost this module exists to avoid.

Groups are pipelined (`depth`): the next one is handed over while the child still works on
the one before, so the child never waits for the loop to notice an answer. The child takes
them in order, each its own transaction, so each sees the one before it committed.
"""

import asyncio
import importlib
import os
import pickle
import signal
import socket
import sqlite3
import subprocess
import sys
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

from hub.errors import IntegratorGone
from hub.store.sql import Sql
from hub.store.sqlite_writer import connect_writer, run_transaction

# What the child runs for each group, inside its transaction: (sql, submissions) -> answer.
GroupWork = Callable[[Sql, Sequence[Any]], Awaitable[Any]]

_HEADER = 8  # each message: its length as 8 big-endian bytes, then a pickle


# Linux: an anonymous memory file, and descriptors passed over a Unix socket.
AVAILABLE = hasattr(os, "memfd_create") and hasattr(socket, "send_fds")


def _receive(sock: socket.socket, size: int) -> bytes | None:
    data = bytearray()
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            return None
        data += chunk
    return bytes(data)


def _receive_group(sock: socket.socket) -> bytes | None:
    """The next group's pickle, read from the memory file that came with its header."""
    header, fds, _, _ = socket.recv_fds(sock, _HEADER, 1)
    if not header:
        return None
    if len(fds) != 1:
        raise RuntimeError("a group arrived without its memory file")
    (fd,) = fds
    try:
        rest = _receive(sock, _HEADER - len(header)) if len(header) < _HEADER else b""
        if rest is None:
            return None
        size = int.from_bytes(header + rest, "big")
        data = bytearray()
        while len(data) < size:
            chunk = os.pread(fd, size - len(data), len(data))
            if not chunk:
                raise RuntimeError("a group's memory file is shorter than its header says")
            data += chunk
        return bytes(data)
    finally:
        os.close(fd)


def _answer(connection: sqlite3.Connection, work: GroupWork, payload: bytes) -> bytes:
    """Run `work` over one group in a transaction; the pickled (True, answer) or
    (False, exception)."""
    try:
        # A submission class this process cannot import (one defined in a script run as
        # __main__, say) fails its group, not the process.
        submissions: Sequence[Any] = pickle.loads(payload)

        async def transaction(sql: Sql) -> Any:
            return await work(sql, submissions)

        answer = run_transaction(connection, transaction)
        return pickle.dumps((True, answer), pickle.HIGHEST_PROTOCOL)
    except Exception as exc:
        try:
            return pickle.dumps((False, exc), pickle.HIGHEST_PROTOCOL)
        except Exception:  # an exception that does not pickle: its type and text
            failure = RuntimeError(f"{type(exc).__name__}: {exc}")
            return pickle.dumps((False, failure), pickle.HIGHEST_PROTOCOL)


def _work(factory: str, args: Sequence[str]) -> GroupWork:
    module, _, name = factory.partition(":")
    built: GroupWork = getattr(importlib.import_module(module), name)(*args)
    return built


def _serve(sock: socket.socket, path: str, factory: str, args: Sequence[str]) -> None:
    """The child: integrate each group that arrives until the parent closes its end."""
    # Ctrl-C reaches the whole process group: the parent shuts down and closes its end,
    # and the group in hand is finished first rather than broken off.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    connection = connect_writer(Path(path))
    try:
        work = _work(factory, args)
        with sock:
            while (payload := _receive_group(sock)) is not None:
                answer = _answer(connection, work, payload)
                sock.sendall(len(answer).to_bytes(_HEADER, "big") + answer)
    except ConnectionError:
        pass  # the parent is gone: what was committed stays, its callers will resubmit
    finally:
        connection.close()


async def _receive_async(loop: asyncio.AbstractEventLoop, sock: socket.socket, size: int) -> bytes:
    data = bytearray(size)
    view, got = memoryview(data), 0
    while got < size:
        n = await loop.sock_recv_into(sock, view[got:])
        if n == 0:
            raise ConnectionResetError("the integrator process closed its socket")
        got += n
    return bytes(data)


def _send_group(sock: socket.socket, data: bytes) -> None:
    fd = os.memfd_create("hub-group", os.MFD_CLOEXEC)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        # 8 bytes on a socket that carries only headers this way: it never fills up.
        socket.send_fds(sock, [len(data).to_bytes(_HEADER, "big")], [fd])
    finally:
        os.close(fd)


class SqliteIntegrator:
    """Runs each group's work in a transaction in a child process (started lazily), in
    the order the groups were handed over, up to `depth` of them handed over at once.

    `factory` ("module:function") is called in the child with `args`, once; what it
    returns is the GroupWork run for every group.
    """

    depth = 2

    def __init__(self, path: Path, factory: str, *args: str) -> None:
        self._args = (str(path), factory, *args)
        self._process: subprocess.Popen[bytes] | None = None
        self._socket: socket.socket | None = None
        self._starting = asyncio.Lock()
        # Answers come back in the order groups were sent; asyncio.Lock wakes in FIFO order.
        self._answers = asyncio.Lock()

    @property
    def pid(self) -> int | None:
        """The child's process id; None before the first group and after `close`."""
        return self._process.pid if self._process is not None else None

    async def integrate(self, submissions: Sequence[Any]) -> Any:
        """The work's answer for ``submissions``, or its exception; IntegratorGone when
        the child ended with the group in hand."""
        loop = asyncio.get_running_loop()
        async with self._starting:
            sock = await self._connected()
        data = pickle.dumps(list(submissions), pickle.HIGHEST_PROTOCOL)
        try:
            _send_group(sock, data)
            # No await between sending and queueing for the answer: the order is kept.
            async with self._answers:
                if sock.fileno() < 0:
                    # A group before this one found the child gone and closed its socket:
                    # this group was in the same child's hands. (uvloop would refuse the
                    # closed socket with ValueError, not the OSError handled below.)
                    raise ConnectionResetError("the integrator process ended with this group")
                header = await _receive_async(loop, sock, _HEADER)
                reply = await _receive_async(loop, sock, int.from_bytes(header, "big"))
        except OSError as exc:
            await self._stop(sock)
            raise IntegratorGone(
                "the ledger's integrating process ended before answering: submit again"
                " (what it had anchored answers DUPLICATE)"
            ) from exc
        except asyncio.CancelledError:
            # An answer left unread would be taken as the next group's: this child is done.
            self._abandon(sock)
            raise
        ok, value = pickle.loads(reply)
        if not ok:
            raise value
        return value

    async def _connected(self) -> socket.socket:
        if self._process is not None and self._process.poll() is not None:
            await self._stop()  # it ended between groups: nothing was in its hands
        if self._socket is not None:
            return self._socket
        ours, theirs = socket.socketpair()
        # A fresh interpreter, not a fork: this process has threads that may be inside
        # SQLite, and a fork would copy the locks they hold. It finds what this one finds.
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(p or os.getcwd() for p in sys.path)}
        try:
            process = subprocess.Popen(
                [sys.executable, "-m", __name__, str(theirs.fileno()), *self._args],
                pass_fds=[theirs.fileno()],
                stdin=subprocess.DEVNULL,
                env=env,
            )
        finally:
            theirs.close()
        ours.setblocking(False)
        self._process, self._socket = process, ours
        return ours

    def _abandon(self, sock: socket.socket) -> None:
        if sock is self._socket:
            self._socket = self._process = None  # it exits once its group is done
        sock.close()

    async def _stop(self, failed: socket.socket | None = None) -> None:
        if failed is not None and failed is not self._socket:
            return  # another caller already stopped that child
        sock, self._socket = self._socket, None
        process, self._process = self._process, None
        if sock is not None:
            sock.close()  # the child sees the end of its input and exits
        if process is not None:
            loop = asyncio.get_running_loop()
            try:
                await loop.run_in_executor(None, process.wait, 10)
            except subprocess.TimeoutExpired:
                process.kill()
                await loop.run_in_executor(None, process.wait)

    async def close(self) -> None:
        async with self._starting, self._answers:
            await self._stop()


if __name__ == "__main__":
    _fd, _path, _factory, *_args = sys.argv[1:]
    _serve(socket.socket(fileno=int(_fd)), _path, _factory, _args)
