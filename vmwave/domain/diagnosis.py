"""Every known cause of a failed step: what it means, the fix a person applies, whether a retry can help.

Steps raise by cause id (``vmwave_tasks.job.StepFailed``); the ledger keeps
the id, and the wave report (and the metrics) read the fix from here, so a
cause is explained in exactly one place. The first four entries are the
common failures of the seed migration.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Cause:
    id: str
    meaning: str
    fix: str
    transient: bool = False  # True: the step is retried with backoff before it gives up


CAUSES: dict[str, Cause] = {
    c.id: c
    for c in (
        # The seed's common failures.
        Cause(
            "guest-agent-not-connected",
            "the guest booted but its QEMU guest agent never connected",
            "install and start qemu-guest-agent in the guest (Windows: from the VirtIO drivers ISO), then run the "
            "wave again",
        ),
        Cause(
            "nad-missing",
            "a NetworkAttachmentDefinition the network map names does not exist",
            "create it, or add `create:` to its network map entry so vmwave makes it",
        ),
        Cause(
            "slow-disk",
            "the migrated VM's disks are much slower than on vSphere",
            "use the latency-sensitive profile (io native, cache none, a dedicated IO thread) and a block StorageClass",
        ),
        Cause(
            "live-migration-failed",
            "a KubeVirt live migration of the migrated VM did not complete",
            "apply `vmwave cluster migration-config` (bandwidth, auto-converge) and use ReadWriteMany volumes",
        ),
        # Failures of the steps.
        Cause(
            "vmi-not-running",
            "the VirtualMachine did not reach Running",
            "see the VirtualMachine's conditions: a missing volume or NAD, or no node with room (hugepages, CPU)",
        ),
        Cause(
            "cdi-import-failed",
            "CDI could not import a disk into its DataVolume",
            "see the DataVolume's events and the importer's message in the error: the volume size, the storage "
            "class, or a source that is not a disk image",
        ),
        Cause(
            "source-auth-failed",
            "CDI could not read the disk from vSphere with the wave's credentials",
            "check VMWAVE_VCENTER_USER and its password file; the user needs Datastore.FileManagement (HTTPS) "
            "or VirtualMachine.Provisioning.DiskRandomRead (VDDK) and the thumbprint must match vCenter's",
        ),
        Cause(
            "source-disk-missing",
            "the disk's file is not on its datastore, or not a disk of the VM any more",
            "re-read the inventory and re-plan: the disk was moved (Storage vMotion), removed or the VM re-registered",
        ),
        Cause(
            "conversion-failed",
            "virt-v2v-in-place could not convert the guest on its imported volumes",
            "read the conversion pod's last lines in the error: consolidate snapshots, give the guest's file "
            "systems free space (/ 100 MB, /boot 50 MB), disable hibernation or Fast Startup, or check that the "
            "guest OS is supported",
        ),
        Cause(
            "conversion-not-ready",
            "what the guest's conversion needs is not configured on this worker",
            "configure what the error names (e.g. VMWAVE_VIRTIO_WIN for Windows), then run the wave again",
        ),
        Cause(
            "cancelled",
            "a person cancelled this VM's migration (`vmwave cancel`); it was rolled back",
            "nothing is broken: run the wave again to migrate it",
        ),
        Cause(
            "missed-window",
            "its cutover could not start before its wave's window ended, so it did not start; "
            "the source still runs, and a warm VM's copy so far is kept",
            "give the wave its next window (`window:`, or `cutover:` for the VM) in the plan and run the wave again: "
            "a warm VM goes on copying from where it was; or cut it over now, outside the window, with "
            "`vmwave migrate --ignore-window`",
        ),
        Cause(
            "shared-disk-group-failed",
            "a VM that shares a disk with this one failed (or did not get as far in time), "
            "and VMs sharing a disk move together or not at all",
            "fix what failed the other VM (its own row says), then run the wave again: the group moves again, with "
            "every VM of it able to run at once (--in-flight, per-host caps)",
        ),
        Cause(
            "hook-failed",
            "a hook the plan names (a Kubernetes Job) failed or ran past its deadline",
            "read the hook's last lines in the error and `kubectl logs job/<name>`; fix the hook or the service it "
            "checks, then run the wave again",
        ),
        Cause(
            "smoke-check-failed",
            "a smoke check against the booted guest did not pass in time",
            "check the service in the guest and the VLAN/NAD of its NIC",
        ),
        Cause(
            "no-guest-ip",
            "the guest agent reported no IP address, so a network check had nowhere to go",
            "check the guest's network configuration (DHCP or its static address) and its NIC's NAD",
        ),
        Cause(
            "not-approved",
            "a person refused a manual (P5) migration when it paused for approval",
            "resolve what the reviewer noted, then run the wave again",
        ),
        # The outside systems.
        Cause(
            "vcenter-task-failed",
            "a vCenter task (snapshot, power operation) ended in error",
            "see the task in vCenter: a busy host or a lock held by a backup usually clears by itself",
            transient=True,
        ),
        Cause(
            "vcenter-unreachable",
            "vCenter could not be reached (by vmwave, or by CDI from the cluster)",
            "check the URL, the network (from the cluster's nodes too) and that vCenter is up",
            transient=True,
        ),
        Cause(
            "owned-by-another-run",
            "an object this VM needs already exists and another run (another ledger) made it",
            "leave it if it is a migration done with another ledger, or roll it back with that ledger; else give the "
            "VM another target_name in the plan",
        ),
        Cause(
            "recorded-but-gone",
            "the ledger says the step was done, but what it made is no longer in the cluster",
            "migrate the VM again: `vmwave migrate --plan PLAN --wave W --redo VM`",
        ),
        Cause(
            "volume-in-use",
            "a volume the conversion would change is in use by a running VM or pod",
            "stop what uses it (it may be a migration done before: then leave it), then run the wave again",
        ),
        Cause(
            "ledger-unreachable",
            "the ledger's database (VMWAVE_LEDGER) could not be reached",
            "start the database, or point VMWAVE_LEDGER at one that runs",
            transient=True,
        ),
        Cause(
            "vcenter-refused",
            "vCenter refused the credentials or its certificate did not verify",
            "check the user, the password file and VMWAVE_VCENTER_CA or --thumbprint",
        ),
        Cause(
            "vcenter-session-expired",
            "the vCenter session expired during the step",
            "none: the retry logs in again",
            transient=True,
        ),
        Cause(
            "vcenter-busy",
            "vCenter refused the call for now (method disabled, task in progress)",
            "wait for the other operation on the VM to finish",
            transient=True,
        ),
        Cause(
            "vcenter-unavailable",
            "vCenter answered with an HTTP error or dropped the connection",
            "none when it passes: vpxd restarts or sheds load; otherwise check vCenter's health",
            transient=True,
        ),
        Cause(
            "cluster-unreachable",
            "the Kubernetes API could not be reached or refused the kubeconfig",
            "check VMWAVE_KUBECONFIG, the token in it and that the API server is up",
            transient=True,
        ),
        Cause(
            "cluster-rejected",
            "the Kubernetes API refused an object vmwave applied",
            "read the API's message in the error; `vmwave manifests` shows the objects",
        ),
        Cause(
            "timed-out",
            "a step waited longer than its timeout",
            "raise the step's timeout (VMWAVE_TIMEOUTS) or see the object",
        ),
        Cause(
            "input-invalid",
            "a file or setting the step read is invalid",
            "fix what the error names, then run the wave again",
        ),
        Cause(
            "plugin-broken",
            "a guest-OS plugin could not be loaded or implements a hook vmwave does not have",
            "fix or uninstall the plugin the error names, or switch it off with VMWAVE_DISABLE_PLUGINS",
        ),
        Cause(
            "plugin-failed",
            "a guest-OS plugin's hook raised an error about this VM",
            "fix the plugin the error names, or switch it off with VMWAVE_DISABLE_PLUGINS",
        ),
        Cause(
            "rollback-failed",
            "undoing a failed migration left something behind",
            "undo by hand what the rollback row of the ledger names (`vmwave status --json`)",
        ),
        Cause(
            "unexpected",
            "an error vmwave does not know",
            "read the error in the ledger; report it if it is vmwave's fault",
        ),
    )
}


def cause(cause_id: str) -> Cause:
    """The table's entry, or ``unexpected`` for an id it does not hold (a plugin's, an old ledger's)."""
    return CAUSES.get(cause_id, CAUSES["unexpected"])


def import_cause(message: str) -> str:
    """The cause of a failed CDI import, from the importer's message (CDI keeps it in the Running condition)."""
    text = message.lower()
    if any(word in text for word in ("401", "403", "unauthorized", "incorrect user name or password", "thumbprint")):
        return "source-auth-failed"
    if any(word in text for word in ("404", "not found on the datastore", "is not a disk of")):
        return "source-disk-missing"
    if any(
        word in text
        for word in (
            "connection refused",
            "no route to host",
            "timed out",
            "name or service not known",
            "remote end closed",
            "connection reset",
        )
    ):
        return "vcenter-unreachable"
    return "cdi-import-failed"
