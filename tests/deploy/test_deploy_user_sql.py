"""V2 at deploy time: ``dp deploy check`` fails while a CustomSQLQuery connection lacks a read-only login.

The runtime refuses such a login when the query runs (tests/security/test_user_sql.py); the
deployment check says so before anything starts, from the flows folder, the store's published
flows and the environment.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from dp_deploy.user_sql import check_user_sql_logins, custom_sql_connections, deployed_specs
from tests.support.processes import REPO_ROOT

WRITER = "postgresql+psycopg2://writer:pw@db:5432/warehouse"
READER = "postgresql+psycopg2://reader:pw@db:5432/warehouse"
#: ``dp_deploy check`` of the repository's production instance and Celery worker files.
CHECK_PRODUCTION_FILES = [
    "check",
    "--dagster-yaml",
    str(REPO_ROOT / "dagster.yaml"),
    "-y",
    str(REPO_ROOT / "deploy" / "celery-worker.yaml"),
]


def query_spec(flow_id: str, connection: str | None) -> dict[str, Any]:
    params: dict[str, Any] = {"sql": "SELECT 1 AS x"}
    if connection:
        params["connection"] = connection
    return {"id": flow_id, "nodes": [{"id": "q", "type": "CustomSQLQuery", "params": params}]}


USES = custom_sql_connections(
    [
        ("a.yaml", query_spec("sales", "warehouse")),
        ("b.yaml", query_spec("ops", None)),
        ("bad.yaml", {"nodes": ["not a node", {"type": "CustomSQLQuery", "params": 3}]}),
    ]
)


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        pytest.param(
            {"DP_DB_WAREHOUSE_URL": WRITER},
            "warehouse.*no read-only login.*DP_DB_WAREHOUSE_QUERY_URL",
            id="V2-no-query-url",
        ),
        pytest.param(
            {"DP_DB_WAREHOUSE_URL": WRITER, "DP_DB_WAREHOUSE_QUERY_URL": WRITER.replace(":pw", ":other")},
            "logs in as the writer",
            id="V2-query-url-is-the-writer",
        ),
        pytest.param({"DP_DB_WAREHOUSE_QUERY_URL": READER.replace("+psycopg2", "+pg8000")}, "psycopg2", id="V2-driver"),
    ],
)
def test_V2_deploy_check_names_the_missing_read_only_login(environ: dict[str, str], expected: str) -> None:
    """V2: a CustomSQLQuery connection without a separate read-only login fails the check."""
    errors = check_user_sql_logins(USES, {**environ, "DP_DB_DEFAULT_URL": "sqlite:///x.db"})
    assert len(errors) == 1, errors
    assert re.search(expected, errors[0]), errors
    assert "sales/q" in errors[0] or "psycopg2" in errors[0]


def test_V2_deploy_check_passes_with_a_read_only_login_or_writable_sql() -> None:
    assert USES == {"warehouse": ["sales/q"], "default": ["ops/q"]}
    base = {"DP_DB_WAREHOUSE_URL": WRITER, "DP_DB_DEFAULT_URL": "sqlite:///x.db"}
    assert check_user_sql_logins(USES, {**base, "DP_DB_WAREHOUSE_QUERY_URL": READER}) == []
    assert check_user_sql_logins(USES, {**base, "DP_DB_WRITABLE_SQL": "other, warehouse"}) == []
    # SQLite without a query URL is fine; PostgreSQL is not
    assert (
        len(check_user_sql_logins(USES, {**base, "DP_DB_WAREHOUSE_QUERY_URL": READER, "DP_DB_DEFAULT_URL": WRITER}))
        == 1
    )


def test_V2_deploy_check_command_reads_folder_and_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """V2: `dp deploy check` finds CustomSQLQuery nodes in spec files and in the published store."""
    from dp_assets.catalog import default_catalog
    from dp_assets.publishing import publish_spec
    from dp_deploy.checks import deploy_cli
    from dp_resources.store import FlowStore

    flows = tmp_path / "flows"
    flows.mkdir()
    (flows / "sales.yaml").write_text(yaml.safe_dump(query_spec("sales", "warehouse")))
    store_url = f"sqlite:///{tmp_path / 'store.db'}"
    store = FlowStore(store_url)
    store.upgrade()
    publish_spec(store, query_spec("stored_flow", "lake"), default_catalog())
    specs, problems = deployed_specs(flows, store_url)
    assert problems == []
    assert custom_sql_connections(specs) == {"warehouse": ["sales/q"], "lake": ["stored_flow/q"]}

    for name in ("DP_DB_WAREHOUSE_QUERY_URL", "DP_DB_LAKE_QUERY_URL", "DP_DB_WRITABLE_SQL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DP_DB_WAREHOUSE_URL", WRITER)
    monkeypatch.setenv("DP_DB_LAKE_URL", WRITER.replace("warehouse", "lake"))
    args = [*CHECK_PRODUCTION_FILES, "--flows-dir", str(flows), "--store-url", store_url]
    result = CliRunner().invoke(deploy_cli, args)
    assert result.exit_code != 0
    assert "user SQL: connection 'lake' (CustomSQLQuery stored_flow/q) has no read-only login" in result.output
    assert "user SQL: connection 'warehouse' (CustomSQLQuery sales/q) has no read-only login" in result.output
    monkeypatch.setenv("DP_DB_WAREHOUSE_QUERY_URL", READER)
    monkeypatch.setenv("DP_DB_WRITABLE_SQL", "lake")
    result = CliRunner().invoke(deploy_cli, args)
    assert "user SQL" not in result.output


def test_deploy_check_passes_on_a_new_store_before_anything_has_started(tmp_path: Path, monkeypatch) -> None:
    """docs/deploy.md runs `python -m dp_deploy check` before the code server, which makes the
    store's schema at its first load: an empty store database is a store with nothing published
    (it failed with "relation dp_flows does not exist"), and the check writes nothing to it.
    The spec files are still read."""
    from dp_deploy.checks import deploy_cli
    from dp_resources.store import FlowStore

    flows = tmp_path / "flows"
    flows.mkdir()
    (flows / "sales.yaml").write_text(yaml.safe_dump(query_spec("sales", "warehouse")))
    store_url = f"sqlite:///{tmp_path / 'new_store.db'}"
    specs, problems = deployed_specs(flows, store_url)
    assert problems == [] and [where for where, _ in specs] == [str(flows / "sales.yaml")]
    assert not FlowStore(store_url).is_created()

    monkeypatch.setenv("DP_DB_WAREHOUSE_URL", WRITER)
    monkeypatch.setenv("DP_DB_WAREHOUSE_QUERY_URL", READER)
    monkeypatch.setenv("DP_CELERY_BROKER", "redis://127.0.0.1:6379/0")
    monkeypatch.setenv("DP_CELERY_BACKEND", "redis://127.0.0.1:6379/1")
    args = [*CHECK_PRODUCTION_FILES, "--flows-dir", str(flows), "--store-url", store_url]
    result = CliRunner().invoke(deploy_cli, args)
    assert result.exit_code == 0, result.output
    assert not FlowStore(store_url).is_created()
