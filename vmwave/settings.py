"""Where the vCenter connection comes from: flags first, then VMWAVE_VCENTER_* variables."""

from __future__ import annotations

import os
from pathlib import Path

from vmwave.adapters.vsphere import VCenter
from vmwave.errors import InputError

ENV = {
    "url": "VMWAVE_VCENTER_URL", "user": "VMWAVE_VCENTER_USER", "password_file": "VMWAVE_VCENTER_PASSWORD_FILE",
    "secret_block": "VMWAVE_VCENTER_SECRET_BLOCK", "ca_file": "VMWAVE_VCENTER_CA",
    "thumbprint": "VMWAVE_VCENTER_THUMBPRINT",
}


def vcenter_target(url: str | None = None, user: str | None = None, password_file: str | None = None,
                   secret_block: str | None = None, ca_file: str | None = None, thumbprint: str | None = None,
                   insecure: bool = False) -> VCenter:
    given = {"url": url, "user": user, "password_file": password_file, "secret_block": secret_block,
             "ca_file": ca_file, "thumbprint": thumbprint}
    values = {k: v if v else os.environ.get(ENV[k]) or None for k, v in given.items()}
    for key in ("url", "user"):
        if not values[key]:
            raise InputError("vCenter connection", key, "is not set",
                             f"pass --{key} or set {ENV[key]} (for the lab: eval \"$(vmwave lab up)\")")
    if not values["password_file"] and not values["secret_block"]:
        raise InputError("vCenter connection", "password", "no password source",
                         f"set {ENV['password_file']} to a file holding it, or name a Prefect Secret block "
                         "with --secret-block; a password is never taken on the command line")
    return VCenter(url=values["url"], user=values["user"],
                   password_file=Path(values["password_file"]) if values["password_file"] else None,
                   secret_block=values["secret_block"],
                   ca_file=Path(values["ca_file"]) if values["ca_file"] else None,
                   thumbprint=values["thumbprint"], insecure=insecure)
