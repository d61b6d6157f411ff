"""Notifications through Prefect: automations on the wave runs, each calling a webhook block.

Prefect's server watches the runs' events, so nothing of vmwave has to be running for a message to go out:
- a wave run (``migrate-wave``) ends Failed: the message names the wave, the VMs that did not succeed and
  where its report is (the run's state message says all three);
- a manual (P5) VM's run (``migrate-vm``, named ``WAVE-VM``) is Paused, waiting for a person's approval;
- a window ended with VMs not cut over (vmwave's ``vmwave.wave.window-missed`` event, with the VMs and report);
- a wave run stayed Running longer than its steps' timeouts allow (a proactive trigger: no end seen in time).

The payloads are Slack-compatible JSON (``{"text": ...}``) rendered by the server with Jinja; the webhook's URL,
which holds the channel's token, lives only in the block (a secret field), never in an automation.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any
from uuid import UUID

from prefect.blocks.webhook import Webhook
from prefect.client.orchestration import get_client
from prefect.events.actions import CallWebhook
from prefect.events.schemas.automations import AutomationCore, EventTrigger, Posture

from vmwave.errors import InputError

PREFIX = "vmwave: "  # every automation vmwave makes is named so; `notify set` replaces them all
WINDOW_MISSED = "vmwave.wave.window-missed"
ENDED = (
    "prefect.flow-run.Completed",
    "prefect.flow-run.Failed",
    "prefect.flow-run.Crashed",
    "prefect.flow-run.Cancelled",
    "prefect.flow-run.Paused",
)


def _slack(text: str) -> str:
    """A payload template whose rendering is one JSON object ``{"text": ...}``, however the values are quoted."""
    return '{"text": {{ (' + text + ") | tojson }}}"


def _flow(name: str) -> dict[str, str]:
    return {"prefect.resource.role": "flow", "prefect.resource.name": name}


def automations(block: UUID, running_longer_than: float) -> list[AutomationCore]:
    """What `vmwave notify set` puts on the server: one automation per thing a platform team must hear of."""

    def call(text: str) -> list[CallWebhook]:
        return [CallWebhook(block_document_id=block, payload=_slack(text))]

    failed = (
        '"vmwave: wave run " ~ flow_run.name ~ " ended Failed: " ~ (flow_run.state.message or "no message") '
        '~ " (Prefect run " ~ flow_run.id ~ ")"'
    )
    paused = (
        '"vmwave: " ~ flow_run.name ~ " (wave-VM) waits for approval in the Prefect UI: resume it to go on '
        '(Prefect run " ~ flow_run.id ~ ")"'
    )
    missed = (
        '"vmwave: wave " ~ event.payload.wave ~ ": its window ended with " ~ event.payload.vms | length ~ '
        '" VM(s) not cut over: " ~ event.payload.vms | join(", ") ~ "; report: " ~ event.payload.report'
    )
    stuck = (
        '"vmwave: wave run " ~ flow_run.name ~ " has run longer than its steps\' timeouts allow ('
        + f"{running_longer_than:.0f}"
        + ' s) without ending: look at it in the Prefect UI (Prefect run " ~ '
        'flow_run.id ~ ")"'
    )

    def on(event: str, text: str, description: str, **match: Any) -> AutomationCore:
        """An automation that calls the webhook with ``text`` each time ``event`` happens to what ``match`` says."""
        trigger = EventTrigger(expect={event}, posture=Posture.Reactive, threshold=1, within=timedelta(0), **match)
        return AutomationCore(
            name=f"{PREFIX}{description}", description=description, trigger=trigger, actions=call(text)
        )

    too_long = EventTrigger(
        after={"prefect.flow-run.Running"},
        expect=set(ENDED),
        for_each={"prefect.resource.id"},
        match_related=_flow("migrate-wave"),
        posture=Posture.Proactive,
        threshold=1,
        within=timedelta(seconds=running_longer_than),
    )  # no end seen in time
    return [
        on("prefect.flow-run.Failed", failed, "a wave run ended Failed", match_related=_flow("migrate-wave")),
        on("prefect.flow-run.Paused", paused, "a P5 VM waits for approval", match_related=_flow("migrate-vm")),
        on(
            WINDOW_MISSED,
            missed,
            "a window ended with VMs not cut over",
            match={"prefect.resource.id": "vmwave.wave.*"},
        ),
        AutomationCore(
            name=f"{PREFIX}a wave run stayed Running past its steps' timeouts",
            description="a wave run stayed Running past its steps' timeouts",
            trigger=too_long,
            actions=call(stuck),
        ),
    ]


def set_notifications(block_name: str, running_longer_than: float, url: str | None = None) -> list[str]:
    """Replace vmwave's automations with ones calling the Webhook block ``block_name`` (made or updated from
    ``url`` when given); the names of those made."""
    return asyncio.run(_set(block_name, running_longer_than, url))


async def _set(block_name: str, running_longer_than: float, url: str | None) -> list[str]:
    if url is not None:
        await Webhook(url=url, headers={"Content-Type": "application/json"}).save(block_name, overwrite=True)
    try:
        block = await Webhook.load(block_name)
    except ValueError:
        raise InputError(
            "--webhook-block",
            block_name,
            "there is no Webhook block of that name",
            "create it: `vmwave notify set --webhook-block NAME --url-file FILE` (the URL in a file), "
            "or in the Prefect UI (Blocks, Webhook)",
        ) from None
    async with get_client() as client:
        for old in await client.read_automations():
            if old.name.startswith(PREFIX):
                await client.delete_automation(old.id)
        made = []
        for automation in automations(block._block_document_id, running_longer_than):
            await client.create_automation(automation)
            made.append(automation.name)
    return made


def emit_window_missed(wave: str, vms: list[str], report: str) -> Any:
    """Tell Prefect's server that a wave's window ended with ``vms`` not cut over (the automation sends it on)."""
    from prefect.events import emit_event

    return emit_event(
        event=WINDOW_MISSED,
        resource={"prefect.resource.id": f"vmwave.wave.{wave}", "prefect.resource.name": f"wave {wave}"},
        payload={"wave": wave, "vms": vms, "report": report},
    )
