"""Network probes of a migrated guest for the smoke checks: a TCP connect, an HTTP status.

The guest is reached at its address, or, where the worker cannot route to the
guest's network, through a port forward announced on the VMI in the
annotation ``vmwave.io/port-forwards`` (``8080=127.0.0.1:40123,22=...``):
whatever provides the forward (a proxy on the worker, the lab) sets it.
"""

from __future__ import annotations

import socket
import urllib.error
import urllib.request
from typing import Any
from urllib.parse import urlparse

PORT_FORWARDS = "vmwave.io/port-forwards"


class Unreachable(OSError):
    """The probe got no (or the wrong) answer; the check may pass when tried again."""


def endpoint(vmi: dict[str, Any], guest_ip: str | None, port: int) -> tuple[str, int] | None:
    """Where guest port ``port`` is reached from here; None when the guest has no address and no forward."""
    announced = ((vmi.get("metadata") or {}).get("annotations") or {}).get(PORT_FORWARDS, "")
    forwards = dict(item.split("=", 1) for item in announced.split(",") if "=" in item)
    if str(port) in forwards:
        host, _, host_port = forwards[str(port)].rpartition(":")
        return host, int(host_port)
    return (guest_ip, port) if guest_ip else None


def tcp(host: str, port: int, timeout: float) -> str:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return f"connected to {host}:{port}"
    except OSError as exc:
        raise Unreachable(f"{host}:{port}: {exc.strerror or exc}") from None


def http_status(url: str, host: str, port: int, timeout: float) -> tuple[str, int]:
    """GET ``url`` at ``host:port`` instead of its own address; (the URL asked, its status)."""
    target = urlparse(url)._replace(netloc=f"{host}:{port}").geturl()
    try:
        with urllib.request.urlopen(target, timeout=timeout) as response:
            return target, response.status
    except urllib.error.HTTPError as exc:
        return target, exc.code
    except (urllib.error.URLError, OSError) as exc:
        raise Unreachable(f"{target}: {getattr(exc, 'reason', None) or exc}") from None
