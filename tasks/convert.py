"""Step 2: each disk out of vCenter into the work directory, then converted to qcow2.

The guest-OS plugins decide the tool (``vmwave.plugins.conversion``): a plain
``qemu-img`` copy, or ``virt-v2v`` on the downloaded disks; with
``VMWAVE_V2V_INPUT=vpx`` virt-v2v reads the VM from vCenter itself (and
through VDDK when ``VMWAVE_VDDK_LIBDIR`` is set). Bytes read and written
and the throughput of each part are recorded.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import ssl
import subprocess
import time
from pathlib import Path
from urllib.parse import urlparse

from vmwave.adapters import conversion as tools
from vmwave.adapters.datastore import download_disk, session_headers
from vmwave.adapters.vsphere import connect
from vmwave.plugins import Conversion, conversion
from vmwave_tasks.job import Job, StepFailed
from vmwave_tasks.step import step


def disk_dir(job: Job) -> Path:
    path = Path(job.workdir) / job.wave / job.vm.instance_uuid
    path.mkdir(parents=True, exist_ok=True)
    return path


def _download(job: Job, folder: Path) -> tuple[list[Path], int, int]:
    """Every disk of the VM, resumable; returns the files, the bytes they hold and the bytes an earlier try had."""
    context = ssl.create_default_context(cafile=str(job.vcenter.ca_file)) if job.vcenter.ca_file else None
    files, total, resumed = [], 0, 0
    with connect(job.vcenter) as si:
        headers = session_headers(si._stub.cookie)
        for index, disk in enumerate(job.vm.disks):
            first, transfers = download_disk(job.vcenter.url, job.vm.datacenter, disk.file, folder / f"disk{index}",
                                             headers, context)
            files.append(first)
            total += sum(t.total for t in transfers)
            resumed += sum(t.resumed_from for t in transfers)
    return files, total, resumed


def _vddk_thumbprint(url: str) -> str:
    parsed = urlparse(url)
    der = ssl.PEM_cert_to_DER_cert(ssl.get_server_certificate((parsed.hostname, parsed.port or 443)))
    digest = hashlib.sha1(der).hexdigest().upper()  # what virt-v2v's vddk input asks for, not a security check
    return ":".join(digest[i:i + 2] for i in range(0, len(digest), 2))


def _convert(job: Job, how: Conversion, folder: Path, sources: list[Path]) -> list[Path]:
    log = folder / f"{how.tool}.log"
    limit = job.timeouts.get("convert", 7200)
    if how.tool == "copy":
        targets = [folder / f"disk{i}.qcow2" for i in range(len(sources))]
        for source, target in zip(sources, targets):
            tools.copy(source, target, log)
        return targets
    out = folder / "v2v"
    shutil.rmtree(out, ignore_errors=True)  # a half-written conversion is never reused
    out.mkdir()
    if job.v2v_input == "vpx":
        vddk = tools.VddkSettings(job.vddk_libdir, _vddk_thumbprint(job.vcenter.url)) if job.vddk_libdir else None
        return tools.v2v_vpx(job.vm, job.vcenter.url, job.vcenter.user, job.vcenter.password(), out, log, vddk,
                             how.options, how.env, limit)
    return tools.v2v_local(job.vm, sources, out, log, how.options, how.env, limit)


@step("convert")
def convert(job: Job) -> dict:
    if job.mode == "rebuild":  # P2: the VM is rebuilt from a template image; its disks are not copied
        return {"status": "skipped", "disks": [], "reason": "rebuilt from the template image the maps name"}
    how = conversion(job.vm)
    folder = disk_dir(job)
    started = time.monotonic()
    sources, read_total, resumed = ([], 0, 0) if how.tool == "virt-v2v" and job.v2v_input == "vpx" \
        else _download(job, folder)
    downloaded = time.monotonic()
    try:
        images = _convert(job, how, folder, sources)
    except tools.ConversionFailed as exc:
        raise StepFailed(exc.what, exc.fix, "conversion-failed") from None
    finished = time.monotonic()
    disks, written_total = [], 0
    for index, image in enumerate(images):
        info = json.loads(subprocess.run(["qemu-img", "info", "--output=json", str(image)],
                                         capture_output=True, text=True, check=True).stdout)
        disks.append({"index": index, "image": str(image), "written": info["actual-size"],
                      "virtual_size": info["virtual-size"]})
        written_total += info["actual-size"]
    for source in sources:  # only the converted images are kept (until the import)
        shutil.rmtree(source.parent, ignore_errors=True)
    seconds = finished - started
    return {"tool": how.tool, "why": how.why, "disks": disks, "bytes": read_total, "resumed_bytes": resumed,
            "written": written_total,
            "seconds": round(seconds, 3), "download_seconds": round(downloaded - started, 3),
            "convert_seconds": round(finished - downloaded, 3),
            "mb_s": round(read_total / 1e6 / seconds, 1) if seconds else 0.0}
