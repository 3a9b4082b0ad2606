"""deploy/postgres/initdb/10-dp-roles.sh on the real PostgreSQL: one role per use.

The script runs (with psql, as the compose image runs it) under suffixed role and database
names, so it cannot collide with anything else on the shared server; then each role tries the
others' databases. The test server trusts local connections, so passwords are not what stops
them: the privileges are.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import uuid
from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from tests.support.processes import REPO_ROOT

pytestmark = pytest.mark.postgres

SCRIPT = REPO_ROOT / "deploy" / "postgres" / "initdb" / "10-dp-roles.sh"
NAMES = ("dagster", "dp_store", "dp_sql", "dp_query", "dp_data")
ADMIN = "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres"


@pytest.fixture(scope="module")
def roles(postgres_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    if shutil.which("psql") is None:
        if os.environ.get("CI") == "true":
            pytest.fail("psql is needed to run the PostgreSQL init script")
        pytest.skip("psql is not installed")
    suffix = uuid.uuid4().hex[:8]
    names = {name: f"{name}_{suffix}" for name in NAMES}
    text = SCRIPT.read_text()
    for name, renamed in names.items():
        text = re.sub(rf"\b{name}\b", renamed, text)
    script = tmp_path_factory.mktemp("initdb") / "roles.sh"
    script.write_text(text)
    env = {
        **os.environ,
        "PGHOST": "127.0.0.1",
        "POSTGRES_USER": "postgres",
        "DAGSTER_PG_PASSWORD": "x",
        "DP_STORE_PASSWORD": "y",
        "DP_SQL_PASSWORD": "z",
        "DP_QUERY_PASSWORD": "q",
    }
    try:
        subprocess.run(["sh", str(script)], env=env, check=True, capture_output=True, timeout=60)
        yield names
    finally:
        admin = sa.create_engine(ADMIN, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            for db in ("dagster", "dp_store", "dp_data"):
                conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{names[db]}" WITH (FORCE)'))
            for role in ("dagster", "dp_store", "dp_sql", "dp_query"):
                conn.execute(sa.text(f'DROP ROLE IF EXISTS "{names[role]}"'))
        admin.dispose()


def _connect(role: str, database: str) -> sa.Connection:
    engine = sa.create_engine(f"postgresql+psycopg2://{role}@127.0.0.1:5432/{database}", poolclass=sa.pool.NullPool)
    return engine.connect()


@pytest.mark.parametrize(
    ("role", "database"),
    [
        ("dp_sql", "dagster"),
        ("dp_sql", "dp_store"),
        ("dp_query", "dagster"),
        ("dp_query", "dp_store"),
        ("dagster", "dp_data"),
        ("dp_store", "dagster"),
    ],
    ids=lambda v: v,
)
def test_role_cannot_reach_another_database(roles: dict[str, str], role: str, database: str) -> None:
    """A user SQL node's role cannot even connect to Dagster's storage or the flow store."""
    with pytest.raises(sa.exc.OperationalError, match="permission denied for database"):
        _connect(roles[role], roles[database]).close()


def test_user_sql_role_is_confined(roles: dict[str, str]) -> None:
    with _connect(roles["dp_sql"], roles["dp_data"]) as conn:
        assert conn.execute(sa.text("SHOW statement_timeout")).scalar_one() == "1min"
        assert conn.execute(sa.text("SELECT current_schema()")).scalar_one() == "dp"
        conn.execute(sa.text("CREATE TABLE mine (x int)"))
        conn.commit()
        with pytest.raises(sa.exc.ProgrammingError, match="permission denied"):
            conn.execute(sa.text("CREATE TABLE public.not_mine (x int)"))
        conn.rollback()
        with pytest.raises(sa.exc.ProgrammingError, match="permission denied"):
            conn.execute(sa.text(f'CREATE ROLE "escape_{uuid.uuid4().hex[:6]}"'))


def test_dagster_role_owns_its_storage(roles: dict[str, str]) -> None:
    with _connect(roles["dagster"], roles["dagster"]) as conn:
        conn.execute(sa.text("CREATE TABLE probe (x int)"))
        conn.commit()


def test_V2_query_role_reads_the_data_and_cannot_write(roles: dict[str, str]) -> None:
    """V2: dp_query (user SQL's login) reads what dp_sql writes, in read-only sessions, and the
    databases resource accepts it as the read-only login of CustomSQLQuery."""
    import pandas as pd

    from dp_assets.catalog import default_catalog
    from dp_assets.catalog.base import NodeContext
    from dp_resources.databases import DatabasesResource

    table = f"t_{uuid.uuid4().hex[:6]}"
    with _connect(roles["dp_sql"], roles["dp_data"]) as conn:
        conn.execute(sa.text(f"CREATE TABLE {table} (x int)"))
        conn.execute(sa.text(f"INSERT INTO {table} VALUES (1), (2)"))
        conn.commit()
    with _connect(roles["dp_query"], roles["dp_data"]) as conn:
        assert conn.execute(sa.text("SHOW default_transaction_read_only")).scalar_one() == "on"
        assert conn.execute(sa.text("SHOW statement_timeout")).scalar_one() == "1min"
        assert conn.execute(sa.text(f"SELECT count(*) FROM {table}")).scalar_one() == 2
        conn.rollback()
        conn.execute(sa.text("SET SESSION CHARACTERISTICS AS TRANSACTION READ WRITE"))
        conn.commit()
        for write in (f"INSERT INTO {table} VALUES (3)", f"CREATE TABLE {table}_2 (x int)"):
            with pytest.raises(sa.exc.ProgrammingError, match="permission denied"):
                conn.execute(sa.text(write))
            conn.rollback()

    url = "postgresql+psycopg2://{}@127.0.0.1:5432/" + roles["dp_data"]
    resource = DatabasesResource(
        urls={"default": url.format(roles["dp_sql"])}, query_urls={"default": url.format(roles["dp_query"])}
    )
    catalog = default_catalog()
    node = catalog["CustomSQLQuery"]
    ctx = NodeContext("flow", "query", "run-1", {}, {"databases": resource}, catalog=catalog)
    try:
        got = node.run(ctx, node.params_model.model_validate({"sql": f"SELECT x FROM {table} ORDER BY x"}), {})
    finally:
        resource.dispose()
    pd.testing.assert_frame_equal(got, pd.DataFrame({"x": [1, 2]}))
