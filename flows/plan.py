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
def plan_migration(
    out: str = "plan.yaml",
    rules: str | None = None,
    maps: str | None = None,
    vcenter_url: str | None = None,
    user: str | None = None,
    password_file: str | None = None,
    secret_block: str | None = None,
    ca_file: str | None = None,
) -> dict[str, Any]:
    """Read every VM from vCenter, classify it, cut the estate into waves and write the plan to ``out``.

    Args:
        out: where the plan file is written (relative: in the run's working directory)
        rules: class rules, groups, waves and smoke checks YAML [the built-in rules]
        maps: storage and network maps file [VMWAVE_MAPS]
        vcenter_url: vCenter's URL, e.g. https://vcenter.example/sdk [VMWAVE_VCENTER_URL]
        user: the vCenter user [VMWAVE_VCENTER_USER]
        password_file: a file holding the vCenter password, never the password [VMWAVE_VCENTER_PASSWORD_FILE]
        secret_block: the Prefect Secret block holding the vCenter password [VMWAVE_VCENTER_SECRET_BLOCK]
        ca_file: the CA bundle that signed vCenter's certificate [VMWAVE_VCENTER_CA]
    """
    settings = Settings.load(
        maps=maps,
        vcenter={
            "url": vcenter_url,
            "user": user,
            "password_file": password_file,
            "secret_block": secret_block,
            "ca_file": ca_file,
        },
    )
    policy, mapping = (
        load_policy(rules, limit=settings.max_file_bytes),
        load_maps(settings.maps, settings.max_file_bytes),
    )  # bad files fail before vCenter is asked
    target = settings.need_vcenter()
    records = read_vcenter_inventory(target)
    kubeconfig = settings.need_kubeconfig() if settings.kubeconfig else None
    doc = build_plan_document(records, policy, mapping, target.url, out, settings.disable_plugins, kubeconfig)
    summary = publish_summary(doc)
    print(f"{summary['vms']} VMs planned in {len(summary['waves'])} waves, written to {out}")
    return summary


if __name__ == "__main__":
    plan_migration()
