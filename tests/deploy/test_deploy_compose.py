"""docker-compose.yml: valid Compose, and in agreement with the files the services read.

No Docker engine runs on the test machines, so the file is checked the way ``docker compose
config`` would see it: variables interpolated (from ``deploy/env.example``, which must define
every required one), YAML anchors merged, then validated against the Compose Specification's
JSON Schema (vendored in ``schemas/``). The rest checks that commands, environment, volumes and
networks agree with ``dagster.yaml``, ``workspace.yaml``, ``deploy/workspace.grpc.yaml``, the
Celery worker file and the Dockerfile, and that only the proxies are reachable from outside (S1);
and the supply chain: every image pinned by digest, the locks pinned with hashes, and the
image's lock free of test-only packages.
"""

from __future__ import annotations

import json
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from dp_assets.compiler import celery as cc
from dp_deploy.checks import check_deployment, load_yaml
from tests.support.processes import REPO_ROOT

COMPOSE = REPO_ROOT / "docker-compose.yml"
SCHEMA = Path(__file__).parent / "schemas" / "compose-spec.json"
APP_DIR = "/opt/dagster/app"
DAGSTER_HOME = "/opt/dagster/home"
DAGSTER_SERVICES = ("code-server", "webserver", "viewer", "daemon", "worker", "dispatcher", "designer")
DATA_SERVICES = ("postgres", "redis", "rabbitmq")
PUBLISHED = {"proxy", "viewer-proxy", "designer-proxy"}


# --- Compose's variable interpolation ------------------------------------------------------------


def interpolate(text: str, env: Mapping[str, str]) -> str:
    """``$$``, ``$VAR``, ``${VAR}``, ``${VAR:-default}``, ``${VAR-d}``, ``${VAR:?err}`` (nested)."""
    out: list[str] = []
    i = 0
    while i < len(text):
        if text[i] != "$":
            out.append(text[i])
            i += 1
            continue
        nxt = text[i + 1 : i + 2]
        if nxt == "$":
            out.append("$")
            i += 2
        elif nxt == "{":
            depth, j = 0, i + 1
            while True:
                depth += {"{": 1, "}": -1}.get(text[j], 0)
                if depth == 0:
                    break
                j += 1
            out.append(_resolve(text[i + 2 : j], env))
            i = j + 1
        else:
            match = re.match(r"[A-Za-z_][A-Za-z0-9_]*", text[i + 1 :])
            assert match, f"bad interpolation in {text!r}"
            out.append(env.get(match.group(0), ""))
            i += 1 + match.end()
    return "".join(out)


def _resolve(inner: str, env: Mapping[str, str]) -> str:
    match = re.match(r"([A-Za-z_][A-Za-z0-9_]*)(:?[-?+])?(.*)$", inner, re.DOTALL)
    assert match, f"bad interpolation ${{{inner}}}"
    name, op, rest = match.groups()
    value = env.get(name)
    unset_or_empty = not value if op and op.startswith(":") else value is None
    if op in (":-", "-"):
        return interpolate(rest, env) if unset_or_empty else value
    if op in (":?", "?"):
        if unset_or_empty:
            raise KeyError(f"required variable {name} is not set: {rest}")
        return value
    if op in (":+", "+"):
        return "" if unset_or_empty else interpolate(rest, env)
    return value or ""


def _walk(value: Any, env: Mapping[str, str]) -> Any:
    if isinstance(value, str):
        return interpolate(value, env)
    if isinstance(value, dict):
        return {key: _walk(item, env) for key, item in value.items()}
    if isinstance(value, list):
        return [_walk(item, env) for item in value]
    return value


def read_env_file(path: Path) -> dict[str, str]:
    env: dict[str, str] = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, _, value = line.partition("=")
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        env[key.strip()] = value
    return env


@pytest.fixture(scope="module")
def example_env() -> dict[str, str]:
    return read_env_file(REPO_ROOT / "deploy" / "env.example")


