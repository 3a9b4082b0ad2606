"""``dp runs``: list, show, read and prune stored run outputs (mounted into the ``dp`` CLI).

The Dagster instance (``DAGSTER_HOME``) supplies run status and start times; ``list``, ``show``
and ``read`` work without one, ``prune`` refuses to run without one because it must know which
runs are still in progress and which outputs are still the latest materialisations.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click


def _instance(required: bool):
    import dagster as dg

    from dp_settings import load

    if not load().dagster_home:
        if required:
            raise click.ClickException(
                "DAGSTER_HOME is not set: pruning needs the Dagster instance to know which runs "
                "are in progress and which outputs are still the latest"
            )
        return None
    return dg.DagsterInstance.get()


def _resolve(run_id: str, base: str | None, instance) -> str:
    """The whole id of a run given by a unique prefix (the 8 characters the UI shows), among the
    instance's runs and the runs stored under ``base``."""
    from dp_instance.run_ids import RunIdError, resolve_run_id

    def stored():
        from dp_io.retention import _stored_runs, open_store

        yield from _stored_runs(open_store(base))

    try:
        return resolve_run_id(instance, run_id, also=stored())
    except RunIdError as exc:
        raise click.ClickException(str(exc)) from None


def _size(n: int) -> str:
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{n} B"


base_option = click.option(
    "--base",
    default=None,
    help="Outputs folder or fsspec URL (default: DP_OUTPUTS_URL or DP_HOME/outputs).",
)


@click.group(name="runs")
def runs() -> None:
    """Stored outputs of runs: list, show, read, prune."""


@runs.command(name="list")
@click.argument("flow", required=False)
@base_option
def list_command(flow: str | None, base: str | None) -> None:
    """List stored runs, newest first (only those of FLOW when given)."""
    from dp_io.retention import list_runs

    summaries = list_runs(flow, base=base, instance=_instance(required=False))
    if not summaries:
        click.echo("no stored runs")
        return
    click.echo(f"{'RUN':36}  {'STATUS':9}  {'STARTED (UTC)':19}  {'OUTPUTS':>7}  {'SIZE':>10}  FLOWS")
    for s in summaries:
        started = s.started.strftime("%Y-%m-%d %H:%M:%S") if s.started else "-"
        click.echo(
            f"{s.run_id:36}  {(s.status or '-'):9}  {started:19}  {s.outputs:>7}  "
            f"{_size(s.bytes):>10}  {','.join(s.flows)}"
        )


@runs.command(name="show")
@click.argument("run_id")
@base_option
def show_command(run_id: str, base: str | None) -> None:
    """Show one run's stored outputs with format and size; a streamed output's parts below it.

    RUN_ID may be the first characters of the id (the 8 the UI shows), when no other run shares them."""
    from dp_io.errors import OutputNotFoundError
    from dp_io.retention import show_run

    instance = _instance(required=False)
    run_id = _resolve(run_id, base, instance)
    try:
        detail = show_run(run_id, base=base, instance=instance)
    except (OutputNotFoundError, ValueError) as exc:
        raise click.ClickException(str(exc)) from exc
    s = detail.summary
    click.echo(f"run {s.run_id}  status {s.status or '-'}  job {s.job_name or '-'}  {_size(s.bytes)}")
    for o in detail.outputs:
        node = o.node_id + (f"[{o.partition}]" if o.partition is not None else "")
        click.echo(f"  {o.flow_id}/{node:30}  {o.format:8}  {_size(o.bytes):>10}  {o.path}")
        for index, part in enumerate(o.parts):
            rows = "-" if part.get("rows") is None else f"{part['rows']} rows"
            click.echo(f"      part {index:<5}  {part['format']:8}  {_size(part['bytes']):>10}  {rows}")


@runs.command(name="read")
@click.argument("run_id")
@click.argument("node_id")
@click.option("--flow", "flow_id", default=None, help="Flow id, when the run has several.")
@click.option("--partition", default=None, help="Partition key of a partitioned output.")
@click.option(
    "--part",
    type=click.IntRange(min=0),
    default=None,
    help="Only this part (from 0) of a streamed output (`dp runs show` lists them).",
)
@click.option(
    "--out",
    "out",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Export to a file instead of printing: .csv, .parquet, .arrow/.feather, .json or .pkl.",
)
@click.option("--limit", default=20, show_default=True, help="Rows to print for a DataFrame.")
@base_option
def read_command(
    run_id: str,
    node_id: str,
    flow_id: str | None,
    partition: str | None,
    part: int | None,
    out: Path | None,
    limit: int,
    base: str | None,
) -> None:
    """Print or export the output NODE_ID stored by RUN_ID (whole, or one part with --part).

    NODE_ID may be written FLOW/NODE, as `dp runs show` lists it (then --flow is not needed).
    RUN_ID may be the first characters of the id (the 8 the UI shows), when no other run shares them."""
    from dp_io.errors import OutputNotFoundError
    from dp_io.retention import read_output

    named_flow, slash, named_node = node_id.partition("/")
    if slash:  # a node id has no '/': this is the asset key `dp runs show` prints
        if flow_id is not None and flow_id != named_flow:
            raise click.ClickException(f"{node_id} names flow {named_flow!r}, but --flow says {flow_id!r}")
        flow_id, node_id = named_flow, named_node
    run_id = _resolve(run_id, base, _instance(required=False))
    try:
        value = read_output(run_id, node_id, flow_id, partition=partition, part=part, base=base)
    except (OutputNotFoundError, ValueError) as exc:
        raise click.ClickException(str(exc)) from exc
    if out is None:
        _print_value(value, limit)
    else:
        export_value(value, out)
        click.echo(f"wrote {out}")


