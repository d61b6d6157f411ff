"""Hooks around cutover: a Kubernetes Job the plan names, run to completion before the migration goes on.

A wave or a VM may name a ``pre_cutover`` hook (before the source is shut
down and copied, e.g. drain a load balancer or stop an application) and a
``post_boot`` hook (after the smoke checks, e.g. re-register in DNS or run
the application's own tests). Forklift's plan hooks are the model; here a
hook is an image and a command, and it learns which VM it is for from its
environment (``VMWAVE_VM``, ``VMWAVE_TARGET``, ``VMWAVE_NAMESPACE``,
``VMWAVE_WAVE``, ``VMWAVE_HOOK``)::

    hooks:
      pre_cutover: {image: registry.example/ops/drain:1, command: [/drain.sh], service_account: ops, deadline: 600}
"""

from __future__ import annotations

import re
from typing import Any

from vmwave.domain.manifests import source_labels
from vmwave.domain.names import is_subdomain, k8s_name
from vmwave.domain.records import SourceVM
from vmwave.domain.validate import Node

KINDS = ("pre_cutover", "post_boot")
COMPONENT = {"app.kubernetes.io/component": "vmwave-hook"}
IMAGE = re.compile(r"^[a-z0-9][a-z0-9._/:-]{0,254}(@sha256:[a-f0-9]{64})?$", re.IGNORECASE)  # no space, no shell
DEADLINE_SECONDS = 600


def parse_hooks(node: Node) -> dict[str, dict[str, Any]]:
    """A wave's or VM's ``hooks:``, each checked; {} when it names none."""
    hooks = node.child("hooks", {}).only(*KINDS)
    found = {}
    for kind in KINDS:
        if kind not in hooks.data:
            continue
        hook = hooks.child(kind).only("image", "command", "service_account", "deadline")
        command = [str(part) for part in hook.get("command", list)]
        if not command:
            raise hook.fail(
                "command", "is empty", "give the program and its arguments, e.g. [/bin/sh, -c, 'drain $VMWAVE_VM']"
            )
        deadline = hook.get("deadline", int, DEADLINE_SECONDS)
        if not 1 <= deadline <= 86400:
            raise hook.fail("deadline", f"{deadline} is out of range", "give 1-86400 seconds")
        image = hook.get("image", str)
        if not IMAGE.match(image):
            raise hook.fail(
                "image",
                f"{image!r} is not a container image reference",
                "write REGISTRY/NAME[:TAG][@sha256:DIGEST], e.g. registry.example/tools/drain:1.2",
            )
        account = hook.get("service_account", str, "")
        if account and not is_subdomain(account):
            raise hook.fail("service_account", f"{account!r} is not a ServiceAccount name", "use a Kubernetes name")
        if len(command) > 100 or sum(len(part) for part in command) > 65536:
            raise hook.fail("command", "is longer than a hook needs", "put a long script in the image, run it by name")
        found[kind] = {"image": image, "command": command, "service_account": account, "deadline": deadline}
    return found


KEEP_SECONDS = 7 * 86400  # a finished hook's Job (and its log) stays a week for `kubectl logs`, then goes


def hook_name(target: str, wave: str, kind: str) -> str:
    """One Job per VM, wave and hook: a rerun of the wave finds it (a hook runs once), another wave runs its own."""
    return k8s_name(f"{target}-{wave}-{kind.replace('_', '-')}", 63)


def hook_job(vm: SourceVM, target: str, wave: str, namespace: str, kind: str, hook: dict[str, Any]) -> dict[str, Any]:
    """The Job that runs ``hook`` once (no retry: a hook may not be safe to repeat), labelled for the rollback."""
    labels = {**source_labels(vm, wave), **COMPONENT}
    env = {
        "VMWAVE_VM": vm.name,
        "VMWAVE_TARGET": target,
        "VMWAVE_NAMESPACE": namespace,
        "VMWAVE_WAVE": wave,
        "VMWAVE_HOOK": kind,
    }
    pod: dict[str, Any] = {
        "restartPolicy": "Never",
        "containers": [
            {
                "name": "hook",
                "image": hook["image"],
                "command": list(hook["command"]),
                "env": [{"name": k, "value": v} for k, v in env.items()],
            }
        ],
    }
    if hook.get("service_account"):
        pod["serviceAccountName"] = hook["service_account"]
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": hook_name(target, wave, kind), "namespace": namespace, "labels": labels},
        "spec": {
            "backoffLimit": 0,
            "activeDeadlineSeconds": hook["deadline"],
            "ttlSecondsAfterFinished": KEEP_SECONDS,
            "template": {"metadata": {"labels": labels}, "spec": pod},
        },
    }
