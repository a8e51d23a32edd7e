"""The sockets `hub serve` listens on: `--host ::` means every address of both families.

uvicorn hands its host to asyncio, which makes an IPv6 listener IPv6-only, so `::` alone
would leave IPv4 clients (and IPv4-only Kubernetes clusters) out. Here `::` is one
dual-stack socket instead, whatever the kernel's bindv6only default.
"""

import logging
import socket

import uvicorn

log = logging.getLogger("uvicorn.error")
ALL_ADDRESSES = "::"


def dual_stack_sockets(host: str, port: int, backlog: int) -> list[socket.socket] | None:
    """For ``host`` `::`, a socket taking IPv4 and IPv6; None for any other host (uvicorn
    binds that one itself), or where the system has no dual-stack IPv6."""
    if host != ALL_ADDRESSES:
        return None
    if not socket.has_dualstack_ipv6():
        log.warning("no dual-stack IPv6 here: listening on IPv4 (0.0.0.0) only")
        return [socket.create_server(("0.0.0.0", port), backlog=backlog)]
    return [
        socket.create_server(
            (ALL_ADDRESSES, port), family=socket.AF_INET6, dualstack_ipv6=True, backlog=backlog
        )
    ]


class Server(uvicorn.Server):
    """uvicorn's server, saying where it listens also when given its sockets."""

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        for sock in sockets or ():
            host, port = sock.getsockname()[:2]
            shown = f"[{host}]" if ":" in host else host
            log.info("Uvicorn running on http://%s:%d (Press CTRL+C to quit)", shown, port)
