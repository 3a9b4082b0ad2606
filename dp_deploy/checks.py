"""Checks that the production files agree, and the commands that start a checked Celery worker.

``dagster.yaml``, ``deploy/celery-worker.yaml`` and the executor settings are separate files read
by separate processes; nothing in Dagster or Celery notices when they drift apart (a visibility
timeout shorter than the run monitor's bound, a storage URL that silently means psycopg 3, ...).
The checks here say so before anything starts:

    python -m dp_deploy check            # dagster.yaml + worker YAML
    python -m dp_deploy celery-worker -y deploy/celery-worker.yaml
    python -m dp_deploy celery-ping -y deploy/celery-worker.yaml -n dagster@HOST
    python -m dp_deploy render-worker-yaml > deploy/celery-worker.yaml

``celery-worker`` refuses a configuration that breaks :mod:`dp_assets.compiler.celery`'s rules,
writes Celery's ``dagster_celery_config`` module into a private folder (what ``dagster-celery
worker start -y`` does) and then *replaces itself* with ``celery -A dagster_celery.app worker``,
so that signals and ``kill -9`` reach the real worker and nothing sits between them.
"""

from __future__ import annotations

import os
import stat
import sys
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import click

from dp_assets.compiler import celery as cc
from dp_assets.compiler.celery_deployment import load_yaml
from dp_settings import load

DEFAULT_QUEUE = "dagster"
#: The platform's code location: what every step imports (docker-compose.yml, workspace.yaml).
CODE_LOCATION_MODULE = "dp_assets.definitions"
CELERY_APP = "dagster_celery.app"
CONFIG_MODULE = "dagster_celery_config"
#: Launchers that can check their run workers' health and resume a run.
RESUMING_LAUNCHERS = frozenset({"CeleryRunLauncher", "K8sRunLauncher", "EcsRunLauncher"})


def resolve_env(value: Any, environ: Mapping[str, str], missing: list[str]) -> Any:
    """Dagster's ``{env: NAME}`` references replaced by their values (names not set: ``missing``)."""
    if isinstance(value, Mapping):
        if set(value) == {"env"} and isinstance(value["env"], str):
            name = value["env"]
            if name not in environ:
                missing.append(name)
            return environ.get(name)
        return {key: resolve_env(item, environ, missing) for key, item in value.items()}
    if isinstance(value, list):
        return [resolve_env(item, environ, missing) for item in value]
    return value


def worker_settings(
    worker_doc: Mapping[str, Any], environ: Mapping[str, str] | None = None
) -> tuple[dict[str, Any], float, list[str]]:
    """(flat Celery settings, longest step, unset env names) of a worker YAML document."""
    environ = os.environ if environ is None else environ
    block = (worker_doc.get("execution") or {}).get("config") or {}
    missing: list[str] = []
    resolved = resolve_env(block, environ, missing)
    longest = (worker_doc.get("dp") or {}).get("longest_step_seconds")
    if longest is None:
        longest = cc.DEFAULT_LONGEST_STEP_SECONDS
    return cc.flatten_executor_config(resolved), float(longest), missing


def check_worker_config(worker_doc: Mapping[str, Any], environ: Mapping[str, str] | None = None) -> list[str]:
    """The Celery rules a worker YAML breaks, with its env references resolved from ``environ``."""
    environ = os.environ if environ is None else environ
    settings, longest, missing = worker_settings(worker_doc, environ)
    errors = [f"environment variable {name} is not set" for name in missing]
    errors += cc.check_celery_config(
        settings,
        longest,
        rabbitmq_consumer_timeout_seconds=load(environ).rabbitmq.consumer_timeout_seconds,
    )
    return errors


RESILIENT_STORAGE = ("dp_instance.pg_storage", "ResilientPostgresStorage")


FLOW_RUN_COORDINATOR = ("dp_instance.run_coordinator", "FlowRunCoordinator")