@pytest.fixture(scope="module")
def raw() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text())


@pytest.fixture(scope="module")
def compose(raw: dict[str, Any], example_env: dict[str, str]) -> dict[str, Any]:
    """The file as docker compose sees it with deploy/env.example as .env."""
    return _walk(raw, example_env)


def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return compose["services"]


def environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {key: str(value) for key, value in env.items()}


def command(service: dict[str, Any]) -> list[str]:
    value = service.get("command")
    assert isinstance(value, list), "commands are exec-form lists"
    return [str(part) for part in value]


def option(argv: list[str], *names: str) -> str:
    for index, part in enumerate(argv):
        if part in names:
            return argv[index + 1]
    raise AssertionError(f"{names} not in {argv}")


# --- the schema ----------------------------------------------------------------------------------


def test_compose_file_matches_the_compose_specification(raw: dict[str, Any], compose: dict[str, Any]) -> None:
    schema = json.loads(SCHEMA.read_text())
    validator = jsonschema.validators.validator_for(schema)(schema)
    for document in (raw, compose):
        errors = sorted(validator.iter_errors(document), key=lambda e: list(e.path))
        assert not errors, "\n".join(f"{list(e.path)}: {e.message}" for e in errors)


def test_schema_catches_a_broken_file(compose: dict[str, Any]) -> None:
    """The validator is not vacuous: a misspelt key and a bad condition are errors."""
    schema = json.loads(SCHEMA.read_text())
    validator = jsonschema.validators.validator_for(schema)(schema)
    broken = json.loads(json.dumps(compose))
    broken["services"]["worker"]["depends_on"]["redis"]["condition"] = "service_ready"
    broken["services"]["proxy"]["helthcheck"] = {}
    assert len(list(validator.iter_errors(broken))) >= 2


def test_env_example_defines_every_required_variable(raw: dict[str, Any]) -> None:
    """Interpolating with no .env fails on the required secrets (nothing has a weak default)."""
    with pytest.raises(KeyError, match="required variable"):
        _walk(raw, {})
    required = set(re.findall(r"\$\{([A-Z_][A-Z0-9_]*):\?", COMPOSE.read_text()))
    example = read_env_file(REPO_ROOT / "deploy" / "env.example")
    assert required <= set(example), required - set(example)
    assert {"DAGSTER_PG_PASSWORD", "DP_PROXY_USERS", "DP_REDIS_PASSWORD"} <= required


# --- services and their commands -----------------------------------------------------------------


def test_every_service_is_there(compose: dict[str, Any]) -> None:
    assert set(services(compose)) == {*DATA_SERVICES, *DAGSTER_SERVICES, *PUBLISHED}
    assert services(compose)["rabbitmq"]["profiles"] == ["rabbitmq"]


def test_code_server_serves_the_workspace_module(compose: dict[str, Any]) -> None:
    """The gRPC server loads the module of workspace.yaml under its location name, on the port
    and host that deploy/workspace.grpc.yaml names."""
    local = load_yaml(REPO_ROOT / "workspace.yaml")["load_from"][0]["python_module"]
    grpc = load_yaml(REPO_ROOT / "deploy" / "workspace.grpc.yaml")["load_from"][0]["grpc_server"]
    argv = command(services(compose)["code-server"])
    assert argv[:3] == ["dagster", "code-server", "start"]
    assert option(argv, "-m", "--module-name") == local["module_name"] == "dp_assets.definitions"
    assert option(argv, "--location-name") == local["location_name"] == grpc["location_name"]
    assert int(option(argv, "-p", "--port")) == grpc["port"]
    assert grpc["host"] in services(compose)
    assert grpc["host"] == "code-server"


