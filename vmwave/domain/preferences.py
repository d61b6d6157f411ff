"""KubeVirt preferences (kubevirt/common-instancetypes) for a migrated VM: referenced when the cluster has them,
else inline.

A preference holds preferred values only: what the VirtualMachine sets
wins. So a guest-OS plugin names the preference its guest should have and
the values that preference would bring; `prefer` references it
(``spec.preference``) when the maps say the cluster has common-instancetypes,
and otherwise writes the same values into the VM wherever the VM does not
set them already. Either way the hardware vmwave chose (disk bus, NIC model,
firmware, TPM) is what the guest gets.
"""

from __future__ import annotations

import copy
import re
from typing import Any

from vmwave.domain.manifests import Target

CLUSTER_PREFERENCE = "VirtualMachineClusterPreference"
PREFERENCE_API = "instancetype.kubevirt.io/v1beta1"
INLINE = "vmwave.io/preference-inline"  # on the VM template: which preference's values were written into it

HYPERV = {  # common-instancetypes' `hyperv` component, which every Windows preference has
    "domain": {
        "clock": {
            "utc": {},
            "timer": {
                "hpet": {"present": False},
                "pit": {"tickPolicy": "delay"},
                "rtc": {"tickPolicy": "catchup"},
                "hyperv": {},
            },
        },
        "features": {
            "acpi": {},
            "apic": {},
            "hyperv": {
                "relaxed": {},
                "vapic": {},
                "vpindex": {},
                "spinlocks": {"spinlocks": 8191},
                "synic": {},
                "synictimer": {"direct": {}},
                "tlbflush": {},
                "frequencies": {},
                "reenlightenment": {},
                "ipi": {},
                "runtime": {},
                "reset": {},
            },
        },
    },
}
RNG = {"domain": {"devices": {"rng": {}}}}  # the `rng` component of the Linux preferences


def prefer(manifest: dict[str, Any], target: Target, name: str | None, values: dict[str, Any]) -> None:
    """Give ``manifest`` preference ``name``: a reference when the cluster has it, else ``values`` (a VMI spec
    fragment) wherever the VM does not set them; with no name (no preference fits the guest), the values.
    The first plugin to prefer decides; later calls change nothing."""
    spec = manifest["spec"]
    if preferred(manifest):
        return
    if name and target.preferences:
        spec["preference"] = {"kind": CLUSTER_PREFERENCE, "name": name}
        devices = spec["template"]["spec"]["domain"]["devices"]
        devices.setdefault("tpm", {"enabled": False})  # windows.2k22 and .11 prefer a vTPM the source did not have
        return
    _fill(spec["template"]["spec"], values)
    spec["template"]["metadata"].setdefault("annotations", {})[INLINE] = name or "none"


def preferred(manifest: dict[str, Any]) -> str:
    """The preference a VirtualMachine was given, referenced or inline; "" when none."""
    spec = manifest["spec"]
    return (spec.get("preference") or {}).get("name") or spec["template"].get("metadata", {}).get(
        "annotations", {}
    ).get(INLINE, "")


def _fill(into: dict[str, Any], values: dict[str, Any]) -> None:
    """Deep-merge ``values`` into ``into`` without replacing anything ``into`` sets, as KubeVirt applies preferences."""
    for key, value in values.items():
        if key not in into:
            into[key] = copy.deepcopy(value)
        elif isinstance(into[key], dict) and isinstance(value, dict):
            _fill(into[key], value)


def preference_for(guest_id: str, table: tuple[tuple[str, str], ...]) -> str | None:
    """The preference of the first row whose pattern matches the vSphere guest id; ``\\1`` in a name is the
    pattern's first group (``(r"^rhel(\\d+)_", r"rhel.\\1")``)."""
    for pattern, name in table:
        found = re.match(pattern, guest_id, re.IGNORECASE)
        if found:
            return found.expand(name)
    return None
