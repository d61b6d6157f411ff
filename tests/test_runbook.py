"""The runbook's failure table is the diagnosis table: every cause, its meaning and its fix, none missing."""

import re

from helpers import REPO
from vmwave.domain.diagnosis import CAUSES


def test_the_runbook_lists_every_cause_with_its_fix():
    rows = re.findall(r"^\| `([a-z0-9-]+)` \| (.+?) \| (.+?) \| (yes|no) \|$", (REPO / "docs/runbook.md").read_text(), re.M)
    assert [(cause, meaning, fix, retried == "yes") for cause, meaning, fix, retried in rows] == [
        (c.id, c.meaning, c.fix, c.transient) for c in CAUSES.values()]
