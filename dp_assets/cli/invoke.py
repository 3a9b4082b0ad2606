"""``dp invoke FLOW --param k=v``: run a flow through Dagster and print its result as JSON.

What ``POST /flows/{flow_id}/invoke`` answers, from the command line: the run is launched through
the webserver's GraphQL API (so it is an ordinary run, started by the instance's run launcher),
waited for, and its result nodes' kept outputs are printed (``dp_assets.invoke_results``). Exit 0
with the result, 1 when the run failed (the error names the failing node), 2 when the run did
not finish within the wait (the run id is printed: ``dp runs read RUN NODE`` later).
"""

from __future__ import annotations

import asyncio
import json
import sys
import uuid

import click

from dp_sensors.cli import LOCATION_OPTION, TOKEN_OPTION, URL_OPTION, graphql_target, launch_params
from dp_sensors.webhook.invoke import INVOKE_TRIGGER, answer, wait_finished

EXIT_FAILED, EXIT_NOT_FINISHED = 1, 2


@click.command()
@click.argument("flow")
@click.option("--param", "-p", "params", multiple=True, help="KEY=VALUE (JSON or text); repeatable.")
@click.option("--params-json", default=None, help="All params as one JSON object.")
@click.option("--partition", default=None, help="The partition to run, for a flow with 'partitions:'.")
@click.option(
    "--timeout",
    type=click.FloatRange(min=0),
    default=None,
    help="Seconds to wait for the result [default: DP_INVOKE_MAX_WAIT_SECONDS, else 60].",
)
@URL_OPTION
@TOKEN_OPTION
@LOCATION_OPTION
def invoke(
    flow: str,
    params: tuple[str, ...],
    params_json: str | None,
    partition: str | None,
    timeout: float | None,
    url: str | None,
    token: str | None,
    location: str | None,
) -> None:
    """Run FLOW with its params, wait for it and print its result nodes' outputs as JSON."""
    from dp_assets.invoke_results import PlatformInvokeBackend, ui_url_of
    from dp_resources.store import FlowStore
    from dp_sensors.launch import GraphQLClient, LaunchError
    from dp_sensors.triggers.policy import TASK_TAG, TRIGGER_TAG
    from dp_settings import load

    settings = load()
    values = launch_params(params, params_json)
    # The cap protects the receiver from callers holding requests open; here the caller waits
    # in its own process, so its --timeout is taken as given.
    wait = settings.invoke_wait_cap() if timeout is None else timeout
    url, token, location = graphql_target(url, token, location)
    store = FlowStore(settings.store_url())
    with GraphQLClient(url, location=location, token=token) as client:
        backend = PlatformInvokeBackend(
            store,
            client,
            outputs_base=settings.outputs_base(),
            max_rows=settings.invoke_row_limit(),
            ui_url=ui_url_of(settings.webserver_url, client.url),
        )
        try:
            tags = {TRIGGER_TAG: INVOKE_TRIGGER, TASK_TAG: uuid.uuid4().hex}
            run_id = client.launch_run(flow, values, tags, partition=partition)
            state = asyncio.run(wait_finished(backend, run_id, flow, wait))
            status, body = answer(backend, state)
        except LaunchError as exc:
            raise click.ClickException(str(exc)) from None
    click.echo(json.dumps(body, default=str))
    if status == 422:
        click.echo(f"run {run_id[:8]} of {flow} {state.status}: {body.get('error', body['detail'])}", err=True)
        sys.exit(EXIT_FAILED)
    if status == 202:
        click.echo(f"run {run_id[:8]} of {flow} is still {state.status} after {wait:g} s", err=True)
        sys.exit(EXIT_NOT_FINISHED)
