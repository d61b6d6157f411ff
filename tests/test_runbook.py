"""The runbook's failure table is the diagnosis table: every cause, its meaning and its fix, none missing."""

import re

from helpers import REPO
from vmwave.domain.diagnosis import CAUSES


def test_the_runbook_lists_every_cause_with_its_fix():
    rows = re.findall(
        r"^\| `([a-z0-9-]+)` \| (.+?) \| (.+?) \| (yes|no) \|$", (REPO / "docs/runbook.md").read_text(), re.M
    )
    assert [(cause, meaning, fix, retried == "yes") for cause, meaning, fix, retried in rows] == [
        (c.id, c.meaning, c.fix, c.transient) for c in CAUSES.values()
    ]


def test_a_connection_the_kubernetes_api_dropped_is_retried_not_unexpected():
    """The 2000-VM rehearsal met it: the API server closed a connection mid-step, and the VM failed 'unexpected'."""
    import http.client

    import urllib3

    from vmwave_tasks.job import classify

    dropped = urllib3.exceptions.ProtocolError(
        "Connection aborted.", http.client.RemoteDisconnected("Remote end closed connection without response")
    )
    assert classify(dropped) == ("cluster-unreachable", True)
    assert classify(ValueError("a bug")) == ("unexpected", False)


def test_the_runbook_lists_the_vcenter_privileges_each_step_needs():
    from vmwave.domain.preflight import PRIVILEGES

    rows = re.findall(
        r"^\| ([a-z][a-z() -]+) \| (VirtualMachine|Datastore|HostSystem) \| (`.+`) \|$",
        (REPO / "docs/runbook.md").read_text(),
        re.M,
    )
    assert [(step, on, tuple(re.findall(r"`([^`]+)`", privs))) for step, on, privs in rows] == [
        (step, on, privs) for step, (on, privs) in PRIVILEGES.items()
    ]