@pytest.mark.parametrize("name", ["webserver", "viewer", "daemon"])
def test_clients_of_the_code_server_use_the_grpc_workspace(compose: dict[str, Any], name: str) -> None:
    argv = command(services(compose)[name])
    assert option(argv, "-w", "--workspace") == f"{APP_DIR}/deploy/workspace.grpc.yaml"
    depends = services(compose)[name]["depends_on"]
    assert depends["code-server"]["condition"] == "service_healthy"


@pytest.mark.parametrize("name", ["webserver", "viewer"])
def test_webservers_hold_no_stale_db_connection_F4(compose: dict[str, Any], name: str) -> None:
    """F4: the stock webserver pools PostgreSQL connections without a liveness check; after a
    database restart its next launch failed on a dead one (tests/deploy/test_deploy_faults.py).
    ``--db-pool-recycle 0`` opens a fresh connection per use, as the harness does."""
    from deploy_stack import WEBSERVER_DB_OPTIONS

    argv = command(services(compose)[name])
    assert option(argv, WEBSERVER_DB_OPTIONS[0]) == WEBSERVER_DB_OPTIONS[1]


def test_dispatcher_launches_through_the_webserver(compose: dict[str, Any]) -> None:
    """`dp dispatch` reaches the (unproxied) webserver's GraphQL on a network they share, and
    starts only when that webserver answers."""
    dispatcher = services(compose)["dispatcher"]
    argv = command(dispatcher)
    assert argv[:4] == ["python", "-m", "dp_assets.cli", "dispatch"]
    webserver = services(compose)["webserver"]
    assert option(argv, "--dagster-url") == f"http://webserver:{option(command(webserver), '-p')}/graphql"
    assert set(dispatcher["networks"]) & set(webserver["networks"])
    assert dispatcher["depends_on"]["webserver"]["condition"] == "service_healthy"


def test_executor_and_workers_read_one_celery_file(compose: dict[str, Any]) -> None:
    """DP_CELERY_CONFIG, read by the executor of Celery flows, is the file the workers start
    with, so both sides have the same settings."""
    worker_file = option(command(services(compose)["worker"]), "-y")
    for name in DAGSTER_SERVICES:
        assert environment(services(compose)[name])[cc.CONFIG_FILE_ENV] == worker_file, name


def test_viewer_is_read_only_S5(compose: dict[str, Any]) -> None:
    assert "--read-only" in command(services(compose)["viewer"])
    assert "--read-only" not in command(services(compose)["webserver"])


@pytest.mark.parametrize(
    ("proxy", "upstream", "users"),
    [
        ("proxy", "webserver", "DP_PROXY_USERS"),
        ("viewer-proxy", "viewer", "DP_VIEWER_PROXY_USERS"),
        ("designer-proxy", "designer", "DP_PROXY_USERS"),
    ],
)
def test_proxies_front_the_webservers_S1(
    compose: dict[str, Any], example_env: dict[str, str], proxy: str, upstream: str, users: str
) -> None:
    service = services(compose)[proxy]
    argv = command(service)
    assert argv[:5] == ["python", "-m", "dp_proxy", "serve", "--upstream"]
    upstream_port = option(command(services(compose)[upstream]), "-p", "--port")
    assert option(argv, "--upstream") == f"http://{upstream}:{upstream_port}"
    assert environment(service)["DP_PROXY_USERS"] == example_env[users]
    assert service["depends_on"][upstream]["condition"] == "service_healthy"
    assert set(service["networks"]) & set(services(compose)[upstream]["networks"]), "the proxy reaches it"


