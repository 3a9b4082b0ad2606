"""``dp backfill FLOW --from A --to B`` and ``dp partitions add FLOW KEY``: partitioned flows
through Dagster's GraphQL API (``dp_sensors.backfill``), as the UI's backfill dialog does.

``--wait`` follows the backfill with a live line (``cli.progress``): partitions done out of
those targeted, over every node of the flow; it exits 1 when a partition failed.
"""

from __future__ import annotations

import json
import sys

import click

from dp_sensors.cli import LOCATION_OPTION, TOKEN_OPTION, URL_OPTION, graphql_target


@click.command("backfill")
@click.argument("flow")
@click.option("--from", "start", default=None, help="First partition key of the range (e.g. 2026-01-01).")
@click.option("--to", "end", default=None, help="Last partition key of the range, included.")
@click.option("--partition", "partitions", multiple=True, help="A partition key instead of a range; repeatable.")
@click.option("--wait/--no-wait", default=True, show_default=True, help="Follow the backfill until it finishes.")
@click.option("--timeout", default=3600.0, show_default=True, help="Seconds to wait with --wait.")
@URL_OPTION
@TOKEN_OPTION
@LOCATION_OPTION
def backfill(
    flow: str,
    start: str | None,
    end: str | None,
    partitions: tuple[str, ...],
    wait: bool,
    timeout: float,
    url: str | None,
    token: str | None,
    location: str | None,
) -> None:
    """Backfill the partitions of FLOW from --from to --to (or each --partition) in Dagster."""
    from dp_assets.cli.progress import Progress
    from dp_sensors.backfill import BackfillProgress, backfill_progress, launch_backfill, wait_for_backfill
    from dp_sensors.launch import GraphQLClient, LaunchError

    url, token, location = graphql_target(url, token, location)
    with GraphQLClient(url, location=location, token=token) as client:
        try:
            backfill_id = launch_backfill(client, flow, start=start, end=end, partitions=partitions)
        except LaunchError as exc:
            raise click.ClickException(str(exc)) from None
        click.echo(json.dumps({"backfill_id": backfill_id, "flow": flow}))
        if not wait:
            return
        try:
            # the first answer gives the total: partitions of every node, fixed at launch
            first = backfill_progress(client, backfill_id)
            with Progress(f"backfill of {flow}", total=first.targeted or None) as progress:
                seen = {"done": 0}

                def show(now: BackfillProgress) -> None:
                    progress.advance(now.done - seen["done"], label=f"backfill of {flow}: {now.status.lower()}")
                    seen["done"] = now.done

                final = wait_for_backfill(client, backfill_id, timeout=timeout, on_progress=show)
        except LaunchError as exc:
            raise click.ClickException(str(exc)) from None
    failed_runs = sorted(run for run, status in final.runs.items() if status == "FAILURE")
    summary = {
        "backfill_id": backfill_id,
        "status": final.status,
        "partitions": final.targeted,
        "materialized": final.materialized,
        "failed": final.failed,
        "runs": len(final.runs),
    }
    click.echo(json.dumps(summary))
    if not final.succeeded:
        reason = final.error or (f"failed runs: {', '.join(failed_runs)}" if failed_runs else final.status)
        click.echo(f"backfill {backfill_id} of {flow} did not succeed: {reason}", err=True)
        sys.exit(1)


@click.group("partitions")
def partitions() -> None:
    """Dynamic partition keys of a flow with 'partitions: {type: dynamic}'."""


@partitions.command("add")
@click.argument("flow")
@click.argument("keys", nargs=-1, required=True)
@URL_OPTION
@TOKEN_OPTION
@LOCATION_OPTION
def add(flow: str, keys: tuple[str, ...], url: str | None, token: str | None, location: str | None) -> None:
    """Add KEYS to the dynamic partitions of FLOW (a key already there is left as it is)."""
    from dp_assets.spec.partitions import partition_key_problem
    from dp_sensors.backfill import add_dynamic_partition
    from dp_sensors.launch import GraphQLClient, LaunchError

    # All keys before any is added: Dagster stores what it is given, and a key with Dagster's
    # range separator or a control character would break ranges and the UI later.
    for key in keys:
        if (problem := partition_key_problem(key)) is not None:
            raise click.ClickException(f"flow '{flow}': partition key {key!r} refused, nothing added: {problem}")
    url, token, location = graphql_target(url, token, location)
    with GraphQLClient(url, location=location, token=token) as client:
        for key in keys:
            try:
                added = add_dynamic_partition(client, flow, key)
            except LaunchError as exc:
                raise click.ClickException(str(exc)) from None
            click.echo(json.dumps({"flow": flow, "partition": key, "added": added}))
