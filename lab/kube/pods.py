"""Pods and Jobs of the lab cluster, their containers run for real as processes on this machine.

The lab has no container runtime, so a container is its command run on the
host: its volumes are laid out under ``pods/<namespace>/<pod>/root`` (a PVC's
backing file as ``disk.img`` in a Filesystem mount or at its ``devicePath``
for Block, each ConfigMap key as a file) and every path under a mount point,
in the arguments, the environment and the ConfigMap files, is rewritten into
that root. Only images the lab knows run (config ``images``, by repository);
any other waits in ErrImagePull, as on a node that cannot pull it. Phases,
container states with exit codes, events, ``activeDeadlineSeconds`` and logs
(``kubectl logs``) are Kubernetes'; a Job makes Pods from its template until
one succeeds or ``backoffLimit`` failures.
"""

from __future__ import annotations

import asyncio
import os
import re
import secrets
import shutil
import signal
from pathlib import Path

from starlette.responses import PlainTextResponse, Response

from vmwave_lab.kube.controllers import R, condition, event
from vmwave_lab.kube.faults import Faults
from vmwave_lab.kube.server import Api, ApiError
from vmwave_lab.kube.store import now

DEFAULT_IMAGES = ("quay.io/kubev2v/forklift-virt-v2v", "registry.access.redhat.com/ubi9/ubi-minimal")


def _repository(image: str) -> str:
    name = image.split("@", 1)[0]
    return name.rsplit(":", 1)[0] if ":" in name.rsplit("/", 1)[-1] else name