def test_designer_serves_the_built_client_and_launches_through_the_webserver(compose: dict[str, Any]) -> None:
    """`dp designer` in the image: on every interface of its container (only the proxy reaches
    it), serving the client the image built, on the flow store every Dagster service uses, and
    launching through the unproxied webserver's GraphQL, which it waits for."""
    from dp_designer.cli import DEFAULT_PORT

    designer = services(compose)["designer"]
    argv = command(designer)
    assert argv[:4] == ["python", "-m", "dp_assets.cli", "designer"]
    assert option(argv, "--host") == "0.0.0.0" and int(option(argv, "--port")) == DEFAULT_PORT
    assert option(argv, "--client") == f"{APP_DIR}/designer/dist"
    assert "COPY --from=client /client/dist ./designer/dist" in (REPO_ROOT / "Dockerfile").read_text()
    env = environment(designer)
    webserver = services(compose)["webserver"]
    assert env["DP_DAGSTER_GRAPHQL_URL"] == f"http://webserver:{option(command(webserver), '-p')}/graphql"
    assert set(designer["networks"]) & set(webserver["networks"])
    assert designer["depends_on"]["webserver"]["condition"] == "service_healthy"
    assert env["DP_STORE_URL"] == environment(services(compose)["code-server"])["DP_STORE_URL"]
    assert env["DP_WEBSERVER_URL"].endswith(":8080"), "links open Dagster's UI through its proxy"
    assert str(DEFAULT_PORT) in " ".join(designer["healthcheck"]["test"])


def test_only_the_proxies_are_published_S1(compose: dict[str, Any]) -> None:
    """S1: webservers, the gRPC server and the data services publish nothing; the proxies
    publish on 127.0.0.1 unless the deployment says otherwise."""
    published = {name for name, s in services(compose).items() if s.get("ports")}
    assert published == PUBLISHED
    for name in PUBLISHED:
        for port in services(compose)[name]["ports"]:
            assert str(port).startswith("127.0.0.1:")


def test_private_networks_S1(compose: dict[str, Any]) -> None:
    """Data services and the code server sit only on internal networks; the webservers are not
    on the published network."""
    networks = compose["networks"]
    # The daemon reaches out like the code server: the warm run launcher forks run workers there.
    for name in (*DATA_SERVICES, "webserver", "viewer", "dispatcher"):
        for network in services(compose)[name]["networks"]:
            assert networks[network].get("internal") is True, (name, network)
    for name in ("webserver", "viewer", "designer"):
        assert "edge" not in services(compose)[name]["networks"], name
    for name in PUBLISHED:
        assert set(services(compose)[name]["networks"]) == {"web", "edge"}, name
    for name in ("code-server", "worker", "daemon"):
        assert "backend" in services(compose)[name]["networks"]
    assert set(services(compose)["daemon"]["networks"]) == set(services(compose)["code-server"]["networks"])


def test_workers_scale(compose: dict[str, Any]) -> None:
    """`--scale worker=N` needs no fixed name and no published port; each worker is unique by
    host name (`dagster@%h`)."""
    worker = services(compose)["worker"]
    assert "container_name" not in worker and "ports" not in worker
    assert option(command(worker), "-n") == "dagster@%h"


# --- health checks and start order -------------------------------------------------------------


def test_every_service_has_a_health_check(compose: dict[str, Any]) -> None:
    for name, service in services(compose).items():
        assert service.get("healthcheck", {}).get("test"), name


def test_depends_on_waits_for_health(compose: dict[str, Any]) -> None:
    for name, service in services(compose).items():
        for dependency, spec in (service.get("depends_on") or {}).items():
            assert spec["condition"] == "service_healthy", (name, dependency)
            assert dependency in services(compose)
            if "profiles" in services(compose)[dependency]:
                assert spec.get("required") is False, (name, dependency)


# --- environment and storage agree with dagster.yaml and the Celery file -------------------------


def _env_refs(value: Any) -> set[str]:
    if isinstance(value, dict):
        if set(value) == {"env"}:
            return {value["env"]}
        return set().union(*(_env_refs(v) for v in value.values())) if value else set()
    if isinstance(value, list):
        return set().union(*(_env_refs(v) for v in value)) if value else set()
    return set()