def _print_value(value: Any, limit: int) -> None:
    from dp_io.formats import is_dataframe, is_plain_json

    if is_dataframe(value):
        click.echo(value.head(limit).to_string())
        click.echo(f"[{len(value)} rows x {len(value.columns)} columns]")
    elif is_plain_json(value):
        import json

        click.echo(json.dumps(value, indent=2, ensure_ascii=False))
    else:
        click.echo(repr(value))


def export_value(value: Any, out: Path) -> None:
    """Write a value to ``out`` in the format its suffix names."""
    import json
    import pickle

    from dp_io.formats import is_dataframe

    suffix = out.suffix.lower()
    if suffix == ".pkl":
        out.write_bytes(pickle.dumps(value, protocol=5))
        return
    if is_dataframe(value):
        if suffix == ".csv":
            value.to_csv(out)
        elif suffix == ".parquet":
            value.to_parquet(out)
        elif suffix in (".arrow", ".feather"):
            import pyarrow as pa
            import pyarrow.feather as feather

            feather.write_feather(pa.Table.from_pandas(value), str(out), compression="uncompressed")
        elif suffix == ".json":
            value.to_json(out, orient="records", date_format="iso")
        else:
            raise click.ClickException(
                f"--out {out}: use .csv, .parquet, .arrow, .feather, .json or .pkl for a DataFrame"
            )
        return
    if suffix == ".json":
        try:
            out.write_text(json.dumps(value, indent=2, ensure_ascii=False))
        except TypeError as exc:
            raise click.ClickException(f"this value is not JSON ({exc}); use --out FILE.pkl") from exc
        return
    raise click.ClickException(f"--out {out}: use .json or .pkl for a {type(value).__name__}")


@runs.command(name="prune")
@click.argument("flow", required=False)
@click.option("--keep-last", type=click.IntRange(min=0), default=None, help="Keep the last N runs per flow.")
@click.option("--older-than", default=None, help="Prune runs older than this (30m, 12h, 7d, 2w).")
@click.option("--dry-run", is_flag=True, help="Report what would be deleted, delete nothing.")
@click.option(
    "--run-history",
    is_flag=True,
    help="Also delete the Dagster run records and event logs of FLOW's runs past retention.",
)
@base_option
def prune_command(
    flow: str | None,
    keep_last: int | None,
    older_than: str | None,
    dry_run: bool,
    run_history: bool,
    base: str | None,
) -> None:
    """Delete outputs of old runs (never a run in progress, never an asset's latest value)."""
    from dp_io.retention import prune
    from dp_io.retention_policy import parse_duration

    if keep_last is None and older_than is None:
        raise click.UsageError("give --keep-last N, --older-than AGE, or both")
    if run_history and flow is None:
        raise click.UsageError("--run-history deletes one flow's runs: name the FLOW")
    try:
        age = parse_duration(older_than) if older_than else None
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--older-than") from exc
    instance = _instance(required=True)
    with _working("pruning stored outputs" + (f" of {flow}" if flow else "")):
        report = prune(keep_last, age, flow, instance, base=base, dry_run=dry_run)
    for path in report.deleted:
        click.echo(f"  {'would delete' if dry_run else 'deleted'} {path}")
    for path in report.kept_latest:
        click.echo(f"  kept (latest) {path}")
    for run_id in report.skipped_in_progress:
        click.echo(f"  skipped (in progress) {run_id}")
    summary = report.summary()
    if run_history and flow is not None:  # (a missing FLOW was refused above)
        from dp_io.run_history import prune_run_history

        with _working(f"pruning the run history of {flow}"):
            history = prune_run_history(instance, flow, keep_last, age, dry_run=dry_run)
        for run_id in history.deleted:
            click.echo(f"  {'would delete' if dry_run else 'deleted'} run {run_id}")
        for run_id in history.kept_latest:
            click.echo(f"  kept run (latest materialisation) {run_id}")
        summary += f"; {history.summary()}"
    click.echo(summary)  # last, below whatever scrolled by


def _working(label: str):
    """A spinner with the time taken, on a terminal only, as dp's other long commands show
    (``dp_assets/cli/progress.py``, which this package may not import); nothing in a pipe or a log."""
    import contextlib

    if not sys.stdout.isatty():
        return contextlib.nullcontext()
    from rich.console import Console

    return Console().status(label)


def main() -> None:  # pragma: no cover - for `python -m dp_io.cli`
    runs(sys.argv[1:])


if __name__ == "__main__":  # pragma: no cover
    main()
