"""``dp deploy check``'s rule for user SQL: every ``CustomSQLQuery`` connection has a read-only login.

At run time the databases resource refuses user SQL under a login that could write
(``dp_resources.databases``); this check says so before anything starts, from the deployment's
environment and the flows it will run (the flows folder and, when ``DP_STORE_URL`` is set, the
published flows of the store). A connection listed in ``DP_DB_WRITABLE_SQL`` is exempt: its SQL
is meant to write.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from dp_resources.databases import WRITABLE_SQL_ENV
from dp_settings import PlatformSettings, load

USER_SQL_NODE = "CustomSQLQuery"


def _env_name(name: str, suffix: str) -> str:
    return f"DP_DB_{name.upper()}_{suffix}"


def custom_sql_connections(specs: Iterable[tuple[str, Any]]) -> dict[str, list[str]]:
    """Connection name -> the ``flow/node`` places of the CustomSQLQuery nodes that use it.

    ``specs`` are ``(where, spec)`` pairs; a malformed spec or node is skipped (``dp validate``
    reports it, and it cannot be published).
    """
    uses: dict[str, list[str]] = {}
    for where, spec in specs:
        nodes = spec.get("nodes") if isinstance(spec, Mapping) else None
        flow = spec.get("id") if isinstance(spec, Mapping) and isinstance(spec.get("id"), str) else where
        for node in nodes if isinstance(nodes, list) else []:
            if not isinstance(node, Mapping) or node.get("type") != USER_SQL_NODE:
                continue
            params = node.get("params", {})
            connection = params.get("connection", "default") if isinstance(params, Mapping) else None
            if isinstance(connection, str):
                uses.setdefault(connection, []).append(f"{flow}/{node.get('id')}")
    return uses


def check_user_sql_logins(
    uses: Mapping[str, list[str]],
    environ: Mapping[str, str] | None = None,
    *,
    settings: PlatformSettings | None = None,
) -> list[str]:
    """What is missing for the user SQL of each connection to run under a read-only login.

    The deployment's ``settings``, else those of ``environ`` (default: this process's).
    """
    import sqlalchemy as sa

    databases = (settings or load(environ)).db
    writable = set(databases.writable_sql)
    errors: list[str] = []
    for name in sorted(uses):
        if name in writable:
            continue
        places = ", ".join(sorted(uses[name]))
        main, query = databases.url(name), databases.query_url(name)
        if not query:
            if main and main.startswith("sqlite"):
                continue  # SQLite opens user SQL read-only itself (its authorizer, query_only)
            errors.append(
                f"connection '{name}' (CustomSQLQuery {places}) has no read-only login: set "
                f"{_env_name(name, 'QUERY_URL')} to the URL of a login with SELECT rights only "
                f"(docs/deploy.md, 'A read-only login for user SQL'), or list '{name}' in "
                f"{WRITABLE_SQL_ENV} if its SQL is meant to write"
            )
            continue
        try:
            query_url = sa.make_url(query)
        except sa.exc.ArgumentError:
            errors.append(f"{_env_name(name, 'QUERY_URL')} is not a database URL")
            continue
        if query_url.get_backend_name() == "postgresql" and query_url.get_driver_name() != "psycopg2":
            errors.append(
                f"{_env_name(name, 'QUERY_URL')} uses the {query_url.get_driver_name()} driver: "
                "write it as postgresql+psycopg2://..."
            )
        try:
            main_url = sa.make_url(main) if main else None
        except sa.exc.ArgumentError:
            main_url = None
        if (
            main_url is not None
            and query_url.username == main_url.username
            and (query_url.host, query_url.port, query_url.database)
            == (main_url.host, main_url.port, main_url.database)
        ):
            errors.append(
                f"{_env_name(name, 'QUERY_URL')} logs in as the writer of connection '{name}' "
                f"('{query_url.username}'): give user SQL ({places}) a separate login with SELECT "
                "rights only"
            )
    return errors


def deployed_specs(flows_dir: Path | None, store_url: str | None) -> tuple[list[tuple[str, Any]], list[str]]:
    """``(where, spec)`` of the flows folder's spec files and the store's published flows.

    Returns the specs and the problems met reading the store (a file that cannot be read is
    skipped: it cannot be published either).
    """
    from dp_assets.publishing import spec_files
    from dp_assets.spec.loading import read_spec_file

    specs: list[tuple[str, Any]] = []
    problems: list[str] = []
    if flows_dir is not None and Path(flows_dir).is_dir():
        for path in spec_files(Path(flows_dir)):
            try:
                specs.append((str(path), read_spec_file(path)))
            except Exception:  # noqa: BLE001 - dp validate reports unreadable specs
                continue
    if store_url:
        from dp_resources.store import FlowStore

        try:
            store = FlowStore(store_url)
            # a new deployment's store has no schema before the code location first loads:
            # nothing is published there yet (the spec files above are what it will publish)
            if store.is_created():
                specs += [(flow_id, spec) for flow_id, _, spec in store.published_specs()]
        except Exception as exc:  # noqa: BLE001 - reported as a check failure, with its cause
            problems.append(f"cannot read the published flows of the store ({type(exc).__name__}: {exc})")
    return specs, problems
