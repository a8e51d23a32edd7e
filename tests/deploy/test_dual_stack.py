"""`hub serve --host ::` (the Kubernetes and image default) answers on IPv4 and IPv6."""

import re
import socket
import subprocess
import sys
import threading
from pathlib import Path

import httpx
import pytest

from tests.deploy.server import Deployment
from tests.serving import START_TIMEOUT

_LISTENING = re.compile(r"Uvicorn running on http://\[::\]:([0-9]+)")


@pytest.mark.skipif(not socket.has_dualstack_ipv6(), reason="no dual-stack IPv6 here")
async def test_serve_on_all_addresses_takes_ipv4_and_ipv6_clients(tmp_path: Path) -> None:
    deployment = Deployment(f"sqlite://{tmp_path}/hub.db", tmp_path)
    await deployment.prepare([])
    proc = subprocess.Popen(
        [sys.executable, "-m", "hub.cli", "serve", "--host", "::", "--port", "0"],
        env=deployment.env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    port: list[int] = []
    listening = threading.Event()

    def read() -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            found = _LISTENING.search(line)
            if found and not port:
                port.append(int(found[1]))
                listening.set()
        listening.set()

    threading.Thread(target=read, daemon=True).start()
    try:
        assert listening.wait(START_TIMEOUT) and port, "hub serve --host :: did not start"
        for base in (f"http://127.0.0.1:{port[0]}", f"http://[::1]:{port[0]}"):
            async with httpx.AsyncClient(base_url=base, timeout=10) as client:
                assert (await client.get("/healthz")).status_code == 200, base
                assert (await client.get("/readyz")).status_code == 200, base
    finally:
        proc.kill()
        proc.wait()