@pytest.mark.parametrize("name", DAGSTER_SERVICES)
def test_dagster_services_get_the_instance_env(compose: dict[str, Any], name: str) -> None:
    """Every variable dagster.yaml and the worker file read is set in every Dagster service,
    and the instance points at the compose PostgreSQL with the dagster role."""
    env = environment(services(compose)[name])
    needed = _env_refs(load_yaml(REPO_ROOT / "dagster.yaml"))
    needed |= _env_refs(load_yaml(REPO_ROOT / "deploy" / "celery-worker.yaml"))
    assert needed - set(env) == set()
    assert env["DAGSTER_HOME"] == DAGSTER_HOME
    assert env["DAGSTER_PG_HOST"] == "postgres" and env["DAGSTER_PG_USER"] == "dagster"


def test_celery_settings_hold_with_the_compose_env(compose: dict[str, Any]) -> None:
    """The worker file passes the Celery rules, and together with dagster.yaml the deployment
    check, with exactly the environment the worker container gets (F1, F8)."""
    worker = services(compose)["worker"]
    argv = command(worker)
    assert argv[:4] == ["python", "-m", "dp_deploy", "celery-worker"]
    assert option(argv, "-y") == f"{APP_DIR}/deploy/celery-worker.yaml"
    env = environment(worker)
    assert cc.url_scheme(env["DP_CELERY_BROKER"]) == "redis"
    assert env["DP_CELERY_BROKER"].endswith("@redis:6379/0")
    errors = check_deployment(
        load_yaml(REPO_ROOT / "dagster.yaml"),
        load_yaml(REPO_ROOT / "deploy" / "celery-worker.yaml"),
        env,
    )
    assert errors == []
    assert environment(services(compose)["code-server"])["DP_CELERY_BROKER"] == env["DP_CELERY_BROKER"]


def test_rabbitmq_consumer_timeout_agrees_F8(compose: dict[str, Any]) -> None:
    """F8: the RabbitMQ server's consumer_timeout is the value the platform is told, and above
    the step time limit."""
    conf = (REPO_ROOT / "deploy" / "rabbitmq" / "rabbitmq.conf").read_text()
    milliseconds = int(re.search(r"^consumer_timeout\s*=\s*(\d+)", conf, re.MULTILINE).group(1))
    declared = environment(services(compose)["worker"])[cc.RABBITMQ_CONSUMER_TIMEOUT_ENV]
    assert milliseconds / 1000 == float(declared)
    rabbit_env = {
        cc.BROKER_ENV: "amqp://dp:x@rabbitmq:5672//",
        cc.BACKEND_ENV: "redis://redis:6379/1",
        cc.RABBITMQ_CONSUMER_TIMEOUT_ENV: declared,
    }
    worker_doc = load_yaml(REPO_ROOT / "deploy" / "celery-worker.yaml")
    assert check_deployment(load_yaml(REPO_ROOT / "dagster.yaml"), worker_doc, rabbit_env) == []
    mounts = services(compose)["rabbitmq"]["volumes"]
    assert any(m.startswith("./deploy/rabbitmq/rabbitmq.conf:") for m in mounts)


def test_shared_storage_is_mounted_everywhere(compose: dict[str, Any]) -> None:
    """Compute logs (DAGSTER_HOME/storage) and run outputs are on volumes every Dagster process
    mounts at the same path: a step's output written by one worker is read by another."""
    for name in DAGSTER_SERVICES:
        service = services(compose)[name]
        mounts = {m.split(":")[1]: m.split(":")[0] for m in service["volumes"]}
        env = environment(service)
        assert mounts[f"{DAGSTER_HOME}/storage"] == "dagster_storage"
        assert mounts[env["DP_OUTPUTS_URL"]] == "dp_outputs"
        assert mounts[env["DP_DATA_DIR"]] == "dp_files"
    assert set(compose["volumes"]) >= {"pgdata", "dagster_storage", "dp_outputs"}