def check_instance_config(config: Mapping[str, Any]) -> list[str]:
    """What a production ``dagster.yaml`` (parsed) lacks; empty when it is complete."""
    errors: list[str] = []
    storage = (config.get("storage") or {}).get("custom") or {}
    if (storage.get("module"), storage.get("class")) != RESILIENT_STORAGE:
        errors.append(
            "storage: use `storage: custom:` with module dp_instance.pg_storage, class "
            "ResilientPostgresStorage (PostgreSQL storage that outlasts a short outage)"
        )
    else:
        postgres = storage.get("config") or {}
        db = postgres.get("postgres_db") or {}
        scheme = db.get("scheme")
        if postgres.get("postgres_url"):
            errors.append("storage.custom.config: use postgres_db fields from the environment, not postgres_url")
        elif scheme not in ("postgresql+psycopg2", "postgresql+psycopg"):
            errors.append(
                f"storage.custom.config.postgres_db.scheme is {scheme!r}: SQLAlchemy 2.1 reads "
                "`postgresql://` as psycopg 3; set `scheme: postgresql+psycopg2`"
            )
        for field in ("hostname", "username", "password", "db_name"):
            if field in db and not (isinstance(db[field], Mapping) and "env" in db[field]):
                errors.append(f"storage.custom.config.postgres_db.{field} must come from `env:`")

    coordinator = config.get("run_coordinator") or {}
    if (coordinator.get("module"), coordinator.get("class")) != FLOW_RUN_COORDINATOR:
        errors.append(
            "run_coordinator: use module dp_instance.run_coordinator, class FlowRunCoordinator "
            "(Dagster's queued run coordinator that also tags the UI's Materialize runs with their flow)"
        )
    else:
        queue = coordinator.get("config") or {}
        if not isinstance(queue.get("max_concurrent_runs"), int):
            errors.append("run_coordinator.config.max_concurrent_runs: set a global limit")
        flow_limits = [
            limit
            for limit in queue.get("tag_concurrency_limits") or []
            if limit.get("key") == "dp/flow" and (limit.get("value") or {}).get("applyLimitPerUniqueValue") is True
        ]
        if not flow_limits:
            errors.append(
                "run_coordinator.config.tag_concurrency_limits: add a per-flow limit on tag "
                "`dp/flow` with `applyLimitPerUniqueValue: true`"
            )

    monitoring = config.get("run_monitoring") or {}
    if monitoring.get("enabled") is not True:
        errors.append("run_monitoring.enabled must be true (it fails runs whose worker died)")
    if not monitoring.get("max_runtime_seconds"):
        errors.append(
            "run_monitoring.max_runtime_seconds must be set: with the default run launcher it is "
            "the only way a run whose worker died ends"
        )
    launcher = (config.get("run_launcher") or {}).get("class", "DefaultRunLauncher")
    if monitoring.get("max_resume_run_attempts") and launcher not in RESUMING_LAUNCHERS:
        errors.append(
            f"run_monitoring.max_resume_run_attempts must be 0 with {launcher}: it cannot "
            "check or resume run workers (run_retries restart the run instead)"
        )
    if (config.get("run_retries") or {}).get("enabled") is not True:
        errors.append("run_retries.enabled must be true (the backstop for dead run workers)")
    if (config.get("telemetry") or {}).get("enabled") is not False:
        errors.append("telemetry.enabled must be false")
    if not (config.get("retention") or {}).get("sensor"):
        errors.append("retention.sensor: set purge_after_days for sensor ticks")
    return errors


def check_deployment(
    instance_config: Mapping[str, Any],
    worker_doc: Mapping[str, Any],
    environ: Mapping[str, str] | None = None,
) -> list[str]:
    """Instance rules, worker rules, and the rules that tie the two together."""
    environ = os.environ if environ is None else environ
    errors = [f"dagster.yaml: {e}" for e in check_instance_config(instance_config)]
    errors += [f"celery worker config: {e}" for e in check_worker_config(worker_doc, environ)]
    settings, longest, _ = worker_settings(worker_doc, environ)
    max_runtime = (instance_config.get("run_monitoring") or {}).get("max_runtime_seconds") or 0
    hard = settings.get("task_time_limit") or longest
    redelivery = 0.0
    if cc.url_scheme(settings.get("broker_url") or "") in cc.REDIS_SCHEMES:
        options = settings.get("broker_transport_options") or {}
        redelivery = float(options.get("visibility_timeout") or 3600)
    if max_runtime and max_runtime <= redelivery + hard:
        errors.append(
            f"run_monitoring.max_runtime_seconds ({max_runtime}) must exceed the broker's "
            f"redelivery delay ({redelivery:g} s) plus the step time limit ({hard:g} s): "
            "otherwise a run whose worker died is failed before its step comes back"
        )
    return errors


