"""``dp launch``, ``dp retry-failed`` and ``dp events``.

Mounted by ``dp_assets.cli.COMMANDS`` and imported only when one of them runs. ``dp status`` and
``dp webhook serve`` read published flows from the store, so they live above, in
``dp_assets/cli/triggers.py``.
"""

from __future__ import annotations

import json
import re
import sys
import uuid
from typing import Any

import click

from dp_sensors.events.cli import events_group as events  # noqa: F401 - mounted as `dp events`
from dp_sensors.launch import DEFAULT_GRAPHQL_URL
from dp_sensors.triggers.dead_letters import RETRY_ITEMS_TAG
from dp_sensors.triggers.policy import PARENT_RUN_TAG, TASK_TAG, TRIGGER_TAG

GRAPHQL_URL_ENV = "DP_DAGSTER_GRAPHQL_URL"
#: The run tags that say which partition(s) a run covers (Dagster's).
PARTITION_TAGS = ("dagster/partition", "dagster/asset_partition_range_start", "dagster/asset_partition_range_end")

URL_OPTION = click.option(
    "--url",
    default=None,
    help=f"Dagster GraphQL endpoint [env {GRAPHQL_URL_ENV}; default: {DEFAULT_GRAPHQL_URL}].",
)
TOKEN_OPTION = click.option(
    "--token",
    default=None,
    help="Bearer token for the authenticating proxy in front of the webserver [env DP_DAGSTER_TOKEN].",
)
LOCATION_OPTION = click.option(
    "--location",
    default=None,
    help="Code location name [env DP_CODE_LOCATION; default: the one that holds the flow].",
)


def graphql_target(url: str | None, token: str | None, location: str | None) -> tuple[str, str | None, str | None]:
    """The options given, else the settings (``DP_DAGSTER_GRAPHQL_URL``, ``DP_DAGSTER_TOKEN``,
    ``DP_CODE_LOCATION``), else the defaults."""
    from dp_settings import load

    settings = load()
    dagster = settings.dagster
    return (
        url or dagster.graphql_url or DEFAULT_GRAPHQL_URL,
        token or (dagster.token.get_secret_value() if dagster.token else None),
        location or settings.code_location,
    )


def _parse_value(raw: str) -> Any:
    """``k=v`` values are JSON when they parse as JSON (``5``, ``true``, ``[1]``), else strings
    (also text Python's JSON reader gives up on: nesting too deep, an integer of thousands of digits)."""
    try:
        return json.loads(raw)
    except (ValueError, RecursionError):  # JSONDecodeError is a ValueError
        return raw


#: What a flow param may be called (``dp_assets.spec.fields.ParamName``); any other key is refused
#: here, shown quoted, so that an error naming it stays one line whatever it holds.
PARAM_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]*")


def launch_params(params: tuple[str, ...], params_json: str | None) -> dict[str, Any]:
    """A flow's params from ``--params-json`` (one JSON object) and ``--param KEY=VALUE``s."""
    values: dict[str, Any] = {}
    if params_json:
        try:
            values = json.loads(params_json)
        except json.JSONDecodeError as exc:
            raise click.BadParameter(f"not valid JSON: {exc}", param_hint="--params-json") from None
        except (ValueError, RecursionError) as exc:  # an integer too long, nesting too deep
            reason = "nested too deep" if isinstance(exc, RecursionError) else str(exc).splitlines()[0]
            raise click.BadParameter(f"cannot be read: {reason}", param_hint="--params-json") from None
        if not isinstance(values, dict):
            raise click.BadParameter("must be a JSON object", param_hint="--params-json")
        _check_names(values, "--params-json")
    values.update(_check_names(_pairs(params, "--param"), "--param"))
    return values


def _check_names(values: dict[str, Any], what: str) -> dict[str, Any]:
    for key in values:
        if not PARAM_NAME.fullmatch(key):
            raise click.BadParameter(
                f"{_quoted(key)} is not a param name (a letter, then letters, digits or _)", param_hint=what
            )
    return values


def _quoted(text: str, limit: int = 60) -> str:
    shown = json.dumps(text)  # control characters and newlines escaped: one line
    return shown if len(shown) <= limit else shown[: limit - 4] + '..."'


def _pairs(items: tuple[str, ...], what: str) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"{_quoted(item)} is not KEY=VALUE", param_hint=what)
        values[key] = raw if what == "--tag" else _parse_value(raw)
    return values


