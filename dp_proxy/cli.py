"""``dp proxy`` commands: run the proxy, hash a password for ``DP_PROXY_USERS``."""

from __future__ import annotations

import sys

import click


@click.group(name="proxy")
def proxy_cli() -> None:
    """The authenticating reverse proxy in front of the Dagster webserver."""


@proxy_cli.command("serve")
@click.option("--upstream", default=None, help="Webserver URL (default: $DP_PROXY_UPSTREAM).")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8080, show_default=True, type=int)
@click.option("--ssl-certfile", default=None, type=click.Path(exists=True, dir_okay=False))
@click.option("--ssl-keyfile", default=None, type=click.Path(exists=True, dir_okay=False))
@click.option("--log-level", default="info", show_default=True)
def serve_command(
    upstream: str | None,
    host: str,
    port: int,
    ssl_certfile: str | None,
    ssl_keyfile: str | None,
    log_level: str,
) -> None:
    """Serve the proxy; credentials and origins come from DP_PROXY_* variables."""
    from dp_proxy.server import serve
    from dp_proxy.settings import ProxySettings

    try:
        settings = ProxySettings.from_env(upstream=upstream)
        settings.require_credentials()
    except ValueError as error:
        raise click.ClickException(str(error)) from error
    serve(
        settings,
        host=host,
        port=port,
        ssl_certfile=ssl_certfile,
        ssl_keyfile=ssl_keyfile,
        log_level=log_level,
    )


@proxy_cli.command("hash-password")
@click.argument("name")
@click.option("--stdin", "from_stdin", is_flag=True, help="Read the password from stdin.")
def hash_password_command(name: str, from_stdin: bool) -> None:
    """Print a DP_PROXY_USERS entry (NAME:scrypt:...) for a new password."""
    from dp_proxy.auth import hash_password

    if ":" in name or not name.strip():
        raise click.BadParameter("a user name cannot be empty or contain ':'", param_hint="NAME")
    if from_stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    if len(password) < 12:
        raise click.ClickException("use a password of at least 12 characters")
    click.echo(f"{name}:{hash_password(password)}")