def write_celery_config_module(settings: Mapping[str, Any], directory: str | Path | None = None) -> Path:
    """Write Celery's ``dagster_celery_config`` module (read by ``dagster_celery.app``).

    The folder is private (0700, file 0600): the broker URL may hold a password.
    """
    folder = Path(directory) if directory else Path(tempfile.mkdtemp(prefix="dp-celery-"))
    folder.mkdir(parents=True, exist_ok=True)
    os.chmod(folder, stat.S_IRWXU)
    lines = ['"""Celery settings written by dp_deploy.checks; do not edit."""']
    lines += [f"{key} = {value!r}" for key, value in settings.items()]
    path = folder / f"{CONFIG_MODULE}.py"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf8") as handle:
        handle.write("\n".join(lines) + "\n")
    return folder


def celery_worker_argv(
    name: str,
    queues: Sequence[str] = (DEFAULT_QUEUE,),
    *,
    concurrency: int | None = None,
    loglevel: str = "INFO",
    preload: Sequence[str] = (CODE_LOCATION_MODULE,),
    extra: Sequence[str] = (),
) -> list[str]:
    """The ``celery worker`` command line of a Dagster step worker.

    ``preload`` modules are imported by the worker before it forks its pool processes
    (``--include``), so a pool process starts with the code location's imports (Dagster, pandas,
    the node catalog) done instead of paying them inside its first step, where they count
    against the step's time limit. Importing ``dp_assets.definitions`` builds nothing.
    """
    argv = [sys.executable, "-m", "celery", "-A", CELERY_APP, "worker"]
    argv += ["--prefetch-multiplier=1", "--loglevel", loglevel, "-n", name]
    for module in preload:
        argv += ["--include", module]
    for queue in queues:
        argv += ["-Q", queue]
    if concurrency:
        argv += ["--concurrency", str(concurrency)]
    return argv + list(extra)


def _checked_worker_settings(config_yaml: str) -> dict[str, Any]:
    doc = load_yaml(config_yaml)
    errors = check_worker_config(doc)
    if errors:
        lines = "\n".join(f"  - {e}" for e in errors)
        raise click.ClickException(f"{config_yaml} refused: it could lose or duplicate steps.\n{lines}")
    settings, _, _ = worker_settings(doc)
    return settings


@click.group(name="deploy")
def deploy_cli() -> None:
    """Production deployment: configuration checks and the Celery worker."""


@deploy_cli.command("check")
@click.option("--dagster-yaml", default="dagster.yaml", show_default=True, type=click.Path())
@click.option(
    "--worker-yaml",
    "-y",
    default="deploy/celery-worker.yaml",
    show_default=True,
    type=click.Path(),
)
@click.option(
    "--flows-dir",
    type=click.Path(file_okay=False),
    default=None,
    help="Spec files the deployment imports (default: DP_FLOWS_DIR, else flows/).",
)
@click.option(
    "--store-url",
    default=None,
    help="Flow store whose published flows are checked too (default: DP_STORE_URL, if set).",
)
def check_command(dagster_yaml: str, worker_yaml: str, flows_dir: str | None, store_url: str | None) -> None:
    """Check dagster.yaml and the Celery worker config against each other and the rules,
    and that the flows' user SQL (CustomSQLQuery) has read-only logins."""
    from dp_deploy.user_sql import check_user_sql_logins, custom_sql_connections, deployed_specs

    settings = load()  # the deployment's settings, read once for every check
    errors = check_deployment(load_yaml(dagster_yaml), load_yaml(worker_yaml))
    configured_store = settings.store.url.get_secret_value() if settings.store.url else None
    specs, problems = deployed_specs(
        Path(flows_dir) if flows_dir else settings.flows_folder(),
        store_url or configured_store,
    )
    uses = custom_sql_connections(specs)
    errors += [f"user SQL: {e}" for e in problems + check_user_sql_logins(uses, settings=settings)]
    if errors:
        raise click.ClickException("\n".join(["deployment check failed:", *errors]))
    click.echo("deployment check passed")


