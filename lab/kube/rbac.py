"""RBAC for service-account tokens, authorized the way the Kubernetes API server does it.

The lab's admin and viewer tokens stay what they were (cluster-admin, and a
reader). A token minted for a ServiceAccount (`kubectl create token NAME`,
the TokenRequest API) acts as that account: it may do only what the Roles
and ClusterRoles bound to it grant, so a rule missing from the RBAC vmwave
ships fails a lab wave with the 403 a real cluster would answer.
"""

from __future__ import annotations

import secrets
from datetime import datetime, timedelta, timezone

from vmwave_lab.kube.resources import BY_KIND, Resource
from vmwave_lab.kube.store import Store

RBAC = "rbac.authorization.k8s.io/v1"
SA_PREFIX = "system:serviceaccount:"
_WRITES = {"POST": "create", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}


def verb(method: str, name: str, params: dict) -> str:
    if method != "GET":
        return _WRITES.get(method, method.lower())
    if name:
        return "get"
    return "watch" if params.get("watch") in ("true", "1") else "list"


def service_account(user: str) -> tuple[str, str] | None:
    """(namespace, name) of a service-account user, None for the lab's own admin and viewer."""
    if not user.startswith(SA_PREFIX):
        return None
    namespace, _, name = user.removeprefix(SA_PREFIX).partition(":")
    return namespace, name


def allowed(store: Store, user: str, verb: str, r: Resource, sub: str, ns: str, name: str) -> bool:
    """Whether a RoleBinding in ``ns`` or a ClusterRoleBinding grants ``user`` the request."""
    account = service_account(user)
    bindings = list(store.list(BY_KIND[(RBAC, "ClusterRoleBinding")], None))
    if ns:
        bindings += store.list(BY_KIND[(RBAC, "RoleBinding")], ns)
    resource = f"{r.plural}/{sub}" if sub else r.plural
    for binding in bindings:
        where = binding["metadata"].get("namespace", "")
        if not any(
            s.get("kind") == "ServiceAccount" and (s.get("namespace") or where, s.get("name")) == account
            for s in binding.get("subjects") or ()
        ):
            continue
        ref = binding.get("roleRef") or {}
        role = (
            store.get(
                BY_KIND[(RBAC, ref.get("kind", ""))],
                "" if ref.get("kind") == "ClusterRole" else where,
                ref.get("name", ""),
            )
            if (RBAC, ref.get("kind", "")) in BY_KIND
            else None
        )
        for rule in (role or {}).get("rules") or ():
            if (
                _has(rule.get("verbs"), verb)
                and _has(rule.get("apiGroups"), r.group)
                and _has(rule.get("resources"), resource)
                and (not rule.get("resourceNames") or name in rule["resourceNames"])
            ):
                return True
    return False


def _has(values: list | None, wanted: str) -> bool:
    return bool(values) and ("*" in values or wanted in values)


def forbidden(user: str, verb: str, r: Resource, sub: str, ns: str, name: str) -> str:
    """The API server's words for a refusal."""
    qualified = f"{r.plural}.{r.group}" if r.group else r.plural
    what = f'{qualified} "{name}"' if name else qualified
    resource = f"{r.plural}/{sub}" if sub else r.plural
    where = f' in the namespace "{ns}"' if ns else " at the cluster scope"
    return f'{what} is forbidden: User "{user}" cannot {verb} resource "{resource}" in API group "{r.group}"{where}'


def token_request(account: dict, tokens: dict[str, str], body: dict) -> dict:
    """Answer a TokenRequest for ``account``: a new bearer token that acts as it."""
    meta = account["metadata"]
    token = secrets.token_urlsafe(24)
    tokens[token] = f"{SA_PREFIX}{meta['namespace']}:{meta['name']}"
    seconds = int((body.get("spec") or {}).get("expirationSeconds") or 3600)
    expires = (datetime.now(timezone.utc) + timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {
        "kind": "TokenRequest",
        "apiVersion": "authentication.k8s.io/v1",
        "metadata": {"name": meta["name"], "namespace": meta["namespace"]},
        "spec": {"audiences": (body.get("spec") or {}).get("audiences") or [], "expirationSeconds": seconds},
        "status": {"token": token, "expirationTimestamp": expires},
    }
