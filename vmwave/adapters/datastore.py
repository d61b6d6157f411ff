"""Disk files straight from a vCenter datastore over HTTPS, streamed and resumable.

Uses vCenter's ``/folder/<path>?dcPath=<datacenter>&dsName=<datastore>``
file access with the SOAP session's cookie. A download that is cut off
continues with an HTTP Range request from what is already on disk; nothing
is ever held in memory beyond one chunk.
"""

from __future__ import annotations

import os
import re
import ssl
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Callable
from urllib.parse import quote, urlparse

from vmwave.errors import ConnectionFailed, InputError

CHUNK = 4 << 20
_PATH = re.compile(r"^\[(?P<ds>[^\]]+)\]\s*(?P<path>.+)$")


@dataclass(frozen=True)
class Transfer:
    bytes: int  # bytes written by this call
    total: int  # size of the file
    seconds: float
    resumed_from: int = 0

    @property
    def mb_per_s(self) -> float:
        return self.bytes / 1e6 / self.seconds if self.seconds > 0 else 0.0


def file_url(vcenter_url: str, datacenter: str, datastore_path: str) -> str:
    """``[ds-ssd-01] web-01/web-01_0.vmdk`` -> the datastore file URL of that file."""
    m = _PATH.match(datastore_path)
    if not m:
        raise InputError("datastore path", "", f"{datastore_path!r} is not '[datastore] path'", "read it from the inventory")
    u = urlparse(vcenter_url)
    return (f"{u.scheme}://{u.netloc}/folder/{quote(m.group('path'))}"
            f"?dcPath={quote(datacenter)}&dsName={quote(m.group('ds'))}")


def session_headers(cookie: str) -> dict[str, str]:
    """vCenter's file access authenticates with the SOAP session cookie (pyVmomi: ``si._stub.cookie``)."""
    return {"Cookie": cookie} if cookie else {}


def download(url: str, dest: Path, headers: dict[str, str], context: ssl.SSLContext | None,
             progress: Callable[[int, int], None] | None = None, timeout: float = 60) -> Transfer:
    """Fetch ``url`` into ``dest``, continuing a partial ``dest`` with a Range request."""
    started = time.monotonic()
    try:
        head = urllib.request.Request(url, method="HEAD", headers=headers)
        with urllib.request.urlopen(head, context=context, timeout=timeout) as response:
            total = int(response.headers.get("Content-Length") or 0)
        have = dest.stat().st_size if dest.exists() else 0
        if have > total:
            have = 0  # not a prefix of this file: start again
        if total and have == total:
            return Transfer(0, total, time.monotonic() - started, have)
        request = urllib.request.Request(url, headers={**headers, **({"Range": f"bytes={have}-"} if have else {})})
        with urllib.request.urlopen(request, context=context, timeout=timeout) as response:
            if have and response.status != 206:
                have = 0  # the server ignored the range
            written = 0
            with open(dest, "r+b" if have else "wb") as out:
                out.seek(have)
                out.truncate()
                while chunk := response.read(CHUNK):
                    out.write(chunk)
                    written += len(chunk)
                    if progress:
                        progress(have + written, total)
                out.flush()
                os.fsync(out.fileno())
    except urllib.error.HTTPError as exc:
        raise ConnectionFailed(f"{urlparse(url).netloc} answered {exc.code} {exc.reason} for {urlparse(url).path}",
                               "check that the file exists and the session or token is still valid") from None
    except (urllib.error.URLError, OSError) as exc:
        raise ConnectionFailed(f"downloading {urlparse(url).path} failed ({getattr(exc, 'reason', exc)})",
                               "run the step again: the download continues where it stopped") from None
    return Transfer(written, have + written, time.monotonic() - started, have)
