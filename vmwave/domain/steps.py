"""The names of a VM's migration steps, in the order they run: the disks are imported, then the guest converted in place.

One spelling for the ledger, the report, the undo table and the flows.
"""

from __future__ import annotations

SNAPSHOT = "snapshot"
CONVERT = "convert"
CDI_IMPORT = "cdi-import"
NETWORK_ATTACH = "network-attach"
BOOT = "boot"
GUEST_AGENT = "guest-agent"
SMOKE_TEST = "smoke-test"
ROLLBACK = "rollback"  # the ledger row that records what a rollback undid
PRE_CUTOVER_HOOK = "pre-cutover-hook"  # the plan's hooks (vmwave.domain.hooks): only for VMs that have them
POST_BOOT_HOOK = "post-boot-hook"

PIPELINE = (SNAPSHOT, CDI_IMPORT, CONVERT, NETWORK_ATTACH, BOOT, GUEST_AGENT, SMOKE_TEST)