class Pods:
    def __init__(self, api: Api, state: Path, config: dict):
        self.api, self.root, self.volumes = api, state / "pods", state / "volumes"
        self.faults = Faults(state)
        self.images = {_repository(i) for i in (config.get("images") or DEFAULT_IMAGES)}
        api.subresources[("pods", "log")] = self.log

    # ---- Pods ----

    def _status(self, ns: str, name: str, phase: str, state: dict, ready: bool = False, **extra) -> None:
        def mutate(status: dict) -> None:
            status.update(phase=phase, **extra)
            status.setdefault("startTime", now())
            pod = self.api.store.get(R["pods"], ns, name) or {"spec": {"containers": [{}]}}
            container = pod["spec"]["containers"][0]
            status["containerStatuses"] = [
                {
                    "name": container.get("name", ""),
                    "image": container.get("image", ""),
                    "ready": ready,
                    "restartCount": 0,
                    "state": state,
                }
            ]
            condition(status, "Ready", "True" if ready else "False")

        self.api.set_status(R["pods"], ns, name, mutate)

    async def reconcile(self, kind: str, pod: dict) -> None:
        ns, name = pod["metadata"]["namespace"], pod["metadata"]["name"]
        if kind == "DELETED":
            shutil.rmtree(self.root / ns / name, ignore_errors=True)
            (self.root / ns / f"{name}.log").unlink(missing_ok=True)
            return
        pod = self.api.store.get(R["pods"], ns, name)
        if pod is None or (pod.get("status") or {}).get("phase") in ("Running", "Succeeded", "Failed"):
            return
        container = pod["spec"]["containers"][0]
        if _repository(container.get("image", "")) not in self.images:
            message = (
                f'rpc error: failed to pull image "{container.get("image")}": not found in the lab '
                f"(it runs {', '.join(sorted(self.images))})"
            )
            self._status(ns, name, "Pending", {"waiting": {"reason": "ErrImagePull", "message": message}})
            event(self.api, pod, "Failed", message, "Warning")
            return
        try:
            root, paths = self._layout(ns, pod)
        except ApiError as exc:
            self._status(ns, name, "Pending", {"waiting": {"reason": "ContainerCreating"}})
            event(self.api, pod, "FailedMount", exc.message, "Warning")
            return
        await self._run(pod, container, root, paths)

    def _layout(self, ns: str, pod: dict) -> tuple[Path, dict[str, str]]:
        """The pod's root and each mount point's place in it, with the volumes put there."""
        root = self.root / ns / pod["metadata"]["name"] / "root"
        shutil.rmtree(root, ignore_errors=True)
        (root / "tmp").mkdir(parents=True)
        container = pod["spec"]["containers"][0]
        volumes = {v["name"]: v for v in pod["spec"].get("volumes") or []}
        paths: dict[str, str] = {}
        for mount in [*(container.get("volumeMounts") or []), *(container.get("volumeDevices") or [])]:
            volume = volumes.get(mount["name"])
            if volume is None:
                raise ApiError(422, f'volume "{mount["name"]}" is not defined in the pod')
            at = mount.get("mountPath") or mount["devicePath"]
            place = root / at.lstrip("/")
            paths[at] = str(place)
            if "configMap" in volume:
                cm = self.api.store.get(R["configmaps"], ns, volume["configMap"]["name"])
                if cm is None:
                    raise ApiError(404, f'configmap "{volume["configMap"]["name"]}" not found')
                place.mkdir(parents=True, exist_ok=True)
                for key, text in (cm.get("data") or {}).items():
                    (place / key).write_text(text)
            elif "persistentVolumeClaim" in volume:
                claim = volume["persistentVolumeClaim"]["claimName"]
                pvc = self.api.store.get(R["persistentvolumeclaims"], ns, claim)
                backing = self.volumes / ns / f"{claim}.img"
                if pvc is None or (pvc.get("status") or {}).get("phase") != "Bound" or not backing.exists():
                    raise ApiError(404, f'persistentvolumeclaim "{claim}" not found or not bound')
                link = place if "devicePath" in mount else place / "disk.img"
                link.parent.mkdir(parents=True, exist_ok=True)
                link.symlink_to(backing)
            else:
                place.mkdir(parents=True, exist_ok=True)  # emptyDir and the like: an empty folder
        for folder in list(paths.values()):
            for file in Path(folder).glob("*") if Path(folder).is_dir() else ():
                if file.is_file() and not file.is_symlink():
                    file.write_text(self._rewrite(file.read_text(), paths))
        return root, paths

    @staticmethod
    def _rewrite(text: str, paths: dict[str, str]) -> str:
        """Every path under a mount point, in one pass: a mount point where a path can start, then / or its end."""
        if not paths:
            return text
        points = "|".join(re.escape(at) for at in sorted(paths, key=len, reverse=True))
        return re.sub(rf"(?<![^\s\"'=:,(<>])({points})(?=/|$|[\s\"'<>),;])", lambda m: paths[m.group(1)], text)

    async def _run(self, pod: dict, container: dict, root: Path, paths: dict[str, str]) -> None:
        ns, name = pod["metadata"]["namespace"], pod["metadata"]["name"]
        argv = [self._rewrite(a, paths) for a in [*(container.get("command") or []), *(container.get("args") or [])]]
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(root / "tmp"),
            "TMPDIR": str(root / "tmp"),
            **{e["name"]: self._rewrite(str(e.get("value", "")), paths) for e in container.get("env") or []},
        }
        started = now()
        log = self.root / ns / f"{name}.log"
        if (
            self.faults.of(pod) == "conversion-fails"
            and (pod["metadata"].get("labels") or {}).get("app.kubernetes.io/component") == "guest-conversion"
        ):
            log.write_text(
                "virt-v2v-in-place: error: inspection could not detect the source guest (or physical "
                "machine). (planted by the lab's faults.json)\n"
            )
            self._finished(pod, 1, "Error", started)
            return
        try:
            with open(log, "wb") as out:
                process = await asyncio.create_subprocess_exec(
                    *argv, stdout=out, stderr=asyncio.subprocess.STDOUT, env=env, cwd=root, start_new_session=True
                )
        except OSError as exc:
            message = f"exec: {argv[0] if argv else ''!r}: {exc.strerror}"
            self._finished(pod, 128, "StartError", started, message)
            return
        self._status(ns, name, "Running", {"running": {"startedAt": started}}, ready=True)
        event(self.api, pod, "Started", f"Started container {container.get('name', '')}")
        try:
            code = await asyncio.wait_for(process.wait(), pod["spec"].get("activeDeadlineSeconds"))
        except asyncio.TimeoutError:
            _kill(process)
            self._finished(
                pod,
                await process.wait(),
                "DeadlineExceeded",
                started,
                "Pod was active on the node longer than the specified deadline",
            )
            return
        except asyncio.CancelledError:  # the pod was deleted
            _kill(process)
            raise
        self._finished(pod, code, "Completed" if code == 0 else "Error", started)

    def _finished(self, pod: dict, code: int, reason: str, started: str, message: str = "") -> None:
        ns, name = pod["metadata"]["namespace"], pod["metadata"]["name"]
        terminated = {"exitCode": code, "reason": reason, "startedAt": started, "finishedAt": now()}
        if message:
            terminated["message"] = message
        extra = {"reason": reason, "message": message} if reason in ("DeadlineExceeded",) else {}
        self._status(ns, name, "Succeeded" if code == 0 else "Failed", {"terminated": terminated}, **extra)
        event(
            self.api,
            pod,
            "Completed" if code == 0 else "BackOff",
            f"container exited with code {code}" + (f": {message}" if message else ""),
            "Normal" if code == 0 else "Warning",
        )

    async def log(self, ns: str, name: str, params: dict) -> Response:
        if self.api.store.get(R["pods"], ns, name) is None:
            raise ApiError(404, f'pods "{name}" not found', "NotFound")
        path = self.root / ns / f"{name}.log"
        if not path.exists():
            raise ApiError(400, f'container in pod "{name}" is waiting to start', "BadRequest")
        lines = path.read_text(errors="replace").splitlines(keepends=True)
        tail = int(params.get("tailLines") or 0)
        return PlainTextResponse("".join(lines[-tail:] if tail else lines))

    # ---- Jobs ----

    async def reconcile_job(self, kind: str, job: dict) -> None:
        """Keep one Pod running from the template until one succeeds or the failures pass backoffLimit."""
        if kind == "DELETED":
            return
        ns, name = job["metadata"]["namespace"], job["metadata"]["name"]
        while (job := self.api.store.get(R["jobs"], ns, name)) is not None:
            status = job.get("status") or {}
            if any(c["type"] in ("Complete", "Failed") and c["status"] == "True" for c in status.get("conditions", [])):
                return
            pods = [
                p
                for p in self.api.store.list(R["pods"], ns)
                if p["metadata"].get("labels", {}).get("controller-uid") == job["metadata"]["uid"]
            ]
            phases = [(p.get("status") or {}).get("phase", "Pending") for p in pods]
            succeeded, failed = phases.count("Succeeded"), phases.count("Failed")
            done = "Complete" if succeeded else "Failed" if failed > job["spec"].get("backoffLimit", 6) else ""

            def mutate(s: dict) -> None:
                s.update(
                    startTime=s.get("startTime") or now(),
                    active=len(phases) - succeeded - failed,
                    succeeded=succeeded,
                    failed=failed,
                )
                if done:
                    s["completionTime" if done == "Complete" else "failedTime"] = now()
                    condition(
                        s,
                        done,
                        "True",
                        "BackoffLimitExceeded" if done == "Failed" else "",
                        "Job has reached the specified backoff limit" if done == "Failed" else "",
                    )

            self.api.set_status(R["jobs"], ns, name, mutate)
            if done:
                return
            if len(phases) == succeeded + failed:
                self._job_pod(job)
            await asyncio.sleep(0.2)  # the lab's controller resync: a Job follows its pods' phases

    def _job_pod(self, job: dict) -> None:
        template = job["spec"]["template"]
        labels = {
            **(template.get("metadata") or {}).get("labels", {}),
            "job-name": job["metadata"]["name"],
            "controller-uid": job["metadata"]["uid"],
        }
        self.api.create(
            R["pods"],
            job["metadata"]["namespace"],
            {
                "metadata": {
                    "name": f"{job['metadata']['name']}-{secrets.token_hex(3)[:5]}",
                    "labels": labels,
                    "ownerReferences": [
                        {
                            "apiVersion": "batch/v1",
                            "kind": "Job",
                            "name": job["metadata"]["name"],
                            "uid": job["metadata"]["uid"],
                            "controller": True,
                        }
                    ],
                },
                "spec": {**template["spec"], "activeDeadlineSeconds": job["spec"].get("activeDeadlineSeconds")}
                if job["spec"].get("activeDeadlineSeconds")
                else template["spec"],
            },
        )


def _kill(process: asyncio.subprocess.Process) -> None:
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
