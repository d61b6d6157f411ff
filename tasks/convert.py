"""Step 2: each disk out of vCenter into the work directory, then converted to qcow2.

The plan names the tool and the guest-OS plugins its options
(``vmwave.plugins.conversion``, decided before the wave starts): a plain
``qemu-img`` copy, or ``virt-v2v`` on the downloaded disks; with the
``vpx`` input virt-v2v reads the VM from vCenter itself (through VDDK when a
VDDK library is configured). Bytes read and written and the throughput of
each part are recorded.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

from vmwave.adapters import conversion as tools
from vmwave.adapters.datastore import download_vm_disks
from vmwave.adapters.vsphere import sha1_thumbprint
from vmwave.domain.steps import CONVERT
from vmwave_tasks.job import Job
from vmwave_tasks.step import step
from vmwave_tasks.undo import work_folder


def _convert(job: Job, folder: Path, sources: list[Path]) -> list[Path]:
    how, settings = job.conversion, job.settings
    log = folder / f"{how.tool}.log"
    limit = settings.timeouts.convert
    if how.tool == "copy":
        targets = [folder / f"disk{i}.qcow2" for i in range(len(sources))]
        for source, target in zip(sources, targets):
            tools.copy(source, target, log)
        return targets
    out = folder / "v2v"
    shutil.rmtree(out, ignore_errors=True)  # a half-written conversion is never reused
    out.mkdir()
    if settings.v2v_input == "vpx":
        vcenter = settings.need_vcenter()
        vddk = tools.VddkSettings(str(settings.vddk_libdir), sha1_thumbprint(vcenter.url)) \
            if settings.vddk_libdir else None
        return tools.v2v_vpx(job.vm, vcenter.url, vcenter.user, vcenter.password(), out, log, vddk,
                             how.options, how.env, limit, settings.v2v_accel)
    return tools.v2v_local(job.vm, sources, out, log, how.options, how.env, limit, settings.v2v_accel)


@step(CONVERT)
def convert(job: Job) -> dict:
    if job.mode == "rebuild":  # P2: the VM is rebuilt from a template image; its disks are not copied
        return {"status": "skipped", "disks": [], "reason": "rebuilt from the template image the maps name"}
    folder = work_folder(job)
    folder.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    reads_vcenter = job.conversion.tool == "virt-v2v" and job.settings.v2v_input == "vpx"
    sources, read_total, resumed = ([], 0, 0) if reads_vcenter else \
        download_vm_disks(job.settings.need_vcenter(), job.vm, folder)
    downloaded = time.monotonic()
    images = _convert(job, folder, sources)
    finished = time.monotonic()
    disks = []
    for index, image in enumerate(images):
        info = tools.image_info(image)
        disks.append({"index": index, "image": str(image), "written": info["actual-size"],
                      "virtual_size": info["virtual-size"]})
    for source in sources:  # only the converted images are kept (until the import)
        shutil.rmtree(source.parent, ignore_errors=True)
    seconds = finished - started
    return {"tool": job.conversion.tool, "why": job.conversion.why, "disks": disks, "bytes": read_total,
            "resumed_bytes": resumed, "written": sum(d["written"] for d in disks),
            "seconds": round(seconds, 3), "download_seconds": round(downloaded - started, 3),
            "convert_seconds": round(finished - downloaded, 3),
            "mb_s": round(read_total / 1e6 / seconds, 1) if seconds else 0.0}
