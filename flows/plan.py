"""Flow `plan_migration`: inventory vCenter, classify, cut waves, write the plan file.

Parameters name where secrets are (a password file or a Prefect Secret
block), never the secrets themselves.
"""

from __future__ import annotations

from typing import Any

from prefect import flow

from vmwave.adapters.files import load_maps, load_policy
from vmwave.settings import Settings
from vmwave_tasks.inventory import read_vcenter_inventory
from vmwave_tasks.plan import build_plan_document, publish_summary


@flow(name="plan-migration", log_prints=True)
def plan_migration(out: str = "plan.yaml", rules: str | None = None, maps: str | None = None,
                   vcenter_url: str | None = None, user: str | None = None, password_file: str | None = None,
                   secret_block: str | None = None, ca_file: str | None = None) -> dict[str, Any]:
    """Read every VM from vCenter, classify it, cut the estate into waves and write the plan to ``out``."""
    settings = Settings.load(maps=maps, vcenter={"url": vcenter_url, "user": user, "password_file": password_file,
                                                 "secret_block": secret_block, "ca_file": ca_file})
    policy, mapping = load_policy(rules), load_maps(settings.maps)  # bad files fail before vCenter is asked
    target = settings.need_vcenter()
    records = read_vcenter_inventory(target)
    kubeconfig = settings.need_kubeconfig() if settings.kubeconfig else None
    doc = build_plan_document(records, policy, mapping, target.url, out, settings.disable_plugins, kubeconfig)
    summary = publish_summary(doc)
    print(f"{summary['vms']} VMs planned in {len(summary['waves'])} waves, written to {out}")
    return summary


if __name__ == "__main__":
    plan_migration()