def test_user_sql_role_is_not_dagsters(compose: dict[str, Any]) -> None:
    """User SQL nodes connect as their own role to their own database (deploy/postgres)."""
    env = environment(services(compose)["worker"])
    sql_user = env["DP_SQL_URL"].split("//", 1)[1].split(":", 1)[0]
    store_user = env["DP_STORE_URL"].split("//", 1)[1].split(":", 1)[0]
    assert len({sql_user, store_user, env["DAGSTER_PG_USER"]}) == 3
    script = (REPO_ROOT / "deploy" / "postgres" / "initdb" / "10-dp-roles.sh").read_text()
    for role in (sql_user, store_user, env["DAGSTER_PG_USER"]):
        assert f"CREATE ROLE {role} LOGIN" in script


def test_dockerfile_provides_what_compose_expects() -> None:
    dockerfile = (REPO_ROOT / "Dockerfile").read_text()
    assert f"WORKDIR {APP_DIR}" in dockerfile
    assert f"DAGSTER_HOME={DAGSTER_HOME}" in dockerfile
    assert f"COPY dagster.yaml {DAGSTER_HOME}/dagster.yaml" in dockerfile
    assert "COPY deploy ./deploy" in dockerfile
    assert re.search(r"^USER (?!root)\w+", dockerfile, re.MULTILINE)
    ignored = (REPO_ROOT / ".dockerignore").read_text().split()
    assert {".env", ".venv", ".dp_home", ".git"} <= set(ignored)


def test_image_copies_every_package_it_installs() -> None:
    """Each top-level package pyproject.toml installs is copied into the image (a package left
    out builds fine and fails at the first import in production)."""
    dockerfile = (REPO_ROOT / "Dockerfile").read_text()
    pyproject = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())
    patterns = pyproject["tool"]["setuptools"]["packages"]["find"]["include"]
    packages = {pattern.rstrip("*") for pattern in patterns}
    assert packages and all((REPO_ROOT / name / "__init__.py").exists() for name in packages)
    copied = set(re.findall(r"^COPY (\w+) \./\1$", dockerfile, re.MULTILINE))
    assert packages <= copied, packages - copied


# --- supply chain: images pinned by digest, dependencies by hash -------------------------------

DIGEST = re.compile(r"^[\w./-]+:[\w.-]+@sha256:[0-9a-f]{64}$")


def test_every_image_is_pinned_by_digest(raw: dict[str, Any]) -> None:
    """A tag moves whenever upstream rebuilds it; a digest names one image. The services run
    either the platform's own image (built from the Dockerfile) or an image pinned as
    ``name:tag@sha256:...``, and so does every FROM of the Dockerfile."""
    for name, service in raw["services"].items():
        image = str(service.get("image", ""))
        if "build" in service:
            assert image.startswith("${DP_IMAGE:-"), name
        else:
            assert DIGEST.match(image), f"{name}: {image} is not pinned by digest"
    dockerfile = (REPO_ROOT / "Dockerfile").read_text()
    bases = re.findall(r"^FROM\s+(\S+)", dockerfile, re.MULTILINE)
    assert bases and all(DIGEST.match(base) for base in bases), bases


def test_redis_protocol_server_is_valkey(raw: dict[str, Any]) -> None:
    """The broker is an open-source Redis-compatible server (Redis itself is not open source
    from 7.4), started and health-checked with that server's own programs."""
    service = raw["services"]["redis"]
    assert service["image"].startswith("valkey/valkey:")
    assert "exec valkey-server --appendonly yes" in service["command"][-1]
    assert service["healthcheck"]["test"][1].startswith("valkey-cli ")


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _requirement_name(requirement: str) -> str:
    return _canonical(re.match(r"[A-Za-z0-9_.-]+", requirement).group(0))


@dataclass
class Pin:
    version: str
    hashes: int = 0
    via: set[str] = field(default_factory=set)


