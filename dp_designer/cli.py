"""``dp designer``: the flow designer's server (API and client) on its own port."""

from __future__ import annotations

from pathlib import Path

import click

DEFAULT_PORT = 3001


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to listen on.")
@click.option("--port", default=DEFAULT_PORT, show_default=True, type=click.IntRange(0, 65535), help="Port.")
@click.option(
    "--client",
    "client_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="The built client (default: designer/dist of the source tree; the image's is /opt/dagster/app/designer/dist).",
)
def designer(host: str, port: int, client_dir: Path | None) -> None:
    """The flow designer: draw, validate, version and run flows in the browser (docs/designer.md)."""
    import uvicorn

    from dp_assets.store_api import FlowStoreAPI
    from dp_designer.app import CLIENT_DIST, build_app, hosts_for
    from dp_designer.runs_api import RunsService
    from dp_sensors.launch import DEFAULT_GRAPHQL_URL
    from dp_settings import load

    settings = load()
    dagster = settings.dagster
    runs = RunsService(
        graphql_url=dagster.graphql_url or DEFAULT_GRAPHQL_URL,
        token=dagster.token.get_secret_value() if dagster.token else None,
        location=settings.code_location,
        outputs_base=settings.outputs_base(),
        webserver_url=settings.webserver_url or (dagster.graphql_url or DEFAULT_GRAPHQL_URL).removesuffix("/graphql"),
    )
    store_api = FlowStoreAPI()
    auth = None
    if settings.auth.enforce:
        from dp_designer.identity import DesignerAuth

        key = settings.auth.identity_key
        try:
            auth = DesignerAuth(store_api.access, key.get_secret_value().encode() if key else b"")
        except ValueError as exc:
            raise click.ClickException(str(exc)) from exc
    app = build_app(store_api, runs, client_dist=client_dir or CLIENT_DIST, auth=auth, allowed_hosts=hosts_for(host))
    click.echo(f"dp designer: http://{host}:{port}/", err=True)
    uvicorn.run(app, host=host, port=port, log_level="warning")
