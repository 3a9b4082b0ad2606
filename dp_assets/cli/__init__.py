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
    "events": "dp_sensors.cli:events",
    "launch": "dp_sensors.cli:launch",
    "status": "dp_assets.cli.triggers:status",
    "test": "dp_assets.cli.flowtest:test",
    "run": "dp_assets.cli.run:run",
    "retry-failed": "dp_sensors.cli:retry_failed",
    "webhook": "dp_assets.cli.triggers:webhook",
}


# Commands that open the Dagster instance of DAGSTER_HOME. Before any of them runs, the
# platform's instance file is written and the storage created, under a lock
# (``dp_assets.cli.home.prepare_instance``); `init-home` does so itself. A test fails when a
# command that opens the instance is missing here (tests/platform/test_embedded_storage.py).
INSTANCE_COMMANDS = frozenset({"runs", "status", "retry-failed", "run"})


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        target = COMMANDS.get(name)
        if target is None:
            return None
        module, _, attribute = target.partition(":")
        return getattr(importlib.import_module(module), attribute)


@click.group(cls=LazyGroup)
@click.pass_context
def main(ctx: click.Context) -> None:
    """dp-platform: declarative flows on Dagster."""
    if ctx.invoked_subcommand in INSTANCE_COMMANDS and not ctx.resilient_parsing:
        from dp_assets.cli.home import ensure_instance_home

        ensure_instance_home()


if __name__ == "__main__":
    main()
