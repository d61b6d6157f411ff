"""Flow `plan_migration`: inventory vCenter, classify, cut waves, write the plan file.

Parameters name where secrets are (a password file or a Prefect Secret
block), never the secrets themselves.
"""

from __future__ import annotations

from typing import Any

from prefect import flow

from vmwave.planning import load_maps, load_policy
from vmwave.settings import vcenter_target
from vmwave_tasks.inventory import read_vcenter_inventory
from vmwave_tasks.plan import build_plan_document, publish_summary


@flow(name="plan-migration", log_prints=True)
def plan_migration(out: str = "plan.yaml", rules: str | None = None, maps: str | None = None,
                   vcenter_url: str | None = None, user: str | None = None, password_file: str | None = None,
                   secret_block: str | None = None, ca_file: str | None = None) -> dict[str, Any]:
    target = vcenter_target(vcenter_url, user, password_file, secret_block, ca_file)
    load_policy(rules), load_maps(maps)  # a bad rules or maps file fails before vCenter is asked
    records = read_vcenter_inventory(target)
    doc = build_plan_document(records, rules, maps, target.url, out)
    summary = publish_summary(doc)
    print(f"{summary['vms']} VMs planned in {len(summary['waves'])} waves, written to {out}")
    return summary


if __name__ == "__main__":
    plan_migration()
