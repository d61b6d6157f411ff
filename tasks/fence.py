"""Step: a verified migration's source fenced in vCenter, so it cannot come back beside its copy.

A source someone powers on again after its cutover brings a second copy of
the server, its MAC and its IP onto the network. Once the copy is verified,
the source stays off, is renamed, carries ``vmwave.migrated`` (a rerun finds
it migrated and leaves it alone), its NICs are disconnected and do not connect
at power on, and it moves into the plan's folder if it names one. What was
there before is recorded first, so a rollback (or this step giving up) puts it
all back (``vmwave_tasks.undo.undo_fence``): putting back what did not change
yet changes nothing.
"""

from __future__ import annotations

from datetime import datetime, timezone

from vmwave.adapters.vsphere import connect
from vmwave.adapters.vsphere_fence import folder, move, reconfigure, set_attribute, source
from vmwave.adapters.vsphere_ops import shut_down
from vmwave.domain.steps import FENCE, FENCED_ATTRIBUTE
from vmwave_tasks.job import Job
from vmwave_tasks.step import step

VSPHERE_NAME_MAX = 80


@step(FENCE)
def fence(job: Job) -> dict:
    how = job.entry.fencing
    if not how.enabled:
        return {"status": "skipped", "why": "the plan says `fence: false`"}
    if job.mode == "rebuild":
        return {"status": "skipped", "why": "a rebuilt VM's source was not moved: it runs until its team retires it"}
    ledger = job.clients.steps
    before = ((ledger.get(job.wave, job.vm.key, FENCE) or {}).get("detail") or {}).get("before")  # an earlier try's
    moref = job.vm.moref
    with connect(job.settings.need_vcenter()) as si:
        found = source(si, moref, FENCED_ATTRIBUTE)
        if before is None:  # what a rollback restores, recorded before anything changes
            before = {"name": found.name, "folder": found.folder, "nics": found.nics, "attribute": found.attribute}
            ledger.mark(job.wave, job.vm.key, FENCE, detail={"before": before})
        done: dict = {"before": before}
        if found.power_state != "poweredOff":  # someone started it since its cutover
            done["shutdown"] = shut_down(si, moref, job.vm.tools == "running", job.settings.timeouts.shutdown)
        done["renamed"] = how.rename.format(name=before["name"], wave=job.wave)[:VSPHERE_NAME_MAX]
        reconfigure(si, moref, done["renamed"], {key: [False, False] for key in before["nics"]})
        done["marked"] = f"{job.maps.namespace}/{job.target} {datetime.now(timezone.utc).isoformat(timespec='seconds')}"
        set_attribute(si, moref, FENCED_ATTRIBUTE, done["marked"])
        if how.folder:
            done["moved"] = folder(si, moref, how.folder)
            move(si, moref, done["moved"])
    return done
