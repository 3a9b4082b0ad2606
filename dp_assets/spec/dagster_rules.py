"""What Dagster refuses when a valid-looking flow compiles, checked as validation errors.

``dp validate`` must be the whole truth: a spec it accepts compiles in the code location. The
pydantic model covers names and types; this module covers the rules that live in Dagster's
config system and in the trigger builders (``dp_sensors.triggers``), each as an error naming
the field. :func:`compile_refusal` then compiles the flow for real, as the location does, so a
rule nobody wrote down here still becomes an error naming the flow rather than a broken load.
"""

from __future__ import annotations

import datetime as dt
import functools
import math
from collections.abc import Iterator
from typing import Any, NoReturn


@functools.lru_cache(maxsize=1024)
def dagster_accepts_cron(cron: str) -> bool:
    """Dagster's own cron rule (five fields, no 30th of February...), through its public
    ``ScheduleDefinition``, which refuses a cron string it cannot schedule."""
    import dagster as dg  # lazy: importing dagster costs a second

    try:
        dg.ScheduleDefinition(name="cron_check", cron_schedule=cron, job_name="cron_check")
    except dg.DagsterInvalidDefinitionError:
        return False
    return True


#: The Python type a param's ``default`` must have, as the job's config schema
#: (``dp_assets.compiler.factory.CONFIG_TYPES``) accepts it.
DEFAULT_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
    "date": (str,),
    "datetime": (str,),
    "list": (list,),
    "object": (dict,),
}


_ISO_EXAMPLES = {"date": "2024-01-31", "datetime": "2024-01-31T08:00:00"}


def default_problem(kind: str, default: Any) -> str | None:
    """Why a param's ``default`` does not fit its declared type (None when it does, or is unset).

    The default must be what the job's config schema takes, and what a launch may give for the
    param (``dp_sensors.triggers.params``): an ISO date, a finite number, an object with text keys.
    Otherwise the flow loads and its first run fails on a value no one passed.
    """
    if default is None:
        return None
    allowed = DEFAULT_TYPES[kind]
    fits = isinstance(default, allowed) and not (isinstance(default, bool) and bool not in allowed)
    if not fits:  # (tested apart: `isinstance` would narrow `default` to `object` below)
        article = "an" if kind[0] in "aeiou" else "a"
        return (
            f"the default {_shown(default)} is not {article} {kind} value (the param's type); "
            "change the default or the type"
        )
    if kind in _ISO_EXAMPLES:
        try:
            (dt.date if kind == "date" else dt.datetime).fromisoformat(default)
        except ValueError:
            return (
                f"the default {_shown(default)} is not an ISO {kind} such as {_ISO_EXAMPLES[kind]} (the "
                "param's type); change the default or the type"
            )
    if kind == "number":
        try:
            finite = math.isfinite(float(default))
        except OverflowError:
            finite = False
        if not finite:
            return f"the default {_shown(default)} is not a finite number a run can be given; change the default"
    if kind == "object" and not all(isinstance(key, str) for key in default):
        return f"the default {_shown(default)} has keys that are not text (a run's object params have text keys)"
    return None


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


#: ``(node id or None, field, message)``; validation names the flow and makes it a ``SpecError``.
Problem = tuple[str | None, str, str]


def problems(flow: Any, *, launch_model: bool = True) -> list[Problem]:
    """Problems of a flow the model accepted.

    ``launch_model=False`` skips building the flow's launch-params model (a pydantic model per
    flow, about a third of a millisecond): the code location, which validates every stored flow on
    each load, reports a flow whose model cannot be built when it compiles its triggers.
    """
    try:
        return list(_problems(flow, launch_model))
    except Exception as exc:  # noqa: BLE001 - a check's own bug names the flow, never a traceback
        return [(None, "<spec>", f"could not be checked ({type(exc).__name__}: {exc})")]


def _problems(flow: Any, launch_model: bool) -> Iterator[tuple[str | None, str, str]]:
    for name, param in flow.params.items():
        problem = default_problem(param.type, param.default)
        if problem is not None:
            yield None, f"params.{name}.default", problem
    yield from _trigger_problems(flow, launch_model)


def _trigger_problems(flow: Any, launch_model: bool) -> Iterator[tuple[str | None, str, str]]:
    """The checks ``dp_sensors.triggers`` makes when it builds a trigger, made here first."""
    from dp_sensors.triggers.params import ParamsRejected, check_fixed_params, check_params, params_model

    try:  # triggers and the launch receiver check run params with this model
        if launch_model or flow.triggers:
            params_model(flow.id, flow.params)
    except Exception as exc:  # noqa: BLE001 - any refusal is the spec's error to report
        yield None, "params", f"the params cannot be checked at launch ({type(exc).__name__}: {exc})"
        return
    for position, trigger in enumerate(flow.triggers):
        field = f"triggers[{position}]"
        try:
            if trigger.type == "event":
                check_fixed_params(flow.id, flow.params, trigger.params)
            elif trigger.type == "file":
                if trigger.param not in flow.params:
                    yield (
                        None,
                        f"{field}.param",
                        (
                            f"'{trigger.param}' is not a param of this flow; declare it (type: string) "
                            "or set 'param' to the one that takes the path"
                        ),
                    )
                    continue
                check_params(flow.id, flow.params, {**trigger.params, trigger.param: "probe"})
            else:
                if trigger.type == "flow" and trigger.flow == flow.id and trigger.on == "success":
                    yield (
                        None,
                        f"{field}.flow",
                        ("a flow cannot start itself on success (it would run forever); use a schedule"),
                    )
                    continue
                check_params(flow.id, flow.params, trigger.params)
        except ParamsRejected as exc:
            yield None, f"{field}.params", str(exc)


def _never_initialised(_: Any) -> NoReturn:
    raise AssertionError("compile_refusal resolves the job; it never starts its stand-in resources")


def compile_refusal(validated: Any, catalog: Any) -> str | None:
    """Compile the flow as the code location does (job resolved, run-config schema built,
    schedules and sensors made); what Dagster raises becomes the message returned, else None."""
    import dagster as dg

    from dp_assets.compiler.factory import compile_flow

    try:
        compiled = compile_flow(validated, catalog)
        needed = {key for step in compiled.steps for key in step.required_resource_keys}
        # Stand-ins for the location's resources: resolving checks keys and types, not settings
        # (an IO manager definition also serves where a plain resource is required).
        stubs = {key: dg.IOManagerDefinition(resource_fn=_never_initialised) for key in needed}
        definitions = compiled.definitions(stubs)  # also makes the schedules and sensors
        (job,) = definitions.jobs or ()
        if not isinstance(job, dg.JobDefinition):  # a translator or subclass left it unresolved
            alone = dg.Definitions(assets=definitions.assets, jobs=[job], resources=stubs)
            job = alone.resolve_job_def(validated.id)
        job.run_config_schema  # noqa: B018 - building it is the check
    except Exception as exc:  # noqa: BLE001 - any refusal is the spec's error to report
        message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        return f"does not compile in Dagster: {message}"
    return None
