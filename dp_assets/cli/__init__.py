"""The ``dp`` command. Subcommands live in small modules and are imported only when used."""

from __future__ import annotations

import importlib

import click

# name -> "module:attribute"; imported on first use so `dp --help` stays fast.
COMMANDS = {
    "validate": "dp_assets.cli.flows:validate",
    "publish": "dp_assets.cli.flows:publish",
    "list": "dp_assets.cli.flows:list_flows",
    "history": "dp_assets.cli.flows:history",
    "show": "dp_assets.cli.flows:show",
    "diff": "dp_assets.cli.flows:diff",
    "delete": "dp_assets.cli.flows:delete",
    "restore": "dp_assets.cli.flows:restore",
    "unpublish": "dp_assets.cli.flows:unpublish",
    "schema": "dp_assets.cli.catalog:schema",
    "nodes": "dp_assets.cli.catalog:nodes",
    "docs": "dp_assets.cli.catalog:docs",
    "init-home": "dp_assets.cli.home:init_home",
    "runs": "dp_io.cli:runs",
    "mcp-tools": "dp_resources.mcp_client:mcp_tools_command",
    "proxy": "dp_proxy.cli:proxy_cli",
    "deploy": "dp_deploy.checks:deploy_cli",
    "designer": "dp_designer.cli:designer",
    "events": "dp_sensors.cli:events",
    "launch": "dp_sensors.cli:launch",
    "invoke": "dp_assets.cli.invoke:invoke",
    "dispatch": "dp_assets.cli.triggers:dispatch",
    "status": "dp_assets.cli.triggers:status",
    "test": "dp_assets.cli.flowtest:test",
    "run": "dp_assets.cli.run:run",
    "retry-failed": "dp_sensors.cli:retry_failed",
    "webhook": "dp_assets.cli.triggers:webhook",
    "backfill": "dp_assets.cli.backfill:backfill",
    "partitions": "dp_assets.cli.backfill:partitions",
    "roles": "dp_assets.cli.roles:roles",
    "audit": "dp_assets.cli.roles:audit",
}


# Commands that open the Dagster instance of DAGSTER_HOME. Before any of them runs, the
# platform's instance file is written and the storage created, under a lock
# (``dp_assets.cli.home.prepare_instance``); `init-home` does so itself. A test fails when a
# command that opens the instance is missing here (tests/platform/test_embedded_storage.py).
INSTANCE_COMMANDS = frozenset({"runs", "status", "retry-failed", "run"})


# name -> the first sentence of its help, shown by `dp --help` without importing the command
# (importing every command to read its help took seconds: dagster, pandas, sqlalchemy).
# tests/cli/test_cli_basics.py checks each is the command's own first sentence.
SUMMARIES = {
    "audit": "Who published, deleted, restored, launched and changed roles: the newest entries, oldest first.",
    "backfill": "Backfill the partitions of FLOW from --from to --to (or each --partition) in Dagster.",
    "delete": "Retire a flow: it leaves the code location on its next load; its versions, runs and "
    "kept outputs stay (`dp restore FLOW` brings it back).",
    "deploy": "Production deployment: configuration checks and the Celery worker.",
    "designer": "The flow designer: draw, validate, version and run flows in the browser (docs/designer.md).",
    "diff": "Unified diff between two stored versions of a flow.",
    "dispatch": "Start the runs of event triggers as events arrive, until stopped (docs/events.md).",
    "docs": "Regenerate docs/nodes.md from the params models and docs/settings.md from the settings.",
    "events": "Publish events and look at the event bus.",
    "history": "Every stored version of a flow, oldest first; * marks the published one.",
    "init-home": "Create DP_HOME and DAGSTER_HOME with the embedded default's instance settings.",
    "invoke": "Run FLOW with its params, wait for it and print its result nodes' outputs as JSON.",
    "launch": "Launch FLOW through Dagster's GraphQL API with its params as run config.",
    "list": "Flows in the store: state, published version, versions, last change, and the spec file each came from.",
    "mcp-tools": "The tools of the MCP servers in DP_MCP_CONFIG (or of SERVER).",
    "nodes": "The node catalog; with NAME, that node type's params.",
    "partitions": "Dynamic partition keys of a flow with 'partitions: {type: dynamic}'.",
    "proxy": "The authenticating reverse proxy in front of the Dagster webserver.",
    "publish": "Validate and store specs as new versions, and publish them.",
    "restore": "Bring a deleted flow back, at the version it had published.",
    "retry-failed": "Re-run the failed ForEach items of RUN_ID, not the items that succeeded.",
    "roles": 'Roles per workspace and flow, and service tokens (docs/security.md, "Roles").',
    "run": "Run a published FLOW locally on the embedded default and print each node as it finishes.",
    "runs": "Stored outputs of runs: list, show, read, prune.",
    "schema": "Print the JSON Schema of a flow spec (for editors).",
    "show": "Print a stored spec (`dp show FLOW > file.yaml` gives a file that publishes the same version).",
    "status": "Every run of a chain (tag dp/task_id, or the id of its first run) and its overall state.",
    "test": "Run the test cases of FLOW (a flow id, a spec file or a folder; default: every tested flow).",
    "unpublish": "Keep a flow stored but stop compiling it (`dp publish FLOW` publishes its newest version again).",
    "validate": "Check spec files (or folders of them); exit 1 listing every error when any is bad.",
    "webhook": "The webhook and launch receiver.",
}


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        target = COMMANDS.get(name)
        if target is None:
            return None
        module, _, attribute = target.partition(":")
        return getattr(importlib.import_module(module), attribute)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """The command list of `dp --help` from ``SUMMARIES``, as click would print it from the
        commands themselves, without importing them."""
        names = self.list_commands(ctx)
        limit = formatter.width - 6 - max(len(name) for name in names)
        # A stand-in command per name, so that click shortens each summary as it would the help.
        rows = [(name, click.Command(name, help=SUMMARIES.get(name, "")).get_short_help_str(limit)) for name in names]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


@click.group(cls=LazyGroup)
@click.pass_context
def main(ctx: click.Context) -> None:
    """dp-platform: declarative flows on Dagster."""
    if ctx.invoked_subcommand in INSTANCE_COMMANDS and not ctx.resilient_parsing:
        from dp_assets.cli.home import ensure_instance_home

        ensure_instance_home()


if __name__ == "__main__":
    main()
