"""A Kubernetes cluster through the official client: idempotent apply, lookup by source labels, waits.

Objects are applied with server-side apply as field manager ``vmwave``, so a
rerun changes nothing that is already right and never duplicates an object.
Waits follow a watch from the object's resourceVersion until a condition
holds or the deadline passes. A wave's run opens one ``Cluster`` (``vmwave_tasks.clients.open_clients``): one
connection pool and one discovery for all its steps and threads.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Callable

import urllib3
from kubernetes import config as kube_config
from kubernetes.client import ApiClient, Configuration, CoreV1Api, VersionApi
from kubernetes.client.exceptions import ApiException
from kubernetes.dynamic import DynamicClient
from kubernetes.dynamic.exceptions import DynamicApiError, NotFoundError, ResourceNotFoundError

from vmwave.adapters.documents import read_yaml
from vmwave.domain.manifests import ANNOTATION_MIGRATED, LABEL_RUN, LABEL_UUID
from vmwave.domain.records import ClusterVM
from vmwave.errors import ConnectionFailed, InputError, TimedOut, VmwaveError

FIELD_MANAGER = "vmwave"
POOL_SIZE = 32  # connections kept per worker: every VM in flight watches an object
UNREACHABLE = "cluster-unreachable"  # causes in vmwave.domain.diagnosis
ABORT_CHECK_SECONDS = 5  # how soon a wait notices that its migration was cancelled


def connection_cause(exc: BaseException) -> str | None:
    """The diagnosis cause of a connection to the Kubernetes API that dropped or was refused mid-step (the
    client's urllib3 errors): a retry may well find the API server back; None for anything else."""
    return UNREACHABLE if isinstance(exc, urllib3.exceptions.HTTPError) else None


def _reason(exc: Exception) -> str:
    body = getattr(exc, "body", None)
    try:
        return json.loads(body).get("message") or str(exc)
    except (TypeError, ValueError):
        return getattr(exc, "reason", None) or str(exc)


def _renews_token(document: Any, context: str | None) -> bool:
    """Whether the context's user gets its token from a plugin (``exec``, ``auth-provider``), which expires.

    The client re-sets the kubeconfig's token and server before every request, for a static token too, and setting
    the server re-reads the proxy environment: 2 ms of CPU a request, a tenth of a wave's. A static token has nothing
    to renew, so its client skips that; anything unexpected keeps it."""
    try:
        name = context or document["current-context"]
        user = next(c["context"]["user"] for c in document["contexts"] if c["name"] == name)
        entry = next(u.get("user") or {} for u in document["users"] if u["name"] == user)
        return bool({"exec", "auth-provider"} & set(entry))
    except (TypeError, KeyError, AttributeError, StopIteration):
        return True


class Cluster:
    def __init__(self, kubeconfig: str | Path, context: str | None = None):
        path = Path(kubeconfig)
        if not path.is_file():
            raise InputError(
                str(path), "", "kubeconfig not found", "set VMWAVE_KUBECONFIG or --kubeconfig (lab: `vmwave lab up`)"
            )
        document = read_yaml(
            path, "kubeconfig", 4 << 20
        )  # bounded, UTF-8, no aliases: checked before the client parses it
        try:
            configuration = Configuration()
            kube_config.load_kube_config(str(path), context=context, client_configuration=configuration)
            configuration.connection_pool_maxsize = POOL_SIZE
            if not _renews_token(document, context):
                configuration.refresh_api_key_hook = None
            client = ApiClient(configuration)
            VersionApi(client).get_code()  # discovery may come from a cache: ask the server once
            self.dynamic = DynamicClient(client)
            self.core = CoreV1Api(client)
        except ApiException as exc:
            if exc.status == 401:
                raise ConnectionFailed(
                    "the Kubernetes API refused the kubeconfig's credentials",
                    "renew the token in the kubeconfig",
                    cause=UNREACHABLE,
                ) from None
            raise ConnectionFailed(
                f"the Kubernetes API answered {exc.status}: {_reason(exc)}", "check the kubeconfig", cause=UNREACHABLE
            ) from None
        except (kube_config.ConfigException, ValueError, TypeError, KeyError, AttributeError) as exc:
            raise InputError(
                str(path),
                "",
                f"is not a kubeconfig vmwave can use ({type(exc).__name__}: {exc})",
                "write it as `kubectl config view --raw` shows one (lab: `vmwave lab up`)",
            ) from None
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise ConnectionFailed(
                f"cannot reach the Kubernetes API in {path} ({exc})",
                "check the server address and that the cluster is up",
                cause=UNREACHABLE,
            ) from None

    def close(self) -> None:
        """Its connection pool closes."""
        self.dynamic.client.close()

    def resource(self, api_version: str, kind: str):
        try:
            return self.dynamic.resources.get(api_version=api_version, kind=kind)
        except ResourceNotFoundError:
            raise VmwaveError(
                f"the cluster does not serve {api_version} {kind}",
                "install the operator that provides it (KubeVirt, CDI or Multus)",
                cause="cluster-rejected",
            ) from None

    def apply(self, obj: dict[str, Any], force: bool = False) -> dict[str, Any]:
        """Create or update ``obj`` with server-side apply; a field another manager owns is a clear error."""
        r = self.resource(obj["apiVersion"], obj["kind"])
        meta = obj["metadata"]
        try:
            return self.dynamic.server_side_apply(
                r, body=obj, namespace=meta.get("namespace"), field_manager=FIELD_MANAGER, force_conflicts=force
            ).to_dict()
        except DynamicApiError as exc:
            where = f"{obj['kind']} {meta.get('namespace', '')}/{meta['name']}".replace(" /", " ")
            fix = (
                "another tool owns these fields; apply with force only if vmwave should take them over"
                if exc.status == 409
                else "fix the object and apply again"
            )
            raise VmwaveError(
                f"applying {where} failed ({exc.status}): {_reason(exc)}", fix, cause="cluster-rejected"
            ) from None

    def refusal(self, obj: dict[str, Any]) -> str | None:
        """Why the cluster would refuse ``obj`` (its validation, admission webhooks, quotas), asked with a
        server-side dry run that stores nothing; None when it would take it."""
        try:
            r = self.resource(obj["apiVersion"], obj["kind"])
            self.dynamic.server_side_apply(  # the answer unread: a ResourceInstance per object costs a wave's CPU
                r,
                body=obj,
                namespace=obj["metadata"].get("namespace"),
                field_manager=FIELD_MANAGER,
                dry_run="All",
                serialize=False,
            )
            return None
        except VmwaveError as exc:  # the kind is not served
            return exc.what
        except DynamicApiError as exc:
            return f"{exc.status}: {_reason(exc)}"

    def items(self, api_version: str, kind: str, namespace: str | None = None) -> list[dict[str, Any]]:
        """Every object of a kind (in ``namespace``, or in all), or [] when the cluster does not serve it; read as
        plain JSON: the client's ResourceInstance of 2,000 VMIs took a wave's preflight seconds of CPU."""
        try:
            found = self.resource(api_version, kind).get(namespace=namespace, serialize=False)
        except VmwaveError:
            return []
        return json.loads(found.data).get("items") or []

    def apply_owned(self, obj: dict[str, Any], run: str) -> dict[str, Any]:
        """Apply one of a VM's own objects for the run ``run`` (labelled so), never taking over one that exists
        and another run made (another ledger's, or no run's): that stops here, naming the object and its run."""
        meta = obj["metadata"]
        there = self.get(obj["apiVersion"], obj["kind"], meta.get("namespace"), meta["name"])
        owner = (((there or {}).get("metadata") or {}).get("labels") or {}).get(LABEL_RUN)
        if there is not None and owner != run:
            made = f"run {owner}" if owner else "something else than a vmwave run"
            raise VmwaveError(
                f"{obj['kind']} {meta.get('namespace', '')}/{meta['name']} already exists and was made by "
                f"{made}, not this run ({run}); nothing of it was changed",
                "if it is a migration done with another ledger, leave it or roll it back with that "
                "ledger (`vmwave rollback` with its VMWAVE_LEDGER); else give this VM another "
                "`target_name:` in the plan",
                cause="owned-by-another-run",
            )
        return self.apply({**obj, "metadata": {**meta, "labels": {**(meta.get("labels") or {}), LABEL_RUN: run}}})

    def volume_users(self, namespace: str, claims: list[str], but: str = "") -> list[str]:
        """The VirtualMachines (which start on them), running VMs (VirtualMachineInstances) and Pods, but the Pod
        ``but``, that use any of the PVCs ``claims``: as Kubernetes sees them, by their volumes."""
        wanted, users = set(claims), []
        for kind, spec_of in (
            ("VirtualMachine", lambda o: ((o.get("spec") or {}).get("template") or {}).get("spec")),
            ("VirtualMachineInstance", lambda o: o.get("spec")),
        ):
            for vm in self.find("kubevirt.io/v1", kind, namespace, {}):
                volumes = (spec_of(vm) or {}).get("volumes") or []
                if any(
                    ((v.get("dataVolume") or {}).get("name") or (v.get("persistentVolumeClaim") or {}).get("claimName"))
                    in wanted
                    for v in volumes
                ):
                    users.append(f"{kind} {namespace}/{vm['metadata']['name']}")
        for pod in self.find("v1", "Pod", namespace, {}):
            volumes = (pod.get("spec") or {}).get("volumes") or []
            if pod["metadata"]["name"] != but and any(
                (v.get("persistentVolumeClaim") or {}).get("claimName") in wanted for v in volumes
            ):
                users.append(f"Pod {namespace}/{pod['metadata']['name']}")
        return users

    def get(self, api_version: str, kind: str, namespace: str | None, name: str) -> dict[str, Any] | None:
        try:
            return self.resource(api_version, kind).get(name=name, namespace=namespace).to_dict()
        except NotFoundError:
            return None

    def virtual_machines(self) -> list[ClusterVM]:
        """Every VirtualMachine in the cluster, in every namespace, with its MACs and vmwave's source label."""
        found = []
        for vm in self.resource("kubevirt.io/v1", "VirtualMachine").get().to_dict().get("items") or []:
            meta = vm["metadata"]
            domain = (((vm.get("spec") or {}).get("template") or {}).get("spec") or {}).get("domain") or {}
            macs = tuple(
                i["macAddress"] for i in (domain.get("devices") or {}).get("interfaces") or () if i.get("macAddress")
            )
            found.append(
                ClusterVM(
                    meta.get("namespace", ""),
                    meta["name"],
                    macs,
                    (meta.get("labels") or {}).get(LABEL_UUID, ""),
                    (meta.get("annotations") or {}).get(ANNOTATION_MIGRATED, ""),
                )
            )
        return found

    def find(self, api_version: str, kind: str, namespace: str | None, labels: dict[str, str]) -> list[dict[str, Any]]:
        selector = ",".join(f"{k}={v}" for k, v in sorted(labels.items()))
        found = self.resource(api_version, kind).get(namespace=namespace, label_selector=selector)
        return [item.to_dict() for item in found.items]

    def patch(self, api_version: str, kind: str, namespace: str | None, name: str, patch: dict[str, Any]) -> dict:
        r = self.resource(api_version, kind)
        return self.dynamic.patch(
            r, body=patch, name=name, namespace=namespace, content_type="application/merge-patch+json"
        ).to_dict()

    def delete(self, api_version: str, kind: str, namespace: str | None, name: str) -> bool:
        try:
            self.resource(api_version, kind).delete(name=name, namespace=namespace)
            return True
        except NotFoundError:
            return False

    def pod_log(self, namespace: str, name: str, tail_lines: int = 200) -> str:
        """The last lines a pod's container printed, as `kubectl logs --tail` shows them ("" if there are none)."""
        try:
            return self.core.read_namespaced_pod_log(name, namespace, tail_lines=tail_lines)
        except ApiException as exc:
            if exc.status in (400, 404):  # not started yet, or gone
                return ""
            raise

    def wait_for(
        self,
        api_version: str,
        kind: str,
        namespace: str | None,
        name: str,
        done: Callable[[dict | None], bool],
        timeout: float,
        what: str,
        since: dict | None = None,
        abort: Callable[[], None] | None = None,
    ) -> dict | None:
        """Watch one object until ``done(obj)`` (obj None once deleted) or fail after ``timeout`` seconds.

        With ``since`` (the object as returned by a write), every state after that write is seen,
        not just the latest: progress on the way is not skipped. ``abort`` is called at least every
        ``ABORT_CHECK_SECONDS`` and may raise to stop the wait (a cancelled migration).
        """
        r = self.resource(api_version, kind)
        deadline = time.monotonic() + timeout
        current = since if since is not None else self.get(api_version, kind, namespace, name)
        while True:
            if done(current):
                return current
            if abort is not None:
                abort()
            left = deadline - time.monotonic()
            if left <= 0:
                state = (current or {}).get("status", {})
                raise TimedOut(
                    f"timed out after {timeout:.0f}s waiting for {kind} {namespace}/{name} to be {what}; "
                    f"last status: {json.dumps(state)[:400]}",
                    "see the object's conditions and events",
                )
            version = (current or {}).get("metadata", {}).get("resourceVersion")
            chunk = min(left, ABORT_CHECK_SECONDS) if abort is not None else left
            try:
                for event in self.dynamic.watch(
                    r,
                    namespace=namespace,
                    field_selector=f"metadata.name={name}",
                    resource_version=version,
                    timeout=max(1, int(chunk)),
                ):
                    current = None if event["type"] == "DELETED" else event["raw_object"]
                    if done(current):
                        return current
            except ApiException as exc:
                if exc.status != 410:
                    raise
                current = self.get(api_version, kind, namespace, name)  # history gone (an API restart): from now on


def cluster_vms(kubeconfig: Path | None) -> list[ClusterVM]:
    """The VMs already in the target cluster when a kubeconfig is configured, for the plan's clash checks; else none."""
    if kubeconfig is None:
        return []
    cluster = Cluster(kubeconfig)
    try:
        return cluster.virtual_machines()
    finally:
        cluster.close()