@click.command()
@click.argument("flow")
@click.option("--param", "-p", "params", multiple=True, help="KEY=VALUE (JSON or text); repeatable.")
@click.option("--params-json", default=None, help="All params as one JSON object.")
@click.option("--tag", "tags", multiple=True, help="Run tag KEY=VALUE; repeatable.")
@click.option("--task-id", default=None, help="The chain's task id (default: a new one).")
@click.option("--partition", default=None, help="The partition to run, for a flow with 'partitions:'.")
@click.option(
    "--wait/--no-wait",
    default=False,
    help="Wait for the run to finish; exit 1 unless it succeeded, naming the failing node and its error.",
)
@click.option("--timeout", default=3600.0, show_default=True, help="Seconds to wait with --wait.")
@URL_OPTION
@TOKEN_OPTION
@LOCATION_OPTION
def launch(
    flow: str,
    params: tuple[str, ...],
    params_json: str | None,
    tags: tuple[str, ...],
    task_id: str | None,
    partition: str | None,
    wait: bool,
    timeout: float,
    url: str,
    token: str | None,
    location: str | None,
) -> None:
    """Launch FLOW through Dagster's GraphQL API with its params as run config."""
    from dp_sensors.launch import GraphQLClient, LaunchError

    values = launch_params(params, params_json)
    run_tags = {TRIGGER_TAG: "cli", TASK_TAG: task_id or uuid.uuid4().hex, **_pairs(tags, "--tag")}
    url, token, location = graphql_target(url, token, location)
    with GraphQLClient(url, location=location, token=token) as client:
        try:
            run_id = client.launch_run(flow, values, run_tags, partition=partition)
        except LaunchError as exc:
            raise click.ClickException(str(exc)) from None
        click.echo(json.dumps({"run_id": run_id, "flow": flow, "task_id": run_tags[TASK_TAG]}))
        if wait:
            try:
                status = client.wait_for_run(run_id, timeout=timeout)
            except LaunchError as exc:
                raise click.ClickException(str(exc)) from None
            if status == "FAILURE":
                error = _failure_of(client, run_id)
                click.echo(f"run {run_id[:8]} of {flow} FAILED: {error}", err=True)
                click.echo(json.dumps({"run_id": run_id, "status": status, "error": error}))
            else:
                click.echo(json.dumps({"run_id": run_id, "status": status}))
            if status != "SUCCESS":
                sys.exit(1)


def _failure_of(client: Any, run_id: str) -> str:
    """The failing node and its error (``GraphQLClient.run_failure``), or why it is not known."""
    from dp_sensors.launch import LaunchError

    try:
        return client.run_failure(run_id)
    except LaunchError as exc:
        return f"(its error could not be read: {exc})"


@click.command("retry-failed")
@click.argument("run_id")
@click.option("--dry-run", is_flag=True, help="Only list the failed items.")
@URL_OPTION
@TOKEN_OPTION
@LOCATION_OPTION
def retry_failed(run_id: str, dry_run: bool, url: str, token: str | None, location: str | None) -> None:
    """Re-run the failed ForEach items of RUN_ID, not the items that succeeded.

    Launches the flow again with RUN_ID's params and the tag dp/retry_items=RUN_ID; ForEach
    nodes of that run take only the items recorded as failed in RUN_ID (docs/triggers.md).
    RUN_ID may be its first characters (the 8 the UI shows) when no other run shares them.
    """
    import dagster as dg

    from dp_instance.run_ids import RunIdError, resolve_run_id
    from dp_sensors.launch import GraphQLClient, LaunchError
    from dp_sensors.triggers.dead_letters import failed_items_of

    with dg.DagsterInstance.get() as instance:
        try:
            run_id = resolve_run_id(instance, run_id)
        except RunIdError as exc:
            raise click.ClickException(str(exc)) from None
        run = instance.get_run_by_id(run_id)
        if run is None:
            raise click.ClickException(f"no run {run_id} in the Dagster instance of DAGSTER_HOME")
        failed = failed_items_of(instance, run_id)
    if not failed:
        raise click.ClickException(
            f"run {run_id} of flow '{run.job_name}' recorded no failed ForEach items; "
            "to re-run failed nodes use 're-execute from failure' in the UI"
        )
    for node_id, items in failed.items():
        for item in items:
            click.echo(json.dumps({"for_each": node_id, **item}, default=str))
    if dry_run:
        return
    tags = {
        RETRY_ITEMS_TAG: run_id,
        PARENT_RUN_TAG: run_id,
        TRIGGER_TAG: "retry",
        TASK_TAG: run.tags.get(TASK_TAG) or run_id,
    }
    url, token, location = graphql_target(url, token, location)
    with GraphQLClient(url, location=location, token=token) as client:
        try:
            # a partitioned run's config is per step already: the same partition, as given
            tags.update({k: v for k, v in run.tags.items() if k in PARTITION_TAGS})
            new_run = client.launch_run(run.job_name, run.run_config or {}, tags)
        except LaunchError as exc:
            raise click.ClickException(str(exc)) from None
    click.echo(json.dumps({"run_id": new_run, "flow": run.job_name, "retry_of": run_id}))
