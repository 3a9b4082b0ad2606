"""Triggers, events and the webhook receiver: how runs start.

- ``dp_sensors.triggers``: schedules and sensors built from a flow spec's triggers;
- ``dp_sensors.chains``: flow-to-flow chains and the status of a task (``dp status``);
- ``dp_sensors.notifications``: ``notify:`` as run-status sensors (webhook, e-mail);
- ``dp_sensors.launch``: Dagster GraphQL launches (``dp launch``, the webhook receiver);
- ``dp_sensors.events`` / ``dp_sensors.webhook``: the event bus and the HTTP receiver.

dp_sensors sits below dp_assets (docs/architecture.md): the compiler hands each builder here the
validated flow and its trigger (the spec's models, ``dp_assets.spec.model``, read by attribute),
and nothing here imports dp_assets. Nothing is imported here, so ``import dp_sensors`` stays cheap.
"""