@deploy_cli.command("render-worker-yaml")
@click.option("--longest-step-seconds", type=float, default=cc.DEFAULT_LONGEST_STEP_SECONDS, show_default=True)
def render_worker_yaml_command(longest_step_seconds: float) -> None:
    """Print the Celery worker config file for steps of at most this many seconds."""
    click.echo(cc.render_worker_yaml(longest_step_seconds), nl=False)


@deploy_cli.command("celery-worker", context_settings={"ignore_unknown_options": True, "allow_extra_args": True})
@click.option("--config-yaml", "-y", required=True, type=click.Path(exists=True, dir_okay=False))
@click.option("--name", "-n", default="dagster@%h", show_default=True, help="Celery node name.")
@click.option("--queue", "-q", multiple=True, help="Queues to consume (default: dagster).")
@click.option("--concurrency", "-c", type=int, default=None, help="Steps run at once.")
@click.option("--loglevel", "-l", default="INFO", show_default=True)
@click.option(
    "--preload",
    multiple=True,
    default=(CODE_LOCATION_MODULE,),
    show_default=True,
    help="Modules imported before the pool forks, so that steps start warm.",
)
@click.option(
    "--config-dir",
    type=click.Path(file_okay=False),
    default=None,
    help="Where to write the Celery config module (default: a new private temp folder).",
)
@click.pass_context
def celery_worker_command(
    ctx: click.Context,
    config_yaml: str,
    name: str,
    queue: tuple[str, ...],
    concurrency: int | None,
    loglevel: str,
    preload: tuple[str, ...],
    config_dir: str | None,
) -> None:
    """Check the worker config, then become `celery -A dagster_celery.app worker`."""
    settings = _checked_worker_settings(config_yaml)
    folder = write_celery_config_module(settings, config_dir)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(folder), env.get("PYTHONPATH")) if p)
    argv = celery_worker_argv(
        name,
        queue or (DEFAULT_QUEUE,),
        concurrency=concurrency,
        loglevel=loglevel,
        preload=preload,
        extra=ctx.args,
    )
    sys.stdout.flush()
    os.execvpe(argv[0], argv, env)


@deploy_cli.command("celery-ping")
@click.option("--config-yaml", "-y", required=True, type=click.Path(exists=True, dir_okay=False))
@click.option("--name", "-n", required=True, help="Node name, e.g. dagster@$HOSTNAME.")
@click.option("--timeout", type=float, default=5.0, show_default=True)
def celery_ping_command(config_yaml: str, name: str, timeout: float) -> None:
    """Exit 0 when the named worker answers a ping over the broker (a health check)."""
    from dagster_celery.executor import CeleryExecutor
    from dagster_celery.make_app import make_app

    settings = _checked_worker_settings(config_yaml)
    config_source = {k: v for k, v in settings.items() if k not in ("broker_url", "result_backend")}
    app = make_app(
        CeleryExecutor.for_cli(
            broker=settings["broker_url"],
            backend=settings["result_backend"],
            config_source=config_source,
        ).app_args()
    )
    replies = app.control.ping(destination=[name], timeout=timeout)
    if not any(name in reply for reply in replies):
        raise click.ClickException(f"worker {name} did not answer within {timeout:g} s")
    click.echo(f"{name}: pong")


if __name__ == "__main__":  # pragma: no cover
    deploy_cli(prog_name="python -m dp_deploy")
