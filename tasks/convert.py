"""Step 2: stream each disk out of vCenter into the work directory, then convert it to qcow2.

Plain ``qemu-img convert`` here; guest conversion with virt-v2v is chosen by
the guest-OS plugins when they arrive. Bytes and throughput are recorded.
"""

from __future__ import annotations

import json
import ssl
import subprocess
import time
from pathlib import Path

from vmwave.adapters.datastore import download, file_url, session_headers
from vmwave.adapters.vsphere import connect
from vmwave_tasks.job import Job, StepFailed, step


def disk_dir(job: Job) -> Path:
    path = Path(job.workdir) / job.wave / job.vm.instance_uuid
    path.mkdir(parents=True, exist_ok=True)
    return path


@step("convert")
def convert(job: Job) -> dict:
    if job.mode == "rebuild":  # P2: the VM is rebuilt from a template image; its disks are not copied
        return {"status": "skipped", "disks": [], "reason": "rebuilt from the template image the maps name"}
    folder = disk_dir(job)
    context = ssl.create_default_context(cafile=str(job.vcenter.ca_file)) if job.vcenter.ca_file else None
    disks, read_total, written_total, started = [], 0, 0, time.monotonic()
    with connect(job.vcenter) as si:
        headers = session_headers(si._stub.cookie)
        for index, disk in enumerate(job.vm.disks):
            source = folder / f"disk{index}.source"
            fetched = download(file_url(job.vcenter.url, job.vm.datacenter, disk.file), source, headers, context)
            target = folder / f"disk{index}.qcow2"
            result = subprocess.run(["qemu-img", "convert", "-q", "-O", "qcow2", str(source), str(target)],
                                    capture_output=True, text=True)
            if result.returncode != 0:
                raise StepFailed(f"qemu-img could not convert {disk.file}: {result.stderr.strip()}",
                                 "check the disk in vCenter (consolidate snapshots) and the free space in the work directory",
                                 "conversion-failed")
            info = json.loads(subprocess.run(["qemu-img", "info", "--output=json", str(target)],
                                             capture_output=True, text=True, check=True).stdout)
            disks.append({"index": index, "image": str(target), "read": fetched.total,
                          "written": info["actual-size"], "virtual_size": info["virtual-size"]})
            read_total += fetched.total
            written_total += info["actual-size"]
            source.unlink()
    seconds = time.monotonic() - started
    return {"disks": disks, "bytes": read_total, "written": written_total, "seconds": round(seconds, 3),
            "mb_s": round(read_total / 1e6 / seconds, 1) if seconds else 0.0}
