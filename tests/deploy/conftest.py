"""Fixtures of the deployment tests: real dagster-webserver processes and the proxy in front.

The webservers serve a throwaway code location (``deploy_location.py``) from one SQLite
``DAGSTER_HOME`` in a temporary folder; they start once per test session (each takes seconds).
"""

from __future__ import annotations

import base64
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
import yaml
from deploy_procs import (
    PYTHON,
    ManagedProcess,
    base_env,
    free_port,
    http_status,
    start_process,
    wait_until,
)

from dp_resources.proxy.auth import hash_password

HERE = Path(__file__).resolve().parent
LOCATION_NAME = "deploy_test"
PROXY_USER = "alice"


@dataclass
class Webserver:
    url: str
    port: int
    process: ManagedProcess
    home: Path

    def graphql(self, query: str, variables: dict | None = None, **kwargs) -> dict:
        response = httpx.post(
            f"{self.url}/graphql",
            json={"query": query, "variables": variables or {}},
            timeout=60,
            **kwargs,
        )
        response.raise_for_status()
        return response.json()


@dataclass
class Proxy:
    url: str
    port: int
    process: ManagedProcess
    password: str
    token: str

    @property
    def basic(self) -> dict[str, str]:
        raw = base64.b64encode(f"{PROXY_USER}:{self.password}".encode()).decode()
        return {"Authorization": f"Basic {raw}"}

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"


@pytest.fixture(scope="session")
def webserver_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A DAGSTER_HOME (SQLite) and a workspace naming the throwaway location."""
    home = tmp_path_factory.mktemp("deploy_dagster_home")
    (home / "dagster.yaml").write_text(
        yaml.safe_dump({"telemetry": {"enabled": False}, "nux": {"enabled": False}})
    )
    workspace = {
        "load_from": [
            {
                "python_file": {
                    "relative_path": str(HERE / "deploy_location.py"),
                    "location_name": LOCATION_NAME,
                    "working_directory": str(HERE),
                }
            }
        ]
    }
    (home / "workspace.yaml").write_text(yaml.safe_dump(workspace))
    return home


def _start_webserver(home: Path, name: str, *extra: str) -> Webserver:
    port = free_port()
    argv = [PYTHON, "-m", "dagster_webserver", "-h", "127.0.0.1", "-p", str(port)]
    argv += ["-w", str(home / "workspace.yaml"), *extra]
    env = base_env(DAGSTER_HOME=str(home))
    process = start_process(name, argv, env=env, log_dir=home / "logs")
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(
            lambda: http_status(f"{url}/server_info") == 200,
            process=process,
            what=f"{name} answering on {url}",
        )
        # The code location loads in the background: wait until the workspace has it.
        server = Webserver(url, port, process, home)
        wait_until(
            lambda: _location_loaded(server),
            process=process,
            what=f"{name} loading {LOCATION_NAME}",
        )
    except BaseException:
        process.stop()
        raise
    return server


def _location_loaded(server: Webserver) -> bool:
    data = server.graphql(
        "{ workspaceOrError { ... on Workspace { locationEntries { name "
        "locationOrLoadError { __typename } } } } }"
    )
    entries = data["data"]["workspaceOrError"]["locationEntries"]
    return any(
        e["name"] == LOCATION_NAME
        and (e["locationOrLoadError"] or {}).get("__typename") == "RepositoryLocation"
        for e in entries
    )


@pytest.fixture(scope="session")
def webserver(webserver_home: Path) -> Iterator[Webserver]:
    """The writable webserver, bound to loopback only (what the proxy fronts)."""
    server = _start_webserver(webserver_home, "webserver")
    yield server
    server.process.stop()


@pytest.fixture(scope="session")
def readonly_webserver(webserver_home: Path) -> Iterator[Webserver]:
    """A second webserver on the same instance in ``--read-only`` mode (the viewer)."""
    server = _start_webserver(webserver_home, "viewer", "--read-only")
    yield server
    server.process.stop()


@pytest.fixture(scope="session")
def proxy(webserver: Webserver, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proxy]:
    """The authenticating proxy in front of ``webserver``, as a real uvicorn process."""
    password = secrets.token_urlsafe(16)
    token = secrets.token_urlsafe(24)
    port = free_port()
    env = base_env(
        DP_PROXY_USERS=f"{PROXY_USER}:{hash_password(password)}",
        DP_PROXY_TOKEN=token,
    )
    env.pop("DP_PROXY_ALLOWED_ORIGINS", None)
    argv = [PYTHON, "-m", "dp_resources.proxy", "serve", "--upstream", webserver.url]
    argv += ["--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"]
    process = start_process("proxy", argv, env=env, log_dir=tmp_path_factory.mktemp("proxy"))
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: http_status(url) == 401, process=process, what="proxy answering")
    except BaseException:
        process.stop()
        raise
    yield Proxy(url, port, process, password, token)
    process.stop()


# --- the Celery stack (phase 2 harness) ---------------------------------------------------------

#: Redis databases of the stack tests (flushed before and after each stack): broker, results.
STACK_REDIS_DBS = (13, 14)


@pytest.fixture
def fresh_postgres_url(postgres_url: str) -> Iterator[str]:
    """A new, empty PostgreSQL database for one stack (dropped afterwards)."""
    import uuid

    import sqlalchemy as sa

    admin_url = postgres_url.rsplit("/", 1)[0] + "/postgres"
    name = f"dp_stack_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        yield admin_url.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture
def stack_redis(redis_url: str) -> Iterator[tuple[str, str]]:
    """(broker URL, result backend URL) on Redis databases emptied before and after."""
    import redis

    base = redis_url.rsplit("/", 1)[0]
    urls = tuple(f"{base}/{db}" for db in STACK_REDIS_DBS)
    clients = [redis.Redis.from_url(url) for url in urls]
    for client in clients:
        client.flushdb()
    yield urls
    for client in clients:
        client.flushdb()
        client.close()


@pytest.fixture
def celery_stack(fresh_postgres_url: str, stack_redis: tuple[str, str], tmp_path: Path):
    """A factory: ``celery_stack(workers=2, ...)`` starts the stack; all are stopped at teardown."""
    from deploy_stack import start_stack

    started = []

    def start(**kwargs):
        broker, backend = stack_redis
        kwargs.setdefault("broker_url", broker)
        kwargs.setdefault("backend_url", backend)
        stack = start_stack(
            tmp_path / f"stack{len(started)}", postgres_url=fresh_postgres_url, **kwargs
        )
        started.append(stack)
        return stack

    yield start
    for stack in started:
        stack.stop()


@pytest.fixture
def rabbitmq_vhost_url(rabbitmq_url: str) -> Iterator[str]:
    """An AMQP URL on a new, private RabbitMQ vhost (deleted afterwards), via rabbitmqctl."""
    import shutil
    import subprocess
    import uuid

    if shutil.which("rabbitmqctl") is None:
        pytest.skip("rabbitmqctl is not installed")
    vhost = f"dp_stack_{uuid.uuid4().hex[:8]}"
    user = rabbitmq_url.split("//", 1)[1].split(":", 1)[0]

    def ctl(*args: str) -> None:
        subprocess.run(["rabbitmqctl", *args], check=True, capture_output=True, timeout=60)

    ctl("add_vhost", vhost)
    try:
        ctl("set_permissions", "-p", vhost, user, ".*", ".*", ".*")
        parts = urlsplit(rabbitmq_url)
        yield f"{parts.scheme}://{parts.netloc}/{vhost}"
    finally:
        ctl("delete_vhost", vhost)
