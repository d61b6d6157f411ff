"""Background lab processes: start one, wait until it says it is ready, stop it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Callable


class LabError(Exception):
    """The lab could not do what was asked; the message says why and what to do."""


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie child of ours counts as gone
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False


def wait_for(condition: Callable[[], bool], deadline: float, poll: float = 0.05) -> bool:
    """Poll ``condition`` until it is true or the monotonic ``deadline`` passes."""
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(poll)
    return bool(condition())


def spawn(
    name: str,
    argv: list[str],
    state: Path,
    timeout: float,
    on_wait: Callable[[], None] | None = None,
    env: dict | None = None,
) -> dict:
    """Start ``argv`` detached, logging to STATE/NAME.log; return STATE/NAME.ready.json once it appears."""
    ready = state / f"{name}.ready.json"
    ready.unlink(missing_ok=True)
    log_path = state / f"{name}.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True, env=env
        )
    (state / f"{name}.pid").write_text(str(proc.pid))

    def done() -> bool:
        if on_wait:
            on_wait()
        return ready.exists() or proc.poll() is not None

    finished = wait_for(done, time.monotonic() + timeout)
    if not ready.exists():
        if not finished:
            proc.kill()
        proc.wait()
        why = "exited" if finished else f"did not start within {timeout:.0f}s"
        tail = log_path.read_text(errors="replace")[-2000:]
        raise LabError(f"the lab {name} {why} (log: {log_path}):\n{tail}")
    return json.loads(ready.read_text())


def read_ready(state: Path, name: str) -> dict | None:
    """The ready file of a process that still runs, or None."""
    try:
        info = json.loads((state / f"{name}.ready.json").read_text())
    except (OSError, ValueError):
        return None
    return info if alive(info["pid"]) else None


def stop(state: Path, name: str, timeout: float = 15.0) -> bool:
    """Stop STATE/NAME.pid; True if it was running."""
    try:
        pid = int((state / f"{name}.pid").read_text())
    except (OSError, ValueError):
        return False
    (state / f"{name}.ready.json").unlink(missing_ok=True)
    if not alive(pid):
        return False
    os.kill(pid, signal.SIGTERM)
    if not wait_for(lambda: not alive(pid), time.monotonic() + timeout):
        os.kill(pid, signal.SIGKILL)
    return True
