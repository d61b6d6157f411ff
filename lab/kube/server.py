"""The lab Kubernetes API over HTTPS: discovery, CRUD, patches, server-side apply, watch.

Errors are Kubernetes ``Status`` bodies with the codes the real API server
uses, so the official client raises the same ``ApiException``s it would.
"""

from __future__ import annotations

import asyncio
import copy
import json
import re
import secrets
from pathlib import Path
from typing import Any, Awaitable, Callable

import yaml
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from vmwave_lab.kube import quota, rbac
from vmwave_lab.kube.patch import ApplyConflict, PatchError, apply, json_patch, merge_patch
from vmwave_lab.kube.resources import BY_PATH, RESOURCES, Resource, groups
from vmwave_lab.kube.selectors import SelectorError, field_selector, label_selector
from vmwave_lab.kube.store import Gone, Store

_NAME = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")
REASONS = {
    400: "BadRequest",
    401: "Unauthorized",
    403: "Forbidden",
    404: "NotFound",
    405: "MethodNotAllowed",
    409: "Conflict",
    410: "Expired",
    415: "UnsupportedMediaType",
    422: "Invalid",
}


def _apply_body(body: bytes):
    """An apply patch: YAML, which clients send as JSON. Read JSON as JSON (as the API server's YAML-to-JSON
    converter does): PyYAML would split an escaped surrogate pair (an emoji in a name) into two lone halves."""
    try:
        return json.loads(body)
    except ValueError:
        return yaml.safe_load(body)


class ApiError(Exception):
    def __init__(self, code: int, message: str, reason: str | None = None, details: dict | None = None):
        super().__init__(message)
        self.code, self.message, self.reason, self.details = code, message, reason or REASONS[code], details


def status(code: int, message: str, reason: str, details: dict | None = None) -> dict:
    body = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure" if code >= 400 else "Success",
        "message": message,
        "reason": reason,
        "code": code,
    }
    if details:
        body["details"] = details
    return body


def not_found(r: Resource, name: str) -> ApiError:
    return ApiError(
        404,
        f'{r.plural}.{r.group or "core"} "{name}" not found'.replace(".core", ""),
        "NotFound",
        {"name": name, "group": r.group, "kind": r.plural},
    )