def read_lock(path: Path) -> dict[str, Pin]:
    """The pins of a ``uv pip compile --generate-hashes`` file: version, hashes, and what
    requires each (its ``# via`` comments; ``dp-platform`` is pyproject.toml itself)."""
    pins: dict[str, Pin] = {}
    current: Pin | None = None
    for line in path.read_text().splitlines():
        stripped = line.strip()
        if not stripped or (current is None and stripped.startswith("#")):
            continue
        if not line.startswith(" "):
            match = re.match(r"([A-Za-z0-9_.-]+)==([^\s\\]+)", line)
            assert match, f"{path.name}: not a pinned requirement: {line[:80]}"
            current = pins[_canonical(match.group(1))] = Pin(match.group(2))
        elif stripped.startswith("--hash=sha256:"):
            current.hashes += 1
        elif stripped.startswith("#"):
            words = stripped.lstrip("#").strip().removeprefix("via").split()
            if words:
                current.via.add(_canonical(words[0]))
    return pins


@pytest.fixture(scope="module")
def pyproject() -> dict[str, Any]:
    return tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())


@pytest.mark.parametrize("lock", ["requirements.lock", "requirements-runtime.lock"])
def test_locks_pin_every_package_with_its_hashes(lock: str, pyproject: dict[str, Any]) -> None:
    """Each lock pins an exact version with its hashes for every package (installs run with
    hashes required), and names every dependency pyproject.toml declares for it: a dependency
    added without `make lock` fails here rather than at install."""
    pins = read_lock(REPO_ROOT / lock)
    assert pins and all(pin.hashes >= 1 for pin in pins.values()), lock
    declared = list(pyproject["project"]["dependencies"])
    if lock == "requirements.lock":
        declared += pyproject["project"]["optional-dependencies"]["dev"]
    missing = {_requirement_name(r) for r in declared} - set(pins)
    assert not missing, f"{lock} lacks {sorted(missing)}: run `make lock`"


def test_runtime_lock_is_the_tested_versions_without_the_dev_tools(pyproject: dict[str, Any]) -> None:
    """The image gets the versions the tests ran with (requirements.lock), without what only
    the tests and the bench use: a dev-extra package is in it only when a runtime package
    requires it (jsonschema: mcp), never for the project's own sake."""
    full = read_lock(REPO_ROOT / "requirements.lock")
    runtime = read_lock(REPO_ROOT / "requirements-runtime.lock")
    assert {name: pin.version for name, pin in runtime.items()} == {
        name: full[name].version for name in runtime if name in full
    }
    assert set(runtime) < set(full)
    for requirement in pyproject["project"]["optional-dependencies"]["dev"]:
        name = _requirement_name(requirement)
        if name in runtime:
            assert runtime[name].via and "dp-platform" not in runtime[name].via, (name, runtime[name].via)
    for test_only in ("pytest", "hypothesis", "playwright", "matplotlib"):
        assert test_only not in runtime, test_only


def test_installs_require_hashes() -> None:
    """`make install` and the image install from the locks with hashes required."""
    makefile = (REPO_ROOT / "Makefile").read_text()
    dockerfile = (REPO_ROOT / "Dockerfile").read_text()
    assert "--require-hashes -r requirements.lock" in makefile
    assert "pip install --no-deps --require-hashes -r requirements-runtime.lock" in dockerfile
    assert "requirements.lock" not in dockerfile.replace("requirements-runtime.lock", "")


def test_local_workspace_differs_only_by_host() -> None:
    grpc = load_yaml(REPO_ROOT / "deploy" / "workspace.grpc.yaml")["load_from"][0]["grpc_server"]
    local = load_yaml(REPO_ROOT / "deploy" / "workspace.local.yaml")["load_from"][0]["grpc_server"]
    assert {**grpc, "host": "localhost"} == local


