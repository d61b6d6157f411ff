"""Smoke checks: what must answer after a migrated guest boots.

Written in the rules file (``smoke:``), carried per VM in the plan, and
added by guest-OS plugins::

    {tcp: 443}                                   # the port accepts a connection
    {http: "http://{ip}:8080/health", status: 200}   # {ip}: the guest's address
    {agent: os, expect: {id: "^debian$"}}        # what the guest agent reports matches
"""

from __future__ import annotations

from typing import Any

from vmwave.domain.patterns import compile_pattern
from vmwave.domain.validate import Node

KINDS = ("tcp", "http", "agent")


def parse_check(node: Node) -> dict[str, Any]:
    node.only(*KINDS, "status", "expect", "timeout", "why")
    kinds = [k for k in KINDS if k in node.data]
    if len(kinds) != 1:
        raise node.fail(
            kinds[1] if kinds else "tcp",
            "a check has exactly one of tcp, http, agent",
            "split it into one check per kind, e.g. {tcp: 22}",
        )
    check: dict[str, Any] = {}
    if kinds[0] == "tcp":
        port = node.get("tcp", int)
        if not 0 < port < 65536:
            raise node.fail("tcp", f"{port} is not a TCP port", "use 1-65535")
        check["tcp"] = port
    elif kinds[0] == "http":
        url = node.get("http", str)
        if not url.startswith(("http://", "https://")):
            raise node.fail("http", f"{url!r} is not an http(s) URL", "write e.g. http://{ip}:8080/health")
        check.update(http=url, status=node.get("status", int, 200))
    else:
        node.get("agent", str, choices=["os"])
        expect = node.child("expect")
        found = {}
        for key in expect.data:
            if not isinstance(key, str) or not key.isidentifier():
                raise expect.fail(
                    str(key), "is not a field the guest agent reports", "use e.g. id, kernelRelease, prettyName"
                )
            found[key] = expect.get(key, str)
            compile_pattern(expect, key, found[key])
        if not found:
            raise node.fail("expect", "is empty", "say what the agent must report, e.g. {id: '^debian$'}")
        check.update(agent="os", expect=found)
    for key, kind in (("timeout", (int, float)), ("why", str)):
        if key in node.data:
            check[key] = node.get(key, kind)
    return check


def parse_checks(node: Node, key: str) -> list[dict[str, Any]]:
    return [parse_check(child) for child in node.children(key)]


def describe(check: dict[str, Any]) -> str:
    if "tcp" in check:
        return f"tcp/{check['tcp']}"
    if "http" in check:
        return f"http {check['http']} -> {check.get('status', 200)}"
    return "agent os " + ",".join(f"{k}~/{v}/" for k, v in check.get("expect", {}).items())
