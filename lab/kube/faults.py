"""Failures on purpose, as a rehearsal plants them: what goes wrong for which source VM.

``STATE/faults.json`` maps a source VM's instance UUID (the ``vmwave.io/source-uuid`` label vmwave puts on every
object it makes for the VM) to one of:

- ``agent-never``: its guest agent never connects (the seed's "guest agent not connected");
- ``unreachable``: it runs and its agent answers, but nothing reaches its ports (a NAD on the wrong VLAN);
- ``conversion-fails``: its conversion Pod exits 1 as virt-v2v-in-place does when it finds no guest;
- ``import-stalls``: its DataVolumes stop at ImportInProgress and never move again (a datastore that stalls).

The file is read again when it changes, so a running lab takes new faults.
"""

from __future__ import annotations

import json
from pathlib import Path

KINDS = ("agent-never", "unreachable", "conversion-fails", "import-stalls")
SOURCE_UUID = "vmwave.io/source-uuid"


class Faults:
    def __init__(self, state: Path):
        self.path = state / "faults.json"
        self._seen: float | None = None
        self._by_uuid: dict[str, str] = {}

    def of(self, obj: dict | None) -> str:
        """The fault planted for the source VM ``obj`` (a Kubernetes object) was made for; "" for none."""
        uuid = (((obj or {}).get("metadata") or {}).get("labels") or {}).get(SOURCE_UUID, "")
        if not uuid:
            return ""
        try:
            changed = self.path.stat().st_mtime
        except OSError:
            return ""
        if changed != self._seen:
            found = json.loads(self.path.read_text())
            self._by_uuid = {str(k): str(v) for k, v in found.items() if v in KINDS}
            self._seen = changed
        return self._by_uuid.get(uuid, "")
