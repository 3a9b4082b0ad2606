"""``dp webhook serve``: the click command the platform CLI mounts.

The receiver needs the flow store (which flows exist, their params) and a launcher (Dagster
GraphQL); both belong to other packages, so the command is built from two factories rather than
importing them here.
"""

from __future__ import annotations

from collections.abc import Callable

import click

from dp_sensors.webhook.app import DEFAULT_MAX_BODY_BYTES, FlowCatalog, ParamsLookup
from dp_sensors.webhook.launches import Launcher

DEFAULT_PORT = 8787
DEFAULT_DAGSTER_GRAPHQL_URL = "http://127.0.0.1:3000/graphql"


def make_serve_command(
    build_catalog: Callable[[], FlowCatalog | ParamsLookup],
    build_launcher: Callable[[str], Launcher] | None = None,
) -> click.Command:
    """``serve`` with its options; ``build_launcher(dagster_graphql_url)`` enables launches."""

    @click.command("serve")
    @click.option("--host", default="127.0.0.1", show_default=True, help="Interface to bind.")
    @click.option("--port", default=DEFAULT_PORT, show_default=True, type=int)
    @click.option(
        "--max-body-bytes",
        default=DEFAULT_MAX_BODY_BYTES,
        show_default=True,
        type=int,
        help="Larger bodies are refused with 413.",
    )
    @click.option(
        "--events-url",
        default=None,
        help="Event bus URL [env DP_EVENTS_URL; default: the flow store].",
    )
    @click.option(
        "--launches-url",
        default=None,
        help="Database of the launch ledger [env DP_LAUNCHES_URL; default: the flow store].",
    )
    @click.option(
        "--dagster-url",
        default=None,
        help=f"Dagster GraphQL endpoint used for launches [env DP_DAGSTER_GRAPHQL_URL; default: "
        f"{DEFAULT_DAGSTER_GRAPHQL_URL}].",
    )
    @click.option("--log-level", default="info", show_default=True)
    def serve_command(
        host: str,
        port: int,
        max_body_bytes: int,
        events_url: str | None,
        launches_url: str | None,
        dagster_url: str | None,
        log_level: str,
    ) -> None:
        """Receive webhooks (POST /hooks/FLOW) and idempotent launches (POST /flows/FLOW/runs).

        Tokens come from DP_WEBHOOK_TOKEN_<FLOW_ID> or DP_WEBHOOK_TOKEN; without one every
        request is refused.
        """
        from dp_sensors.webhook.server import serve
        from dp_settings import load

        settings = load()  # the receiver's settings, read once here and passed down
        dagster_url = dagster_url or settings.dagster.graphql_url or DEFAULT_DAGSTER_GRAPHQL_URL
        serve(
            host,
            port,
            catalog=build_catalog(),
            launcher=None if build_launcher is None else build_launcher(dagster_url),
            events_url=events_url,
            launches_url=launches_url,
            max_body_bytes=max_body_bytes,
            log_level=log_level,
            settings=settings,
        )

    return serve_command


def make_webhook_group(
    build_catalog: Callable[[], FlowCatalog | ParamsLookup],
    build_launcher: Callable[[str], Launcher] | None = None,
) -> click.Group:
    """A ``webhook`` group holding ``serve``, to add to the ``dp`` CLI as is."""
    group = click.Group("webhook", help="The webhook and launch receiver.")
    group.add_command(make_serve_command(build_catalog, build_launcher))
    return group
