"""`vmwave cluster`: cluster-wide settings vmwave manages."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from vmwave.cli.common import app, err
from vmwave.errors import VmwaveError

cluster_app = typer.Typer(help="Cluster-wide settings vmwave manages.", no_args_is_help=True)
app.add_typer(cluster_app, name="cluster")


@cluster_app.command("migration-config")
def migration_config(
    apply_it: bool = typer.Option(False, "--apply", help="patch the KubeVirt CR instead of printing the patch"),
    kubeconfig: Optional[Path] = typer.Option(None, "--kubeconfig", help="kubeconfig [env VMWAVE_KUBECONFIG]"),
    parallel_per_cluster: int = typer.Option(10, min=1, help="live migrations at once in the cluster"),
    parallel_per_node: int = typer.Option(4, min=1, help="outbound live migrations at once per node"),
    bandwidth: str = typer.Option("1Gi", help="bandwidth per migration (a quantity per second)"),
) -> None:
    """The seed's live-migration settings for the KubeVirt CR, as a merge patch."""
    import yaml

    from vmwave.domain.manifests import migration_config as patch_for

    patch = patch_for(parallel_per_cluster, parallel_per_node, bandwidth)
    if not apply_it:
        print(yaml.safe_dump(patch, sort_keys=False), end="")
        return
    from vmwave.adapters.kubernetes import Cluster
    from vmwave.settings import Settings

    cluster = Cluster(Settings.load(kubeconfig=kubeconfig).need_kubeconfig())
    found = cluster.resource("kubevirt.io/v1", "KubeVirt").get().items
    if not found:
        raise VmwaveError("the cluster has no KubeVirt CR", "install KubeVirt first")
    cr = found[0].metadata
    cluster.patch("kubevirt.io/v1", "KubeVirt", cr.namespace, cr.name, patch)
    err.print(f"KubeVirt {cr.namespace}/{cr.name} patched with the migration settings")
