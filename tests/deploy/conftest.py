"""Fixtures of the deployment tests: real dagster-webserver processes and the proxy in front,
and the production stack (``deploy_stack.py``) on the platform's own code location.

The proxy and viewer webservers serve a throwaway code location (``deploy_location.py``) from one
SQLite ``DAGSTER_HOME`` in a temporary folder; they start once per test session (each takes
seconds). Production stacks start once per test module (``stack_factory``).
"""

from __future__ import annotations

import base64
import contextlib
import secrets
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
import yaml
from deploy_services import PrivatePostgres, PrivateRedis, flushed_redis

from dp_proxy.auth import hash_password
from tests.support.dagster_processes import location_loaded
from tests.support.processes import (
    PYTHON,
    ManagedProcess,
    base_env,
    free_port,
    http_status,
    start_process,
    wait_until,
)
from tests.support.services import fresh_database, unavailable

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


@pytest.fixture(scope="module")
def private_pg(request: pytest.FixtureRequest) -> Iterator[PrivatePostgres]:
    """A throwaway PostgreSQL server of the module's own (stopped and started by outage tests);
    a module sets ``PRIVATE_PG_MAX_CONNECTIONS`` to give it a tighter connection budget."""
    try:
        server = PrivatePostgres.create(max_connections=getattr(request.module, "PRIVATE_PG_MAX_CONNECTIONS", 100))
    except RuntimeError as exc:
        unavailable(str(exc))
    yield server
    server.destroy()


@pytest.fixture(scope="module")
def private_redis() -> Iterator[PrivateRedis]:
    """A throwaway Redis server of the module's own (stopped and started by fault tests)."""
    try:
        server = PrivateRedis.create()
    except RuntimeError as exc:
        unavailable(str(exc))
    yield server
    server.destroy()


@pytest.fixture(scope="session")
def webserver_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A DAGSTER_HOME (SQLite) and a workspace naming the throwaway location."""
    home = tmp_path_factory.mktemp("deploy_dagster_home")
    (home / "dagster.yaml").write_text(yaml.safe_dump({"telemetry": {"enabled": False}, "nux": {"enabled": False}}))
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
            lambda: location_loaded(f"{url}/graphql", LOCATION_NAME),
            process=process,
            what=f"{name} loading {LOCATION_NAME}",
        )
    except BaseException:
        process.stop()
        raise
    return server


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
    argv = [PYTHON, "-m", "dp_proxy", "serve", "--upstream", webserver.url]
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


# --- the production stack on the platform's code location ---------------------------------------


@contextlib.contextmanager
def rabbitmq_vhost(rabbitmq_url: str) -> Iterator[str]:
    """An AMQP URL on a new, private RabbitMQ vhost (deleted afterwards), via rabbitmqctl."""
    if shutil.which("rabbitmqctl") is None:
        unavailable("rabbitmqctl is not installed")
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


@dataclass
class StackFactory:
    """Starts production stacks for one test module; ``close`` stops them and drops their data.

    ``start(specs, broker="redis"|"rabbitmq", postgres_url=None, broker_url=None, ...)``:
    Dagster's storage and the flow store each get a fresh database on ``postgres_url`` (default:
    the machine's server); the broker is the machine's Redis (databases 13/14), a private
    RabbitMQ vhost, or ``broker_url``/``backend_url`` when given (a private server).
    """

    postgres_url: str
    root: Path
    request: pytest.FixtureRequest
    resources: contextlib.ExitStack = field(default_factory=contextlib.ExitStack)

    def start(
        self,
        specs: list[dict],
        *,
        broker: str = "redis",
        postgres_url: str | None = None,
        broker_url: str | None = None,
        backend_url: str | None = None,
        **kwargs,
    ):
        from deploy_flows import write_specs
        from deploy_stack import start_stack

        server = postgres_url or self.postgres_url
        dagster_db = self.resources.enter_context(fresh_database(server, "dp_stack_dagster"))
        store_db = self.resources.enter_context(fresh_database(server, "dp_stack_store"))
        if broker_url is None:
            redis_url = self.request.getfixturevalue("redis_url")
            broker_url, backend_url = self.resources.enter_context(flushed_redis(redis_url))
            if broker == "rabbitmq":
                amqp = self.request.getfixturevalue("rabbitmq_url")
                broker_url = self.resources.enter_context(rabbitmq_vhost(amqp))
        root = Path(tempfile.mkdtemp(prefix="stack-", dir=self.root))
        stack = start_stack(
            root,
            postgres_url=dagster_db,
            store_url=store_db,
            broker_url=broker_url,
            backend_url=backend_url or broker_url,
            flows_dir=write_specs(root / "flows", specs),
            **kwargs,
        )
        self.resources.callback(stack.stop)
        return stack

    def close(self) -> None:
        self.resources.close()


@pytest.fixture(scope="module")
def stack_factory(
    postgres_url: str, tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Iterator[StackFactory]:
    """Start stacks with ``stack_factory.start(specs, ...)``; all end with the module."""
    factory = StackFactory(postgres_url, tmp_path_factory.mktemp("stacks"), request)
    yield factory
    factory.close()
