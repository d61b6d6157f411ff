"""vSphere tags, which live in vCenter's REST API rather than the SOAP API pyvmomi speaks.

Uses the /rest endpoints every vCenter 6.5-8 serves: one session, one list of
categories and tags, and one batched list-attached-tags-on-objects call per
1000 VMs (never a call per VM).
"""

from __future__ import annotations

import base64
import json
import logging
import ssl
import urllib.error
import urllib.request
from typing import Any
from urllib.parse import urlparse

log = logging.getLogger(__name__)
BATCH = 1000


class _Rest:
    def __init__(self, url: str, context: ssl.SSLContext | None):
        u = urlparse(url)
        self.base = f"{u.scheme}://{u.netloc}/rest"
        self.context = context
        self.session = ""

    def call(self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(
            self.base + path,
            data=data,
            method=method,
            headers={
                "Content-Type": "application/json",
                "Accept": "application/json",
                **({"vmware-api-session-id": self.session} if self.session else {}),
                **(headers or {}),
            },
        )
        with urllib.request.urlopen(request, context=self.context, timeout=60) as response:
            payload = response.read()
        return json.loads(payload).get("value") if payload else None


def read_tags(
    url: str, user: str, password: str, context: ssl.SSLContext | None, morefs: list[str]
) -> dict[str, tuple[str, ...]]:
    """moref -> ("category/tag", ...). A vCenter without the REST API gives no tags and a warning."""
    rest = _Rest(url, context)
    basic = base64.b64encode(f"{user}:{password}".encode()).decode()
    try:
        rest.session = rest.call("POST", "/com/vmware/cis/session", headers={"Authorization": f"Basic {basic}"})
    except urllib.error.HTTPError as exc:
        log.warning(
            "vSphere tags not read: the REST API answered %s %s; tag rules will not match", exc.code, exc.reason
        )
        return {}
    try:
        categories = {
            cid: rest.call("GET", f"/com/vmware/cis/tagging/category/id:{cid}")["name"]
            for cid in rest.call("GET", "/com/vmware/cis/tagging/category") or ()
        }
        names = {}
        for tid in rest.call("GET", "/com/vmware/cis/tagging/tag") or ():
            tag = rest.call("GET", f"/com/vmware/cis/tagging/tag/id:{tid}")
            names[tid] = f"{categories.get(tag['category_id'], '?')}/{tag['name']}"
        found: dict[str, tuple[str, ...]] = {}
        for start in range(0, len(morefs), BATCH):
            ids = [{"type": "VirtualMachine", "id": m} for m in morefs[start : start + BATCH]]
            attached = (
                rest.call(
                    "POST",
                    "/com/vmware/cis/tagging/tag-association?~action=list-attached-tags-on-objects",
                    {"object_ids": ids},
                )
                or []
            )
            for entry in attached:
                if entry.get("tag_ids"):
                    found[entry["object_id"]["id"]] = tuple(sorted(names[t] for t in entry["tag_ids"] if t in names))
        return found
    finally:
        rest.call("DELETE", "/com/vmware/cis/session")
