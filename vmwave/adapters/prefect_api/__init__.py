"""The one adapter that speaks to Prefect's API: Secret and Webhook blocks (``secrets``), global concurrency limits
and their leases (``slots``), the calendar of deployments and schedules (``calendar``), starting and watching wave
runs (``wave_runs``) and automations and events (``notifications``).

Flows and tasks use Prefect as their framework (flows, tasks, loggers, artifacts, futures, pausing for input); what
asks Prefect's server to keep or change something goes through here. ``tests/test_layers.py`` checks that nothing
else imports Prefect's client, blocks, events or automations.
"""
