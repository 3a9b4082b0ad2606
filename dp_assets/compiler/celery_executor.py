"""The Celery executor of Celery flows: dagster-celery's, with the settings of
:mod:`dp_assets.compiler.celery` checked when a run starts, and terminating a run stops its
running steps.

Dagster and dagster-celery are imported on first use (dagster-celery costs a second), so
checking a worker file or rendering one (``dp_deploy``) imports neither.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

from dp_assets.compiler.celery import (
    BACKEND_ENV,
    BROKER_ENV,
    DEFAULT_LONGEST_STEP_SECONDS,
    REVOKE_SIGNAL,
    celery_settings,
    rabbitmq_consumer_timeout_from_env,
    validate_or_raise,
)


def celery_executor_for(
    longest_step_seconds: float = DEFAULT_LONGEST_STEP_SECONDS,
    *,
    settings: Mapping[str, Any] | None = None,
    **tuning: Any,
) -> Any:
    """The Celery executor for flows whose steps run at most ``longest_step_seconds``.

    It is dagster-celery's ``CeleryExecutor`` with :func:`celery_settings` (or ``settings``, a
    worker file's ``config_source``), except that terminating a run also stops its running steps
    (:class:`TerminatingCeleryExecutor`). The broker and result backend are read from
    ``$DP_CELERY_BROKER``/``$DP_CELERY_BACKEND`` when a run starts (never when definitions load,
    and never written into run config). Run config may still set ``broker``, ``backend``,
    ``include``, ``config_source`` and ``retries`` like the stock executor, but a run whose
    resulting settings break :func:`check_celery_config` fails at start with the list of broken
    rules instead of losing steps later.
    """
    from dagster import (
        Field,
        Noneable,
        StringSource,
        executor,
        multiple_process_executor_requirements,
    )
    from dagster_celery.executor import CELERY_CONFIG

    defaults = dict(settings) if settings is not None else celery_settings(longest_step_seconds, **tuning)
    schema = {
        **CELERY_CONFIG,
        "broker": Field(
            Noneable(StringSource),
            is_required=False,
            description=f"The Celery broker URL. Default: ${BROKER_ENV}.",
        ),
        # The stock schema defaults this to rpc://, which this platform refuses.
        "backend": Field(
            Noneable(StringSource),
            is_required=False,
            description=f"The persistent Celery result backend URL. Default: ${BACKEND_ENV}.",
        ),
    }

    @executor(
        name="celery",
        config_schema=schema,
        requirements=multiple_process_executor_requirements(),
    )
    def dp_celery_executor(init_context):
        return make_celery_executor(init_context.executor_config, longest_step_seconds, defaults=defaults)

    return dp_celery_executor


def make_celery_executor(
    executor_config: Mapping[str, Any],
    longest_step_seconds: float,
    *,
    defaults: Mapping[str, Any] | None = None,
) -> Any:
    """A checked ``CeleryExecutor`` from an executor config block (env read here, at run start)."""
    from dp_assets.dagster_internals import retry_mode_from_config

    settings = dict(defaults if defaults is not None else celery_settings(longest_step_seconds))
    settings.update(executor_config.get("config_source") or {})
    from dp_settings import current  # Dagster builds the executor at run start, with no settings of ours

    celery = current().celery
    broker = executor_config.get("broker") or celery.broker
    backend = executor_config.get("backend") or celery.backend
    config = {**settings, "broker_url": broker, "result_backend": backend}
    validate_or_raise(
        config,
        longest_step_seconds,
        rabbitmq_consumer_timeout_seconds=rabbitmq_consumer_timeout_from_env(),
        where="the celery executor's configuration",
    )
    retries = executor_config.get("retries") or {"enabled": {}}
    return terminating_executor_class()(
        retries=retry_mode_from_config(retries),
        broker=broker,
        backend=backend,
        include=executor_config.get("include"),
        config_source=settings,
    )


@functools.cache
def terminating_executor_class() -> type:
    """dagster-celery's ``CeleryExecutor``, except that terminating a run stops its running steps.

    On termination the stock loop calls ``AsyncResult.revoke()``, which only drops steps that have
    not started: a running step goes on to its end (side effects included) and the run stays
    CANCELING until then (F10). Here a revoke also terminates the pool process running the step
    (``terminate=True``); its children follow (the sandbox's fork server sees its socket close,
    a node's timeout child has a parent-death signal). A revoked task id is remembered by the
    workers, so a message redelivered after the kill is discarded, not run again.
    Defined on first use: importing dagster-celery costs a second.
    """
    from dagster_celery.executor import CeleryExecutor

    from dp_assets.dagster_internals import run_celery_plan

    class TerminatingResult:
        """An ``AsyncResult`` whose ``revoke()`` terminates a running task."""

        def __init__(self, result: Any) -> None:
            self._result = result

        def revoke(self, **kwargs: Any) -> Any:
            kwargs.setdefault("terminate", True)
            kwargs.setdefault("signal", REVOKE_SIGNAL)
            return self._result.revoke(**kwargs)

        def __getattr__(self, name: str) -> Any:
            return getattr(self._result, name)

    class TerminatingCeleryExecutor(CeleryExecutor):
        def execute(self, plan_context: Any, execution_plan: Any) -> Any:
            return run_celery_plan(plan_context, execution_plan, TerminatingResult)

    return TerminatingCeleryExecutor