def test_documented_commands_exist() -> None:
    """Every `python -m dp_deploy|dp_proxy <command>` in docs/deploy.md and
    docker-compose.yml is a real command."""
    from dp_deploy.checks import deploy_cli
    from dp_proxy.cli import proxy_cli

    known = {"dp_deploy": set(deploy_cli.commands), "dp_proxy": set(proxy_cli.commands)}
    text = (REPO_ROOT / "docs" / "deploy.md").read_text() + COMPOSE.read_text()
    used = re.findall(r"-m (dp_deploy|dp_proxy)\s+([a-z][a-z-]*)", text)
    compose_lists = re.findall(r"- (dp_deploy|dp_proxy)\n\s+- ([a-z-]+)", text)
    assert used and compose_lists
    for module, name in used + compose_lists:
        assert name in known[module], f"{module} {name}"


# --- roles on: deploy/compose.roles.yaml over docker-compose.yml ----------------------------------

ROLES_OVERRIDE = REPO_ROOT / "deploy" / "compose.roles.yaml"


def merge_compose(base: Any, override: Any, key: str = "") -> Any:
    """Compose's merge of a later file: mappings merge key by key, a service's ``networks`` list
    is the union, any other value is replaced (the rules of the Compose Specification's merge)."""
    if isinstance(base, dict) and isinstance(override, dict):
        merged = dict(base)
        for name, value in override.items():
            merged[name] = merge_compose(base[name], value, name) if name in base else value
        return merged
    if key == "networks" and isinstance(base, list) and isinstance(override, list):
        return [*base, *(item for item in override if item not in base)]
    return override


@pytest.fixture(scope="module")
def roles_compose(raw: dict[str, Any], example_env: dict[str, str]) -> dict[str, Any]:
    override = {k: v for k, v in yaml.safe_load(ROLES_OVERRIDE.read_text()).items() if not k.startswith("x-")}
    return _walk(merge_compose(raw, override), example_env)


def test_roles_override_is_valid_compose(roles_compose: dict[str, Any]) -> None:
    schema = json.loads(SCHEMA.read_text())
    validator = jsonschema.validators.validator_for(schema)(schema)
    errors = sorted(validator.iter_errors(roles_compose), key=lambda e: list(e.path))
    assert not errors, "\n".join(f"{list(e.path)}: {e.message}" for e in errors)


def test_roles_override_turns_roles_on_where_the_platform_checks_them(roles_compose: dict[str, Any]) -> None:
    """Every proxy and the designer enforce roles with one shared identity key (the proxy signs
    the caller, the designer believes only that signature), and the proxies read the grants from
    the flow store the designer and workers use; the settings object accepts every value."""
    from dp_settings import load

    store_url = environment(services(roles_compose)["designer"])["DP_STORE_URL"]
    keys = set()
    for name in (*PUBLISHED, "designer"):
        env = environment(services(roles_compose)[name])
        settings = load(env)
        assert settings.auth.enforce is True, name
        assert settings.auth.identity_key is not None, name
        keys.add(settings.auth.identity_key.get_secret_value())
        if name in PUBLISHED:
            assert env["DP_STORE_URL"] == store_url, name
            assert env["DP_PROXY_USERS"], "the override keeps the proxy's own settings"
    assert len(keys) == 1


def test_roles_override_gives_the_proxies_the_database_alone_S1(roles_compose: dict[str, Any]) -> None:
    """With roles on, a proxy reaches PostgreSQL over an internal network that holds nothing else:
    not Redis, the code server, the workers or the webservers' backend."""
    networks = roles_compose["networks"]
    members = {
        network: {name for name, s in services(roles_compose).items() if network in s.get("networks", ())}
        for network in networks
    }
    assert networks["store"].get("internal") is True
    assert members["store"] == {"postgres", *PUBLISHED}
    for name in PUBLISHED:
        assert set(services(roles_compose)[name]["networks"]) == {"web", "edge", "store"}, name
        assert services(roles_compose)[name]["depends_on"]["postgres"]["condition"] == "service_healthy"
    published = {name for name, s in services(roles_compose).items() if s.get("ports")}
    assert published == PUBLISHED
