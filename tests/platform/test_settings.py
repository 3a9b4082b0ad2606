"""The platform's settings: one model of every variable, documented, and the only reader of them."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

import dp_settings
from dp_settings import PlatformSettings, load
from dp_settings.catalog import COMPOSE_VARIABLES, is_known

ROOT = Path(__file__).resolve().parents[2]
PRODUCT_PACKAGES = ("dp_assets", "dp_resources", "dp_io", "dp_sensors", "dp_proxy", "dp_deploy", "dp_instance")

#: The only product modules that may touch the process environment: how many times, and why.
ENVIRONMENT_ALLOWED = {
    "dp_resources/sandbox/isolation.py": (1, "empties the environment of the sandboxed child process"),
    "dp_assets/cli/home.py": (
        2,
        "sets DAGSTER_HOME for Dagster (DagsterInstance.get) when a command uses "
        "the embedded default's instance, and resolves the `{env: NAME}` references "
        "of DAGSTER_HOME/dagster.yaml (names the file chooses) to name an unreachable "
        "PostgreSQL",
    ),
    "dp_deploy/checks.py": (
        4,
        "resolves the `{env: NAME}` references of the YAML files Dagster reads "
        "(names the files choose), and hands its environment to the Celery worker it "
        "becomes (exec)",
    ),
    "dp_assets/dagster_internals.py": (
        1,
        "reads DAGSTER_IS_DEFS_VALIDATION_CLI, which Dagster's own CLI sets while `dg check defs` "
        "loads the definitions (Dagster's variable, not a setting of ours)",
    ),
    "dp_resources/secrets.py": (
        1,
        "resolves `${env:NAME}` references by the name a spec gives (secrets are "
        "not settings: the deployment names them)",
    ),
}


def _environment_reads(path: Path) -> list[int]:
    """Lines of ``path`` that read or write the environment directly (os.environ, getenv, envvar=)."""
    tree = ast.parse(path.read_text(), str(path))
    lines = []
    for node in ast.walk(tree):
        reads_os = (
            isinstance(node, ast.Attribute)
            and node.attr in ("environ", "getenv", "putenv", "unsetenv")
            and isinstance(node.value, ast.Name)
            and node.value.id == "os"
        )
        imports_from_os = (
            isinstance(node, ast.ImportFrom)
            and node.module == "os"
            and any(alias.name in ("environ", "getenv") for alias in node.names)
        )
        if reads_os or imports_from_os:
            lines.append(node.lineno)
        elif isinstance(node, ast.keyword) and node.arg in ("envvar", "auto_envvar_prefix"):
            lines.append(node.lineno)  # click options reading the environment on their own
    return sorted(lines)


def test_only_dp_settings_reads_the_environment():
    """A new `os.environ.get("DP_...")` in a product module bypasses the documented settings."""
    offenders = []
    for package in PRODUCT_PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            where = path.relative_to(ROOT).as_posix()
            lines = _environment_reads(path)
            allowed, _reason = ENVIRONMENT_ALLOWED.get(where, (0, ""))
            if len(lines) != allowed:
                offenders += [f"{where}:{line}" for line in lines]
    assert offenders == [], "read settings through dp_settings (docs/settings.md) instead: " + ", ".join(offenders)


# --- the model keeps today's meaning of every variable ----------------------------------------


def test_defaults_without_any_variable(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    settings = load({})
    home = (tmp_path / ".dp_home").resolve()
    assert settings.dp_home() == home
    assert settings.flows_folder() == ROOT / "flows"
    assert settings.store_url() == f"sqlite:///{home / 'store.db'}"
    assert settings.data_folder() == home / "data"
    assert settings.outputs_base() == str(home / "outputs")
    assert settings.events_bus_url() == settings.launch_ledger_url() == settings.store_url()
    assert settings.dagster_home_folder() is None
    assert settings.default_executor() == "in_process"
    assert settings.sensor_interval(30) == 30
    assert settings.http.allowed_networks == [] and settings.db.writable_sql == []
    assert settings.proxy.upstream == "http://127.0.0.1:3000" and settings.proxy.tokens() == []


def test_an_empty_value_counts_as_unset_except_where_it_always_meant_something(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    names = [v.name for v in dp_settings.variables()]
    settings = load(dict.fromkeys(names, ""))
    assert settings == load(
        {"DP_FLOWS_DIR": "", "DP_PROXY_UPSTREAM": "", "DP_CELERY_BROKER": "", "DP_CELERY_BACKEND": ""}
    )
    assert settings.flows_folder() is None  # DP_FLOWS_DIR="" turns the import of spec files off
    assert settings.proxy.upstream == ""  # refused by the proxy, as before
    assert settings.dp_home() == (tmp_path / ".dp_home").resolve()
    assert settings.sensor_interval(30) == 30 and settings.default_executor() == "in_process"


def test_values_are_parsed_into_their_groups():
    settings = load(
        {
            "DP_HOME": "/srv/dp",
            "DP_SMTP_FROM": "dp@example.com",
            "DP_SMTP_PORT": "2525",
            "DP_PROXY_LOGIN_BURST": "5",
            "DP_PROXY_TOKEN": "a, b,",
            "DP_HTTP_ALLOWED_NETWORKS": "10.0.0.0/8, 192.168.0.0/16",
            "DP_DB_WAREHOUSE_URL": "postgresql+psycopg2://w@db/x",
            "DP_DB_WAREHOUSE_QUERY_URL": "postgresql+psycopg2://r@db/x",
            "DP_DB_WRITABLE_SQL": "lake, scratch",
            "DP_WEBHOOK_TOKEN": "global",
            "DP_WEBHOOK_TOKEN_DAILY_SALES": "own",
            "DP_WEBHOOK_TEAM_ALERTS_URL": "https://hooks.example/t",
            "DAGSTER_HOME": "/srv/dagster",
            "DP_SENSOR_INTERVAL_SECONDS": "5",
            "DP_EXECUTOR": "celery",
            "DP_RABBITMQ_CONSUMER_TIMEOUT_SECONDS": "7200",
        }
    )
    assert settings.store_url() == "sqlite:////srv/dp/store.db"
    assert (settings.smtp.from_, settings.smtp.port, settings.proxy.login_burst) == ("dp@example.com", 2525, 5)
    assert settings.proxy.tokens() == ["a", "b"]
    assert settings.http.allowed_networks == ["10.0.0.0/8", "192.168.0.0/16"]
    assert settings.db.url("warehouse") == "postgresql+psycopg2://w@db/x"
    assert settings.db.query_url("warehouse") == "postgresql+psycopg2://r@db/x"
    assert settings.db.url("lake") is None and settings.db.writable_sql == ["lake", "scratch"]
    assert settings.webhook.flow_token("daily_sales") == "own" and settings.webhook.flow_token("other") is None
    assert settings.webhook.token.get_secret_value() == "global"
    assert settings.webhook.url("team_alerts") == "https://hooks.example/t"
    assert settings.dagster_home_folder() == Path("/srv/dagster")
    assert (settings.sensor_interval(30), settings.default_executor()) == (5, "celery")
    assert settings.rabbitmq.consumer_timeout_seconds == 7200


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("DP_EXECUTOR", "celeri", "DP_EXECUTOR='celeri': choose one of in_process, multiprocess, celery"),
        ("DP_SENSOR_INTERVAL_SECONDS", "soon", "DP_SENSOR_INTERVAL_SECONDS='soon' is not a whole number"),
        ("DP_SENSOR_INTERVAL_SECONDS", "0", "DP_SENSOR_INTERVAL_SECONDS must be at least 1 second"),
        ("DP_SMTP_SECURITY", "tls", "DP_SMTP_SECURITY must be none, starttls or ssl, not 'tls'"),
        ("DP_PROXY_LOGIN_BURST", "many", "login_burst"),
    ],
)
def test_a_bad_value_stops_the_process_naming_it(name, value, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        load({name: value})


def test_secrets_never_show_in_a_repr():
    secrets = {
        "DP_STORE_URL": "postgresql://u:pw-store@h/db",
        "DP_LLM_API_KEY": "sk-key",
        "DP_SMTP_PASSWORD": "pw-smtp",
        "DP_PROXY_TOKEN": "tok-proxy",
        "DP_WEBHOOK_TOKEN_F": "tok-f",
        "DP_DB_X_URL": "postgresql://u:pw-db@h/db",
        "DP_CELERY_BROKER": "redis://:pw-redis@r:6379/0",
        "DP_DAGSTER_TOKEN": "tok-dagster",
        "DP_EVENTS_URL": "redis://:pw-events@r/1",
    }
    text = repr(load(secrets)) + str(load(secrets))
    assert not [value for value in secrets.values() if value in text]


def test_every_setting_is_described():
    assert all(v.description for v in dp_settings.variables())
    names = [v.name for v in dp_settings.variables()]
    assert len(names) == len(set(names))


# --- where the settings come from ---------------------------------------------------------------


def test_current_follows_the_environment_and_using_overrides_it(monkeypatch):
    monkeypatch.setenv("DP_EXECUTOR", "multiprocess")
    assert dp_settings.current().executor == "multiprocess"
    monkeypatch.setenv("DP_EXECUTOR", "celery")
    assert dp_settings.current().executor == "celery"  # a changed variable is seen on the next call
    given = load({"DP_EXECUTOR": "in_process"})
    with dp_settings.using(given):
        assert dp_settings.current() is given
    assert dp_settings.current().executor == "celery"


def test_the_code_location_builds_with_the_settings_it_is_given(tmp_path, monkeypatch):
    """Settings passed to the build reach the executors and the resources, whatever the environment."""
    from dp_assets.location import build_code_location
    from dp_resources.store import FlowStore

    monkeypatch.setenv("DP_EXECUTOR", "celeri")  # would stop a build that read the environment
    settings = load(
        {
            "DP_HOME": str(tmp_path),
            "DP_FLOWS_DIR": "",
            "DP_EXECUTOR": "multiprocess",
            "DP_HTTP_ALLOWED_NETWORKS": "10.0.0.0/8",
        }
    )
    defs = build_code_location(store=FlowStore(settings.store_url()), settings=settings)
    assert defs.executor.name == "multiprocess"
    assert defs.resources["http"].allowed_networks == ["10.0.0.0/8"]


def test_resources_get_deployment_values_as_env_vars_never_as_text():
    """Dagster's convention: the LLM key and the bus URL reach resources as dg.EnvVar (only the
    name is in the resource's config; Dagster resolves it in the run)."""
    import dagster as dg

    from dp_assets.default_resources import default_resources

    resources = default_resources(
        load(
            {
                "DP_LLM_BASE_URL": "https://llm.example/v1",
                "DP_LLM_API_KEY": "sk-secret",
                "DP_EVENTS_URL": "redis://:pw@r/0",
            }
        )
    )
    llm, bus = resources["llm"], resources["event_bus"]
    assert isinstance(llm.api_key, dg.EnvVar) and llm.api_key == "DP_LLM_API_KEY"
    assert isinstance(llm.base_url, dg.EnvVar) and llm.model is None  # DP_LLM_MODEL unset: no EnvVar to fail on
    assert isinstance(bus.url, dg.EnvVar) and bus.url == "DP_EVENTS_URL"
    assert default_resources(load({}))["llm"].api_key is None


