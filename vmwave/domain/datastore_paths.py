"""Where a disk's bytes are on a datastore, and the vCenter URL that serves them.

A VMFS disk is a descriptor (``NAME.vmdk``) and its data file
(``NAME-flat.vmdk``, raw); vCenter serves any datastore file at
``/folder/<path>?dcPath=<datacenter>&dsName=<datastore>``.
"""

from __future__ import annotations

import re
from urllib.parse import quote, urlparse

from vmwave.errors import InputError

_PATH = re.compile(r"^\[(?P<ds>[^\]]+)\]\s*(?P<path>.+)$")


def split(datastore_path: str) -> tuple[str, str]:
    """``[ds-ssd-01] web-01/web-01_0.vmdk`` -> (``ds-ssd-01``, ``web-01/web-01_0.vmdk``)."""
    m = _PATH.match(datastore_path)
    if not m:
        raise InputError(
            "datastore path", "", f"{datastore_path!r} is not '[datastore] path'", "read it from the inventory"
        )
    return m.group("ds"), m.group("path")


def data_file(descriptor: str) -> str:
    """The data file of a flat disk, named as ESXi names it: ``web-01_0.vmdk`` -> ``web-01_0-flat.vmdk``."""
    return re.sub(r"\.vmdk$", "-flat.vmdk", descriptor)


def origin(url: str) -> str:
    """``https://vcenter:443/sdk`` -> ``https://vcenter:443``."""
    u = urlparse(url if "://" in url else f"https://{url}")
    return f"{u.scheme}://{u.netloc}"


def folder_url(vcenter_url: str, datacenter: str, datastore_path: str) -> str:
    """The URL of a datastore file on vCenter's file access."""
    datastore, path = split(datastore_path)
    return f"{origin(vcenter_url)}/folder/{quote(path)}?dcPath={quote(datacenter)}&dsName={quote(datastore)}"
