"""Celery settings that do not lose a step when a worker dies, and the check that refuses others.

The stock ``dagster-celery`` settings lose work (``../shared/reliability.md``): the result backend
is ``rpc://`` (results vanish with the process that sent the task), tasks are acknowledged when a
worker *receives* them (a worker killed mid-step takes the step with it and the run stays STARTED
for good) and nothing bounds a step's time. The settings here make a step at-least-once:

- ``task_acks_late`` + ``task_reject_on_worker_lost``: the broker keeps the message until the step
  finished, and hands it to another worker when the one running it dies;
- ``worker_prefetch_multiplier = 1``: a worker holds no message that it is not running;
- a persistent result backend (Redis or a database), never ``rpc://``;
- ``task_time_limit`` just above the longest node timeout, and a Redis ``visibility_timeout``
  above that limit: Redis redelivers an unacknowledged message after the visibility timeout, so a
  shorter one would start a second copy of a step that is still running (F8). RabbitMQ has the
  same clock on the server side (``consumer_timeout``, 30 min by default; ``deploy/rabbitmq/``).

Steps are at-least-once, so side-effecting nodes must be idempotent.

The same settings must be in effect on both sides: the executor (in the run worker: sends steps,
reads results) and the Celery workers (run steps, acknowledge).
:func:`dp_assets.compiler.celery_executor.celery_executor_for` builds the executor;
``deploy/celery-worker.yaml`` (rendered by :func:`render_worker_yaml`) is the worker side, started
with ``python -m dp_deploy celery-worker -y deploy/celery-worker.yaml`` (which refuses a bad file)
or the stock ``dagster-celery worker start -A dagster_celery.app -y ...``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

import yaml

BROKER_ENV = "DP_CELERY_BROKER"
BACKEND_ENV = "DP_CELERY_BACKEND"
#: The worker config file (``deploy/celery-worker.yaml``); the executor reads the same file.
CONFIG_FILE_ENV = "DP_CELERY_CONFIG"
RABBITMQ_CONSUMER_TIMEOUT_ENV = "DP_RABBITMQ_CONSUMER_TIMEOUT_SECONDS"

#: The longest a single step may run in the default deployment (node timeouts above it are
#: refused for Celery flows by the compiler).
DEFAULT_LONGEST_STEP_SECONDS = 3600
#: How far above the longest step the hard time limit sits (the soft limit is half-way).
TIME_LIMIT_GRACE_SECONDS = 60
#: Retries of a result backend operation (exponential backoff, at most 5 s apart): about
#: 15-35 s in all, enough for a Redis restart.
RESULT_BACKEND_MAX_RETRIES = 15
#: What a terminated run's running steps receive: SIGTERM lets Celery record the step as revoked
#: in the result backend, so the run's executor sees it end.
REVOKE_SIGNAL = "SIGTERM"
#: RabbitMQ's own default ``consumer_timeout`` when the deployment does not say otherwise.
RABBITMQ_DEFAULT_CONSUMER_TIMEOUT_SECONDS = 1800

REDIS_SCHEMES = frozenset({"redis", "rediss", "sentinel"})
AMQP_SCHEMES = frozenset({"amqp", "amqps", "pyamqp"})
#: Result backends that keep results across a restart of the process that sent the task.
PERSISTENT_BACKEND_SCHEMES = frozenset({"redis", "rediss", "sentinel"})
PERSISTENT_BACKEND_PREFIXES = ("db+",)

#: Settings the check insists on, with the reason it gives when one is off.
REQUIRED_FLAGS: Mapping[str, tuple[Any, str]] = {
    "task_acks_late": (
        True,
        (
            "without late acks a task is acknowledged on receipt, so a worker killed mid-step loses it "
            "and the run stays STARTED"
        ),
    ),
    "task_reject_on_worker_lost": (
        True,
        "without it a task whose worker process died is acknowledged instead of redelivered",
    ),
    "worker_prefetch_multiplier": (
        1,
        (
            "a worker must not hold messages it is not running (they wait behind a long step and are "
            "redelivered twice when it dies)"
        ),
    ),
}


class CeleryConfigError(ValueError):
    """A Celery configuration that could lose or duplicate steps; the message lists every rule."""


def time_limits(longest_step_seconds: float, *, grace_seconds: int = TIME_LIMIT_GRACE_SECONDS) -> tuple[int, int]:
    """(soft, hard) task time limits just above the longest step."""
    hard = int(longest_step_seconds) + grace_seconds
    return hard - grace_seconds // 2, hard


def visibility_timeout_for(
    longest_step_seconds: float,
    *,
    grace_seconds: int = TIME_LIMIT_GRACE_SECONDS,
    redelivery_margin_seconds: int | None = None,
) -> int:
    """A Redis visibility timeout safely above the hard time limit of the longest step."""
    _, hard = time_limits(longest_step_seconds, grace_seconds=grace_seconds)
    if redelivery_margin_seconds is None:
        redelivery_margin_seconds = max(60, hard // 10)
    return hard + redelivery_margin_seconds


def celery_settings(
    longest_step_seconds: float = DEFAULT_LONGEST_STEP_SECONDS,
    *,
    grace_seconds: int = TIME_LIMIT_GRACE_SECONDS,
    redelivery_margin_seconds: int | None = None,
    restore_interval_seconds: int | None = None,
) -> dict[str, Any]:
    """The Celery settings (``config_source``) of this deployment, without broker and backend.

    The keyword arguments exist for fault tests, which need a worker's death to be noticed in
    seconds rather than an hour: ``grace_seconds`` (time limit above the longest step),
    ``redelivery_margin_seconds`` (visibility timeout above the time limit) and
    ``restore_interval_seconds`` (how often Redis consumers look for expired unacked messages;
    kombu's default sweep is about every 100 s).
    """
    soft, hard = time_limits(longest_step_seconds, grace_seconds=grace_seconds)
    transport: dict[str, Any] = {
        # Redis only (RabbitMQ ignores it): redeliver an unacknowledged task after this long.
        "visibility_timeout": visibility_timeout_for(
            longest_step_seconds,
            grace_seconds=grace_seconds,
            redelivery_margin_seconds=redelivery_margin_seconds,
        ),
        # Publishing retries of dagster-celery's defaults: a broker that is down fails the
        # launch within seconds rather than hanging it (F6).
        "max_retries": 3,
        "interval_start": 0,
        "interval_step": 0.2,
        "interval_max": 0.5,
    }
    if restore_interval_seconds is not None:
        transport["unacked_restore_interval"] = restore_interval_seconds
        transport["unacked_restore_throttle"] = 1
    return {
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        # A step that failed or hit its time limit is done: acknowledge it, do not run it again.
        "task_acks_on_failure": True,
        "task_acks_on_timeout": True,
        "worker_prefetch_multiplier": 1,
        "task_soft_time_limit": soft,
        "task_time_limit": hard,
        # A task whose broker connection is gone cannot be acknowledged any more and comes back
        # to another worker: stop it rather than run two copies (Celery 6's default).
        "worker_cancel_long_running_tasks_on_connection_loss": True,
        "task_track_started": True,
        "result_expires": 86400,
        # A result backend that restarts (F7) is waited for, with backoff, instead of failing
        # the run at the executor's next poll; a long outage still fails it within a minute or so.
        "result_backend_always_retry": True,
        "result_backend_max_retries": RESULT_BACKEND_MAX_RETRIES,
        "result_backend_max_sleep_between_retries_ms": 5000,
        "broker_connection_retry_on_startup": True,
        "broker_transport_options": transport,
    }


def check_celery_config(
    config: Mapping[str, Any],
    longest_step_seconds: float,
    *,
    rabbitmq_consumer_timeout_seconds: float | None = None,
) -> list[str]:
    """Every rule that ``config`` breaks, as messages that say what to set; empty when it is safe.

    ``config`` holds Celery's lowercase settings, with the broker and the result backend as
    ``broker_url`` and ``result_backend`` (see :func:`flatten_executor_config`).
    ``rabbitmq_consumer_timeout_seconds`` is the RabbitMQ server's ``consumer_timeout``; it is a
    server setting that Celery cannot see, so RabbitMQ's default is assumed when it is not given.
    """
    errors: list[str] = []
    longest = float(longest_step_seconds)

    broker = config.get("broker_url") or ""
    broker_scheme = url_scheme(broker)
    if not broker:
        errors.append(f"no broker: set broker_url (the executor reads ${BROKER_ENV})")
    elif broker_scheme not in REDIS_SCHEMES | AMQP_SCHEMES:
        errors.append(
            f"broker {broker_scheme}:// is not supported: use redis:// or amqp:// (RabbitMQ); "
            "an in-memory or filesystem broker is not shared between machines"
        )

    backend = config.get("result_backend") or ""
    backend_scheme = url_scheme(backend)
    if not backend or backend_scheme == "rpc":
        errors.append(
            f"result backend {backend or 'unset'!r} is not persistent: rpc:// results die with "
            "the process that sent the task, so a restarted run worker never sees them; set "
            f"result_backend (${BACKEND_ENV}) to redis://... or db+postgresql+psycopg2://..."
        )
    elif backend_scheme not in PERSISTENT_BACKEND_SCHEMES and not backend.startswith(PERSISTENT_BACKEND_PREFIXES):
        errors.append(
            f"result backend {backend_scheme}:// is not a persistent shared store: use redis:// "
            "or db+postgresql+psycopg2://"
        )

    for key, (expected, why) in REQUIRED_FLAGS.items():
        if config.get(key) != expected:
            errors.append(f"{key} must be {expected!r} (is {config.get(key)!r}): {why}")

    hard = config.get("task_time_limit")
    soft = config.get("task_soft_time_limit")
    if not isinstance(hard, (int, float)) or hard <= longest:
        errors.append(
            f"task_time_limit must be just above the longest step ({longest:g} s), is {hard!r}: "
            "without it a hung step holds its worker forever"
        )
        hard = None
    if soft is not None and (not isinstance(soft, (int, float)) or soft <= longest):
        errors.append(f"task_soft_time_limit {soft!r} must be above the longest step ({longest:g} s)")
    if soft is not None and hard is not None and isinstance(soft, (int, float)) and soft >= hard:
        errors.append(f"task_soft_time_limit {soft!r} must be below task_time_limit {hard!r}")
    redelivery_floor = hard if hard is not None else longest

    if broker_scheme in REDIS_SCHEMES:
        options = config.get("broker_transport_options") or {}
        visibility = options.get("visibility_timeout")
        shown = f"{visibility} s" if visibility is not None else "unset (Redis default 3600 s)"
        effective = visibility if visibility is not None else 3600
        if not isinstance(effective, (int, float)) or effective <= redelivery_floor:
            errors.append(
                f"broker visibility timeout {shown} is not longer than the longest step "
                f"({longest:g} s) and its time limit ({redelivery_floor:g} s): Redis would hand a "
                "step that is still running to a second worker; set "
                f"broker_transport_options.visibility_timeout above {redelivery_floor:g}"
            )
    elif broker_scheme in AMQP_SCHEMES:
        consumer_timeout = (
            rabbitmq_consumer_timeout_seconds
            if rabbitmq_consumer_timeout_seconds is not None
            else RABBITMQ_DEFAULT_CONSUMER_TIMEOUT_SECONDS
        )
        if consumer_timeout <= redelivery_floor:
            errors.append(
                f"RabbitMQ consumer_timeout {consumer_timeout:g} s is not longer than the longest "
                f"step ({longest:g} s) and its time limit ({redelivery_floor:g} s): RabbitMQ "
                "would close the worker's channel and redeliver a step that is still running; set "
                "consumer_timeout (milliseconds) in rabbitmq.conf above it and tell the platform "
                f"with ${RABBITMQ_CONSUMER_TIMEOUT_ENV}"
            )
    return errors


def validate_or_raise(
    config: Mapping[str, Any],
    longest_step_seconds: float,
    *,
    rabbitmq_consumer_timeout_seconds: float | None = None,
    where: str = "Celery configuration",
) -> None:
    """Raise :class:`CeleryConfigError` listing every broken rule of ``config``."""
    errors = check_celery_config(
        config,
        longest_step_seconds,
        rabbitmq_consumer_timeout_seconds=rabbitmq_consumer_timeout_seconds,
    )
    if errors:
        lines = "\n".join(f"  - {error}" for error in errors)
        raise CeleryConfigError(
            f"{where} refused: it could lose or duplicate steps.\n{lines}\n"
            "See dp_assets/compiler/celery.py and docs/deploy.md."
        )


def flatten_executor_config(executor_config: Mapping[str, Any]) -> dict[str, Any]:
    """Celery settings from a ``celery_executor`` config block (``broker``/``backend``/...)."""
    flat = dict(executor_config.get("config_source") or {})
    if executor_config.get("broker"):
        flat["broker_url"] = executor_config["broker"]
    if executor_config.get("backend"):
        flat["result_backend"] = executor_config["backend"]
    return flat


def rabbitmq_consumer_timeout_from_env() -> float | None:
    """The RabbitMQ ``consumer_timeout`` (seconds) the deployment declares, if any.

    Read at run start, by the executor Dagster builds (:func:`dp_settings.current`).
    """
    from dp_settings import current

    return current().rabbitmq.consumer_timeout_seconds


def render_worker_yaml(longest_step_seconds: float = DEFAULT_LONGEST_STEP_SECONDS, **tuning: Any) -> str:
    """The worker config file: the executor config block that ``dagster-celery`` workers read.

    Broker and backend stay environment references, so the file holds no secret.
    ``dp.longest_step_seconds`` records the bound the settings were made for; dagster-celery
    ignores it, ``python -m dp_deploy celery-worker`` checks against it.
    """
    document = {
        "dp": {"longest_step_seconds": int(longest_step_seconds)},
        "execution": {
            "config": {
                "broker": {"env": BROKER_ENV},
                "backend": {"env": BACKEND_ENV},
                "config_source": celery_settings(longest_step_seconds, **tuning),
            }
        },
    }
    header = (
        "# Celery worker settings (generated: python -m dp_deploy render-worker-yaml"
        f" --longest-step-seconds {int(longest_step_seconds)}).\n"
        "# Start a worker with:\n"
        "#   python -m dp_deploy celery-worker -y deploy/celery-worker.yaml\n"
        "# The executor of Celery flows uses the same settings (dp_assets.compiler.celery).\n"
    )
    return header + yaml.safe_dump(document, sort_keys=False)


def url_scheme(url: str) -> str:
    return urlsplit(url).scheme.lower() if "://" in url else ""