def test_a_location_load_reuses_its_resources_until_a_setting_or_the_mcp_file_changes(tmp_path):
    """What a warm run worker relies on to skip building the resources its template built: the
    same object while nothing changed, new ones (with the new values) when a setting or the MCP
    servers file changes."""
    from dp_assets.default_resources import shared_default_resources

    servers = tmp_path / "mcp.yaml"
    servers.write_text("servers: {}\n")
    env = {"DP_HOME": str(tmp_path), "DP_MCP_CONFIG": str(servers)}
    first = shared_default_resources(load(env))
    assert shared_default_resources(load(env)) is first

    moved = shared_default_resources(load({**env, "DP_HTTP_ALLOWED_NETWORKS": "10.0.0.0/8"}))
    assert moved is not first and moved["http"].allowed_networks == ["10.0.0.0/8"]

    servers.write_text("servers:\n  tools: {transport: http, url: 'http://tools.example/mcp'}\n")
    edited = shared_default_resources(load(env))
    assert edited is not first and list(edited["mcp"].servers) == ["tools"]


# --- docs/settings.md, deploy/env.example, docker-compose.yml ------------------------------------

#: DP_ names the docs use that are not settings: the test suite's own knobs, and names a reader
#: picks in an example of their own code.
NOT_SETTINGS = {
    "DP_FUZZ_EXAMPLES": "the fuzz tests' budget (docs/security.md)",
    "DP_TEST_PG_URL": "the test suite's PostgreSQL",
    "DP_TEST_REDIS_URL": "the test suite's Redis",
    "DP_WAREHOUSE_URL": "an example dg.EnvVar name in docs/io.md",
    "DP_SANDBOX_MEMORY_MB": "an example dg.EnvVar name in docs/sandbox.md",
}


