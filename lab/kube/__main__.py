"""Run the lab Kubernetes API: ``python -m vmwave_lab.kube --dir STATE``.

Reads STATE/kube-tokens.json (written by the starter, never argv), keeps
objects in STATE/kube.db, writes STATE/kube.ready.json once it serves, and
what RBAC decided for service-account tokens in STATE/kube-audit.jsonl.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
from pathlib import Path

import uvicorn

from vmwave_lab.kube.controllers import start_controllers
from vmwave_lab.kube.server import Api, app
from vmwave_lab.kube.store import Store
from vmwave_lab.kube.tls import write_certificates


async def serve(state: Path, listen: str) -> None:
    tokens = json.loads((state / "kube-tokens.json").read_text())
    config = json.loads((state / "kube-config.json").read_text())
    ca, cert, key = write_certificates(state)
    api = Api(
        Store(state / "kube.db"),
        {tokens["admin"]: "admin", tokens["viewer"]: "viewer"},
        audit=state / "kube-audit.jsonl",
    )
    host, port = listen.rsplit(":", 1)
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # inherited by connections: no 40 ms delayed-ACK stalls
    sock.bind((host, int(port)))
    controllers, routes = start_controllers(api, state, config)
    server = uvicorn.Server(
        uvicorn.Config(
            app(api, routes),
            ssl_certfile=str(cert),
            ssl_keyfile=str(key),
            log_level="warning",
            timeout_graceful_shutdown=1,
        )
    )
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, lambda: setattr(server, "should_exit", True))

    async def announce():
        while not server.started:
            await asyncio.sleep(0.02)
        ready = {"url": f"https://{host}:{sock.getsockname()[1]}", "pid": os.getpid(), "ca": str(ca)}
        tmp = state / "kube.ready.json.tmp"
        tmp.write_text(json.dumps(ready))
        tmp.rename(state / "kube.ready.json")

    announcer = asyncio.create_task(announce())
    await server.serve(sockets=[sock])
    announcer.cancel()
    for task in controllers:
        task.cancel()
    await asyncio.gather(*controllers, return_exceptions=True)  # lets real guests shut down


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", required=True, type=Path)
    parser.add_argument("--listen", default="127.0.0.1:0")
    args = parser.parse_args()
    asyncio.run(serve(args.dir, args.listen))


if __name__ == "__main__":
    main()
