"""Credentials as Prefect Secret blocks: set from a file (never the command line), read back by a run.

A deployment's parameters name the blocks (`vcenter_secret_block`,
`kubeconfig_secret_block`), so a worker needs neither a password file nor a
kubeconfig of its own. The kubernetes client reads a kubeconfig from a file:
the run writes the block's text to a private file (mode 0600, in a directory
only its user can enter) and removes it when the run ends.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from vmwave.adapters.documents import read_secret, read_text
from vmwave.errors import ConnectionFailed, InputError

BLOCKS = {"vcenter": "vmwave-vcenter", "kubeconfig": "vmwave-kubeconfig"}  # what each is called unless named


def set_secret(name: str, source: Path, one_line: bool) -> None:
    """The file's text as the Secret block ``name``: a password (``one_line``, its line end dropped, as the
    password file is read) or a kubeconfig as it is."""
    from prefect.blocks.system import Secret

    text = read_secret(source, "password") if one_line else read_text(source, "kubeconfig")
    if not text.strip():
        raise InputError(str(source), "", "is empty", "put the secret in the file, then run this again")
    with _prefect_api(name):
        Secret(value=text).save(name, overwrite=True)


def load_secret(block: str, kind: str) -> str:
    """The text of the Secret block ``block``; ``kind`` (vcenter, kubeconfig) says how to create a missing one."""
    from prefect.blocks.system import Secret

    with _prefect_api(block):
        try:
            return Secret.load(block).get()
        except ValueError as exc:
            how = "--password-file FILE" if kind == "vcenter" else "--file KUBECONFIG"
            raise InputError(
                block,
                "",
                f"no Prefect Secret block of that name ({exc})",
                f"create it: vmwave secrets set {kind} {how} --name {block}",
            ) from None


@contextmanager
def _prefect_api(block: str) -> Iterator[None]:
    """Prefect's API that keeps the blocks, unreachable: one line with the fix, not a traceback."""
    import httpx

    try:
        yield
    except (httpx.HTTPError, OSError) as exc:
        from prefect.settings import PREFECT_API_URL

        raise ConnectionFailed(
            f"Prefect's API ({PREFECT_API_URL.value() or 'a local ephemeral server'}) cannot be "
            f"reached for the Secret block {block}: {exc}",
            "start it (`prefect server start`) or set PREFECT_API_URL to the one that runs",
            cause="unexpected",
        ) from None


@contextmanager
def kubeconfig_file(block: str | None) -> Iterator[Path | None]:
    """The kubeconfig held by the Secret block ``block`` as a private file for this run; None when no block."""
    if not block:
        yield None
        return
    text = load_secret(block, "kubeconfig")
    folder = Path(tempfile.mkdtemp(prefix="vmwave-kube-"))  # 0700
    path = folder / "kubeconfig"
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(text)
    try:
        yield path
    finally:
        shutil.rmtree(folder, ignore_errors=True)