def test_docs_settings_md_is_current():
    from dp_assets.docs_gen import SETTINGS_DOC, render_settings_markdown

    assert (ROOT / SETTINGS_DOC).read_text() == render_settings_markdown(), "run `make docs`"


def test_every_variable_in_the_deployment_files_and_docs_is_a_known_setting():
    files = [
        ROOT / "deploy/env.example",
        ROOT / "docker-compose.yml",
        ROOT / "Dockerfile",
        ROOT / "README.md",
        *sorted((ROOT / "docs").rglob("*.md")),
        *sorted((ROOT / "deploy").glob("*.yaml")),
    ]
    unknown = set()
    for path in files:
        for name in re.findall(r"\bDP_(?:[A-Z0-9_]|<[A-Z_]+>)*", path.read_text()):
            if name.endswith("_"):
                continue  # a prefix (DP_SECRET_*, DP_PROXY_*), not a variable
            if name not in NOT_SETTINGS and not is_known(name):
                unknown.add(f"{name} ({path.relative_to(ROOT)})")
    assert not unknown, f"add these to dp_settings (or its COMPOSE_VARIABLES): {sorted(unknown)}"


def test_every_compose_only_variable_is_used_by_docker_compose():
    compose = (ROOT / "docker-compose.yml").read_text()
    assert [name for name in COMPOSE_VARIABLES if name not in compose] == []


def test_the_model_is_a_pydantic_settings_model():
    from pydantic_settings import BaseSettings

    assert issubclass(PlatformSettings, BaseSettings)