class Api:
    """Request handling over one Store; controllers call the same methods in-process."""

    def __init__(self, store: Store, tokens: dict[str, str], audit: Path | None = None):
        self.store = store
        self.audit = audit  # one JSON line per service-account request: what RBAC was asked, and its answer
        self.tokens = tokens  # token -> "admin" | "viewer" | "system:serviceaccount:NS:NAME" (minted, see rbac)
        # virtual resources (UploadTokenRequest) answer at create time and are not stored
        self.on_create: dict[str, Callable[[dict], dict]] = {}
        # read-only subresources served by controllers, e.g. ("pods", "log") for `kubectl logs`
        self.subresources: dict[tuple[str, str], Callable[[str, str, dict], Awaitable[Response]]] = {}

    # ---- writes shared by HTTP and the simulated controllers ----

    def create(self, r: Resource, ns: str, body: dict, dry_run: bool = False) -> dict:
        if not isinstance(body, dict):
            raise ApiError(400, "the body must be a JSON object")
        if body.get("kind") not in (None, r.kind) or body.get("apiVersion") not in (None, r.api_version):
            raise ApiError(
                400, f"the object is a {body.get('apiVersion')}/{body.get('kind')}, not a {r.api_version}/{r.kind}"
            )
        obj = copy.deepcopy(body)
        obj["kind"], obj["apiVersion"] = r.kind, r.api_version
        meta = obj.setdefault("metadata", {})
        if not meta.get("name") and meta.get("generateName"):
            meta["name"] = meta["generateName"] + secrets.token_hex(3)[:5]
        name = meta.get("name", "")
        if not name:
            raise ApiError(
                422,
                f"{r.kind} is invalid: metadata.name: Required value: name or generateName is required",
                details={"kind": r.kind, "causes": [{"field": "metadata.name", "reason": "FieldValueRequired"}]},
            )
        if not _NAME.match(name) or len(name) > 253:
            raise ApiError(
                422,
                f'{r.kind} "{name}" is invalid: metadata.name: Invalid value: "{name}": a lowercase '
                "RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.'",
                details={
                    "name": name,
                    "kind": r.kind,
                    "causes": [{"field": "metadata.name", "reason": "FieldValueInvalid"}],
                },
            )
        if r.namespaced:
            if meta.get("namespace") not in (None, ns):
                raise ApiError(
                    400, "the namespace of the provided object does not match the namespace sent on the request"
                )
            meta["namespace"] = ns
            if self.store.get(BY_PATH[("", "v1", "namespaces")], "", ns) is None:
                raise ApiError(404, f'namespaces "{ns}" not found', "NotFound", {"name": ns, "kind": "namespaces"})
        else:
            meta.pop("namespace", None)
        if self.store.get(r, ns if r.namespaced else "", name) is not None:
            raise ApiError(
                409,
                f'{r.plural}.{r.group} "{name}" already exists'.replace(". ", " "),
                "AlreadyExists",
                {"name": name, "group": r.group, "kind": r.plural},
            )
        if r.status and r.kind not in ("Namespace", "Node"):
            obj.pop("status", None)
        if r.kind == "Namespace":
            obj["status"] = {"phase": "Active"}
        try:
            quota.admit(self.store, r, ns, obj)  # admission runs for a dry run too: its answer is the same
        except quota.Exceeded as exc:
            raise ApiError(403, str(exc), "Forbidden", {"name": name, "kind": r.plural}) from None
        if r.key in self.on_create:
            return self.on_create[r.key](obj)
        if dry_run:
            return obj
        return self.store.create(r, obj)

    def current(self, r: Resource, ns: str, name: str) -> dict:
        obj = self.store.get(r, ns if r.namespaced else "", name)
        if obj is None:
            raise not_found(r, name)
        return obj

    def view(self, r: Resource, obj: dict) -> dict:
        """An object as a read answers it: a ResourceQuota with the usage its controller would have recorded."""
        return quota.with_status(self.store, obj) if r.kind == "ResourceQuota" else obj

    def replace(
        self, r: Resource, ns: str, name: str, body: dict, subresource: str = "", dry_run: bool = False
    ) -> dict:
        live = self.current(r, ns, name)
        if not isinstance(body, dict) or body.get("metadata", {}).get("name", name) != name:
            raise ApiError(400, "the name of the object does not match the name on the URL")
        wanted = body.get("metadata", {}).get("resourceVersion")
        if wanted and wanted != live["metadata"]["resourceVersion"]:
            raise ApiError(
                409,
                f'Operation cannot be fulfilled on {r.plural}.{r.group} "{name}": the object has been '
                "modified; please apply your changes to the latest version and try again",
                "Conflict",
                {"name": name, "group": r.group, "kind": r.plural},
            )
        obj = copy.deepcopy(body)
        obj["kind"], obj["apiVersion"] = r.kind, r.api_version
        obj["metadata"]["name"] = name
        if r.namespaced:
            obj["metadata"]["namespace"] = ns
        if subresource == "status":  # only status changes through /status
            live["status"] = obj.get("status", {})
            obj = live
        elif r.status:  # and never through the main resource
            if "status" in live:
                obj["status"] = live["status"]
            else:
                obj.pop("status", None)
        if dry_run:
            return obj
        unchanged = {**obj, "metadata": {**obj["metadata"], "resourceVersion": live["metadata"]["resourceVersion"]}}
        if unchanged == live:  # a no-op write keeps its resourceVersion, as on a real API server
            return live
        return self.store.update(r, obj)

    def patch(
        self, r: Resource, ns: str, name: str, content_type: str, body: bytes, params: dict, subresource: str = ""
    ) -> tuple[int, dict]:
        ctype = content_type.split(";")[0].strip()
        try:
            patch = _apply_body(body) if ctype == "application/apply-patch+yaml" else json.loads(body or b"null")
        except (ValueError, yaml.YAMLError) as exc:
            raise ApiError(400, f"the patch is not valid: {exc}") from None
        live = self.store.get(r, ns if r.namespaced else "", name)
        try:
            if ctype == "application/apply-patch+yaml":
                manager = params.get("fieldManager")
                if not manager:
                    raise ApiError(422, "PATCH requests with apply-patch must have a fieldManager")
                if not isinstance(patch, dict):
                    raise ApiError(400, "an apply patch is a mapping")
                result = apply(live, patch, manager, str(params.get("force")).lower() == "true")
                if live is None:
                    result.setdefault("metadata", {})["name"] = name
                    return 201, self.create(r, ns, result, params.get("dryRun") == "All")
            elif live is None:
                raise not_found(r, name)
            elif ctype == "application/json-patch+json":
                result = json_patch(live, patch)
            elif ctype in ("application/merge-patch+json", "application/strategic-merge-patch+json"):
                result = merge_patch(live, patch)
            else:
                raise ApiError(415, f"the content type {ctype!r} is not a supported patch type")
        except ApplyConflict as exc:
            raise ApiError(
                409,
                f"Apply failed with {len(exc.conflicts)} conflict(s): {exc}",
                "Conflict",
                {
                    "causes": [
                        {"reason": "FieldManagerConflict", "message": f'conflict with "{m}"', "field": p}
                        for m, p in exc.conflicts
                    ]
                },
            ) from None
        except PatchError as exc:
            raise ApiError(422, str(exc)) from None
        result.setdefault("metadata", {})["resourceVersion"] = live["metadata"]["resourceVersion"]
        if subresource == "status" or ctype != "application/apply-patch+yaml":
            return 200, self.replace(r, ns, name, result, subresource, params.get("dryRun") == "All")
        return 200, self.replace(r, ns, name, result, "", params.get("dryRun") == "All")

    def delete(self, r: Resource, ns: str, name: str, orphan: bool = False) -> dict:
        obj = self.current(r, ns, name)
        if r.kind == "Namespace":
            for other in RESOURCES:
                if other.namespaced:
                    for item in list(self.store.list(other, name)):
                        self.delete(other, name, item["metadata"]["name"])
        removed = self.store.delete(r, ns if r.namespaced else "", name)
        if not orphan:  # background cascading deletion of owned objects
            for dep_r, dep in self.store.dependents(obj["metadata"]["uid"]):
                if self.store.get(dep_r, dep["metadata"].get("namespace", ""), dep["metadata"]["name"]):
                    self.delete(dep_r, dep["metadata"].get("namespace", ""), dep["metadata"]["name"])
        return removed

    def set_status(self, r: Resource, ns: str, name: str, mutate: Callable[[dict], None]) -> dict | None:
        """For controllers: change an object's status in place (None if it is gone)."""
        obj = self.store.get(r, ns, name)
        if obj is None:
            return None
        status = obj.setdefault("status", {})
        before = copy.deepcopy(status)
        mutate(status)
        return obj if status == before else self.store.update(r, obj)

    # ---- HTTP ----

    def discovery(self, parts: list[str]) -> dict | None:
        if parts == ["api"]:
            return {"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": []}
        if parts == ["apis"]:
            return {
                "kind": "APIGroupList",
                "apiVersion": "v1",
                "groups": [
                    {
                        "name": g,
                        "versions": [{"groupVersion": f"{g}/{v}", "version": v} for v in vs],
                        "preferredVersion": {"groupVersion": f"{g}/{vs[0]}", "version": vs[0]},
                    }
                    for g, vs in groups().items()
                ],
            }
        if parts == ["version"]:
            return {
                "major": "1",
                "minor": "31",
                "gitVersion": "v1.31.0-vmwave-lab",
                "gitCommit": "lab",
                "gitTreeState": "clean",
                "buildDate": "2026-01-01T00:00:00Z",
                "goVersion": "none",
                "compiler": "python",
                "platform": "linux/amd64",
            }
        gv = (
            ("", "v1")
            if parts == ["api", "v1"]
            else (parts[1], parts[2])
            if len(parts) == 3 and parts[0] == "apis"
            else None
        )
        if gv is None:
            return None
        served = [r for r in RESOURCES if (r.group, r.version) == gv]
        if not served:
            return None
        listing = []
        verbs = ["create", "delete", "get", "list", "patch", "update", "watch"]
        for r in served:
            listing.append(
                {
                    "name": r.plural,
                    "singularName": r.kind.lower(),
                    "namespaced": r.namespaced,
                    "kind": r.kind,
                    "verbs": verbs,
                    "shortNames": list(r.short),
                }
            )
            for plural, sub in self.subresources:
                if plural == r.plural:
                    listing.append(
                        {
                            "name": f"{r.plural}/{sub}",
                            "singularName": "",
                            "namespaced": r.namespaced,
                            "kind": r.kind,
                            "verbs": ["get"],
                        }
                    )
            if r.status:
                listing.append(
                    {
                        "name": f"{r.plural}/status",
                        "singularName": "",
                        "namespaced": r.namespaced,
                        "kind": r.kind,
                        "verbs": ["get", "patch", "update"],
                    }
                )
        return {
            "kind": "APIResourceList",
            "apiVersion": "v1",
            "groupVersion": "/".join(p for p in gv if p),
            "resources": listing,
        }

    @staticmethod
    def locate(parts: list[str]) -> tuple[Resource, str | None, str, str]:
        """(resource, namespace or None for all, name, subresource) from a URL path."""
        if parts[:2] == ["api", "v1"]:
            group, version, rest = "", "v1", parts[2:]
        elif parts[:1] == ["apis"] and len(parts) >= 4:
            group, version, rest = parts[1], parts[2], parts[3:]
        else:
            raise ApiError(404, "the server could not find the requested resource")
        ns = None
        if len(rest) >= 3 and rest[0] == "namespaces" and (group, version, rest[2]) in BY_PATH:
            ns, rest = rest[1], rest[2:]
        r = BY_PATH.get((group, version, rest[0])) if rest else None
        if r is None or len(rest) > 3:
            raise ApiError(404, "the server could not find the requested resource")
        return r, ns, rest[1] if len(rest) > 1 else "", rest[2] if len(rest) > 2 else ""

    async def handle(self, request: Request) -> Response:
        try:
            return await self._handle(request)
        except ApiError as exc:
            return JSONResponse(status(exc.code, exc.message, exc.reason, exc.details), status_code=exc.code)

    async def _handle(self, request: Request) -> Response:
        role = self.tokens.get(request.headers.get("authorization", "").removeprefix("Bearer ").strip())
        if role is None:
            raise ApiError(401, "Unauthorized")
        parts = [p for p in request.url.path.split("/") if p]
        if request.method == "GET" and (found := self.discovery(parts)) is not None:
            return JSONResponse(found)
        r, ns, name, sub = self.locate(parts)
        params = dict(request.query_params)
        if rbac.service_account(role):
            verb = rbac.verb(request.method, name, params)
            if verb == "patch" and not sub and self.store.get(r, ns or "", name) is None:
                verb = "create"  # a server-side apply that creates the object needs create, as in Kubernetes
            granted = rbac.allowed(self.store, role, verb, r, sub, ns or "", name)
            if self.audit:
                with self.audit.open("a") as log:
                    log.write(
                        json.dumps(
                            {
                                "user": role,
                                "verb": verb,
                                "group": r.group,
                                "resource": r.plural,
                                "subresource": sub,
                                "namespace": ns or "",
                                "allowed": granted,
                            }
                        )
                        + "\n"
                    )
            if not granted:
                raise ApiError(
                    403,
                    rbac.forbidden(role, verb, r, sub, ns or "", name),
                    "Forbidden",
                    {"name": name, "group": r.group, "kind": r.plural},
                )
        if request.method == "POST" and (r.plural, sub) == ("serviceaccounts", "token") and name:
            account = self.current(r, ns or "", name)
            return JSONResponse(rbac.token_request(account, self.tokens, await _json(request)), status_code=201)
        if request.method == "GET" and (r.plural, sub) in self.subresources and name:
            return await self.subresources[(r.plural, sub)](ns or "", name, dict(request.query_params))
        if sub not in ("", "status"):
            raise ApiError(404, "the server could not find the requested resource")
        if role == "viewer" and request.method != "GET":
            raise ApiError(403, f"{r.plural}.{r.group} is forbidden: the lab viewer token may only read", "Forbidden")
        if r.namespaced and ns is None and name:
            raise ApiError(404, "the server could not find the requested resource")
        scope = ns if r.namespaced else ""
        dry = params.get("dryRun") == "All"
        if request.method == "GET" and not name:
            return await self.list_or_watch(r, ns if r.namespaced else None, params)
        if request.method == "GET":
            return JSONResponse(self.view(r, self.current(r, scope, name)))
        if request.method == "POST" and not name:
            return JSONResponse(self.create(r, scope, await _json(request), dry), status_code=201)
        if request.method == "PUT" and name:
            return JSONResponse(self.replace(r, scope, name, await _json(request), sub, dry))
        if request.method == "PATCH" and name:
            code, obj = self.patch(
                r, scope, name, request.headers.get("content-type", ""), await request.body(), params, sub
            )
            return JSONResponse(obj, status_code=code)
        if request.method == "DELETE" and name:
            body = await request.body()
            options = json.loads(body) if body.strip() else {}
            orphan = (options.get("propagationPolicy") or params.get("propagationPolicy")) == "Orphan"
            removed = self.current(r, scope, name) if dry else self.delete(r, scope, name, orphan)
            return JSONResponse(
                {
                    "kind": "Status",
                    "apiVersion": "v1",
                    "metadata": {},
                    "status": "Success",
                    "details": {"name": name, "group": r.group, "kind": r.plural, "uid": removed["metadata"]["uid"]},
                }
            )
        raise ApiError(405, f"{request.method} is not supported here")

    async def list_or_watch(self, r: Resource, ns: str | None, params: dict) -> Response:
        try:
            labels, fields = label_selector(params.get("labelSelector")), field_selector(params.get("fieldSelector"))
        except SelectorError as exc:
            raise ApiError(400, str(exc)) from None
        wanted = lambda o: (ns is None or o["metadata"].get("namespace") == ns) and labels(o) and fields(o)  # noqa: E731
        if params.get("watch") in ("true", "1"):
            return self.watch(r, wanted, params)
        items = [self.view(r, o) for o in self.store.list(r, ns) if wanted(o)]
        limit, start = int(params.get("limit") or 0), int(params.get("continue") or 0)
        meta: dict[str, Any] = {"resourceVersion": str(self.store.rv)}
        if limit and start + limit < len(items):
            meta["continue"] = str(start + limit)
            meta["remainingItemCount"] = len(items) - start - limit
        items = items[start : start + limit] if limit else items[start:]
        return JSONResponse({"kind": f"{r.kind}List", "apiVersion": r.api_version, "metadata": meta, "items": items})

    def watch(self, r: Resource, wanted: Callable[[dict], bool], params: dict) -> Response:
        since = params.get("resourceVersion")
        queue = self.store.subscribe(r)
        try:
            if since and since != "0":
                backlog = self.store.events_since(r, int(since))
            else:  # no version: the current state as ADDED, then changes
                backlog = [(self.store.rv, "ADDED", o) for o in self.store.list(r, None)]
        except Gone as exc:
            self.store.unsubscribe(r, queue)
            raise ApiError(410, str(exc), "Expired") from None
        timeout = float(params.get("timeoutSeconds") or 1800)

        async def stream():
            loop = asyncio.get_running_loop()
            deadline = loop.time() + timeout
            last = int(since or 0)
            try:
                for rv, kind, obj in backlog:
                    last = max(last, rv)
                    if wanted(obj):
                        yield json.dumps({"type": kind, "object": obj}).encode() + b"\n"
                while (left := deadline - loop.time()) > 0:
                    try:
                        rv, kind, obj = await asyncio.wait_for(queue.get(), left)
                    except asyncio.TimeoutError:
                        break
                    if rv > last and wanted(obj):
                        last = rv
                        yield json.dumps({"type": kind, "object": obj}).encode() + b"\n"
            finally:
                self.store.unsubscribe(r, queue)

        return StreamingResponse(stream(), media_type="application/json")


async def _json(request: Request) -> Any:
    try:
        return json.loads(await request.body())
    except ValueError as exc:
        raise ApiError(400, f"the body is not valid JSON: {exc}") from None


def app(api: Api, extra: list[Route] = ()) -> Starlette:
    return Starlette(
        routes=[*extra, Route("/{path:path}", api.handle, methods=["GET", "POST", "PUT", "PATCH", "DELETE"])]
    )
