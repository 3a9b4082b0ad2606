"""``dp status``, ``dp webhook serve`` and ``dp dispatch``: the trigger commands that read published flows.

Both need the params and triggers of the flows in the store, parsed with the spec's models
(``dp_assets/receiver.py``), so they live here rather than with the other trigger commands in
``dp_sensors/cli.py`` (dp_sensors never imports dp_assets). Mounted by ``dp_assets.cli.COMMANDS``.
"""

from __future__ import annotations

import json

import click

from dp_sensors.cli import GRAPHQL_URL_ENV
from dp_sensors.launch import DEFAULT_GRAPHQL_URL
from dp_sensors.webhook.app import DEFAULT_MAX_BODY_BYTES
from dp_sensors.webhook.cli import DEFAULT_PORT


@click.command()
@click.argument("task_id")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def status(task_id: str, as_json: bool) -> None:
    """Every run of a chain (tag dp/task_id, or the id of its first run) and its overall state.

    Reads the Dagster instance of DAGSTER_HOME and the flow store (for the links of the chain).
    The first run's id may be given by its first characters (the 8 the UI shows).
    """
    import dagster as dg

    from dp_assets.receiver import default_flow_catalog
    from dp_instance.run_ids import AmbiguousRunId, RunIdError, resolve_run_id
    from dp_sensors.chains import chain_status

    catalog = default_flow_catalog()
    with dg.DagsterInstance.get() as instance:
        try:
            result = chain_status(instance, task_id, catalog.downstream)
        except LookupError as unknown:
            # Not a task id: the first characters of the chain's first run?
            try:
                run_id = resolve_run_id(instance, task_id)
            except AmbiguousRunId as exc:
                raise click.ClickException(str(exc)) from None
            except RunIdError:
                raise click.ClickException(str(unknown)) from None
            result = chain_status(instance, run_id, catalog.downstream)
    if as_json:
        click.echo(json.dumps(result.as_dict(), indent=2))
        return
    click.echo(f"task {result.task_id}: {result.state}")
    for run in result.runs:
        note = " (retried)" if run.superseded else ""
        started = run.created_at.strftime("%Y-%m-%d %H:%M:%S") if run.created_at else ""
        click.echo(f"  {started}  {run.flow_id:30} {run.status:10} {run.run_id}{note}")
    for flow_id in result.waiting_for:
        click.echo(f"  {'':19}  {flow_id:30} {'(next)':10}")


@click.group("webhook")
def webhook() -> None:
    """The webhook and launch receiver."""


@webhook.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to bind.")
@click.option("--port", default=DEFAULT_PORT, show_default=True, type=int)
@click.option(
    "--max-body-bytes",
    default=DEFAULT_MAX_BODY_BYTES,
    show_default=True,
    type=int,
    help="Larger bodies are refused with 413.",
)
@click.option("--events-url", default=None, help="Event bus URL [env DP_EVENTS_URL; default: the flow store].")
@click.option(
    "--launches-url", default=None, help="Database of the launch ledger [env DP_LAUNCHES_URL; default: the flow store]."
)
@click.option(
    "--dagster-url",
    default=None,
    help=f"Dagster GraphQL endpoint for POST /flows/FLOW/runs [env {GRAPHQL_URL_ENV}; default: "
    f"{DEFAULT_GRAPHQL_URL}]; '' turns launches off.",
)
@click.option("--log-level", default="info", show_default=True)
def serve(
    host: str,
    port: int,
    max_body_bytes: int,
    events_url: str | None,
    launches_url: str | None,
    dagster_url: str | None,
    log_level: str,
) -> None:
    """Receive webhooks (POST /hooks/FLOW) and idempotent launches (POST /flows/FLOW/runs).

    Webhooks are taken for flows whose event trigger lists 'webhook.FLOW'; launches for every
    published flow. Tokens come from DP_WEBHOOK_TOKEN_<FLOW_ID> or DP_WEBHOOK_TOKEN; without one
    every request is refused.
    """
    from dp_assets.receiver import serve_receiver
    from dp_settings import load

    settings = load()  # the receiver's settings, read once here and passed down
    if dagster_url is None:
        dagster_url = settings.dagster.graphql_url or DEFAULT_GRAPHQL_URL
    serve_receiver(
        host,
        port,
        events_url=events_url,
        launches_url=launches_url,
        dagster_url=dagster_url or None,
        max_body_bytes=max_body_bytes,
        log_level=log_level,
        settings=settings,
    )


@click.command()
@click.option("--events-url", default=None, help="Event bus URL [env DP_EVENTS_URL; default: the flow store].")
@click.option(
    "--dagster-url",
    default=None,
    help=f"Dagster GraphQL endpoint the runs are launched through [env {GRAPHQL_URL_ENV}; default: "
    f"{DEFAULT_GRAPHQL_URL}].",
)
@click.option(
    "--heartbeat-file",
    default=None,
    type=click.Path(dir_okay=False),
    help="Touched after every batch or idle second: a liveness probe checks its age.",
)
@click.option("--log-level", default="info", show_default=True)
def dispatch(events_url: str | None, dagster_url: str | None, heartbeat_file: str | None, log_level: str) -> None:
    """Start the runs of event triggers as events arrive, until stopped (docs/events.md).

    Follows the event bus (Redis consumer group, PostgreSQL LISTEN, SQLite polling) from the
    moment it first starts; the event sensors stay as the fallback, and an event gives one run
    whichever of them starts it. Stops on SIGTERM or Ctrl-C after the batch in hand.
    """
    import logging
    import signal
    import threading
    from pathlib import Path

    from dp_assets.receiver import event_targets
    from dp_resources.store import FlowStore
    from dp_sensors.events.dispatcher import Dispatcher
    from dp_sensors.events.dispatcher_followers import GraphQLEventLauncher, follower_for
    from dp_sensors.events.factory import event_bus_from_url
    from dp_sensors.launch import GraphQLClient
    from dp_settings import load

    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(name)s %(levelname)s %(message)s")
    settings = load()
    store = FlowStore(settings.store_url())
    store.upgrade()
    bus = event_bus_from_url(events_url or settings.events_bus_url())
    bus.ensure_schema()
    token = settings.dagster.token
    client = GraphQLClient(
        dagster_url or settings.dagster.graphql_url or DEFAULT_GRAPHQL_URL,
        location=settings.code_location,
        token=token.get_secret_value() if token else None,
    )
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    dispatcher = Dispatcher(bus, follower_for(bus), lambda: event_targets(store), GraphQLEventLauncher(client))
    click.echo(f"dp dispatch: following {bus!r}, launching through {client.url}", err=True)
    heartbeat = (lambda: Path(heartbeat_file).touch()) if heartbeat_file else None
    try:
        dispatcher.run(stop, heartbeat=heartbeat)
    finally:
        dispatcher.close()
        client.close()
        bus.close()
