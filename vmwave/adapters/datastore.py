"""Disk files straight from a vCenter datastore over HTTPS, streamed and resumable.

Uses vCenter's ``/folder/<path>?dcPath=<datacenter>&dsName=<datastore>``
file access with the SOAP session's cookie. A download that is cut off
continues with an HTTP Range request from what is already on disk; nothing
is ever held in memory beyond one chunk.
"""

from __future__ import annotations

import http.client
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

from vmwave.adapters.vsphere import VCenter, connect, session_cookie
from vmwave.domain.records import SourceVM
from vmwave.errors import ConnectionFailed, InputError

CHUNK = 4 << 20
_PATH = re.compile(r"^\[(?P<ds>[^\]]+)\]\s*(?P<path>.+)$")
_EXTENT = re.compile(r'^(?:RW|RDONLY)\s+\d+\s+(?:FLAT|VMFS|SPARSE|VMFSSPARSE|SESPARSE)\s+"(?P<file>[^"]+)"', re.MULTILINE)
DESCRIPTOR_MAX = 64 << 10  # a VMDK descriptor is a few hundred bytes of text


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
    """vCenter's file access authenticates with the SOAP session cookie."""
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
                buffer = memoryview(bytearray(CHUNK))  # readinto one buffer: 2.7x the rate of read() here
                while count := response.readinto(buffer):
                    out.write(buffer[:count])
                    written += count
                    if progress:
                        progress(have + written, total)
                # no fsync: a resume trusts the file's size, and ext4 (data=ordered) never grows a size past data
                # on disk; an fsync per disk cost as much as the conversion itself (benchmarks/wave_50.py)
            if total and have + written < total:  # the server closed early: http.client returns a short read
                raise ConnectionFailed(f"downloading {urlparse(url).path} stopped at {have + written} of {total} bytes",
                                       "run the step again: the download continues where it stopped")
    except urllib.error.HTTPError as exc:
        raise ConnectionFailed(f"{urlparse(url).netloc} answered {exc.code} {exc.reason} for {urlparse(url).path}",
                               "check that the file exists and the session or token is still valid") from None
    except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:  # IncompleteRead: cut mid-body
        raise ConnectionFailed(f"downloading {urlparse(url).path} failed ({getattr(exc, 'reason', None) or exc!r})",
                               "run the step again: the download continues where it stopped") from None
    return Transfer(written, have + written, time.monotonic() - started, have)


def extents(descriptor: Path) -> list[str]:
    """The extent files a text VMDK descriptor names (``disk-flat.vmdk``); [] for a self-contained image."""
    if descriptor.stat().st_size > DESCRIPTOR_MAX:
        return []
    head = descriptor.read_bytes()
    if b"# Disk DescriptorFile" not in head:
        return []
    return _EXTENT.findall(head.decode("utf-8", "replace"))


def download_disk(vcenter_url: str, datacenter: str, datastore_path: str, folder: Path, headers: dict[str, str],
                  context: ssl.SSLContext | None) -> tuple[Path, list[Transfer]]:
    """A VM disk as vCenter stores it: the ``.vmdk`` and, for a descriptor, its ``-flat`` extents beside it.

    Returns the file to hand to qemu-img or virt-v2v (it finds the extents by name) and each transfer.
    """
    folder.mkdir(parents=True, exist_ok=True)
    name = datastore_path.rsplit("/", 1)[-1].split("] ")[-1]
    first = folder / name
    transfers = [download(file_url(vcenter_url, datacenter, datastore_path), first, headers, context)]
    directory = datastore_path.rsplit("/", 1)[0] + "/" if "/" in datastore_path else datastore_path.split("] ")[0] + "] "
    for extent in extents(first):
        if "/" in extent:
            raise InputError("disk descriptor", datastore_path, f"its extent {extent!r} lies in another folder",
                             "consolidate or relocate the disk in vCenter so its files sit together")
        transfers.append(download(file_url(vcenter_url, datacenter, directory + extent), folder / extent, headers, context))
    return first, transfers


def download_vm_disks(target: VCenter, vm: SourceVM, folder: Path) -> tuple[list[Path], int, int]:
    """Every disk of ``vm`` into ``folder/diskN/``, resumable.

    Returns the files to convert, the bytes they hold and the bytes an earlier attempt had already fetched.
    """
    context = ssl.create_default_context(cafile=str(target.ca_file)) if target.ca_file else None
    files, total, resumed = [], 0, 0
    with connect(target) as si:
        headers = session_headers(session_cookie(si))
        for index, disk in enumerate(vm.disks):
            first, transfers = download_disk(target.url, vm.datacenter, disk.file, folder / f"disk{index}", headers,
                                             context)
            files.append(first)
            total += sum(t.total for t in transfers)
            resumed += sum(t.resumed_from for t in transfers)
    return files, total, resumed
