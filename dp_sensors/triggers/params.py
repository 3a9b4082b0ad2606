"""Flow params checked before a run exists: event payloads, webhook bodies and trigger params.

Dagster checks run config only when a run is created, and a sensor whose run request fails that
check fails its whole tick (every other event of the tick waits with it). So triggers check
params themselves, with a strict pydantic model built from the flow's declared params: a bad
payload becomes a *rejected event* with the reason, and the types agree with the job's config
schema (``dp_assets.compiler.factory.params_config_schema``): no string "5" for an integer.

``params`` here is always a flow's declared params by name (the spec's ``FlowParam``s), read by
attribute (``type``, ``required``, ``description``): dp_sensors sits below dp_assets and is handed
the validated flow, it never imports the spec (docs/architecture.md).
"""

from __future__ import annotations

import datetime as dt
import functools
import math
from collections.abc import Mapping
from typing import Annotated, Any

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    StrictStr,
    ValidationError,
    create_model,
)

EVENT_PARAM = "event"
"""A flow param of this name (type ``object``) receives the whole event payload (see
``WebhookListener`` in ``dp_assets/catalog/nodes/sources_api.py``)."""


def _iso(kind: type[dt.date]) -> Any:
    def check(value: Any) -> Any:
        if not isinstance(value, str):
            raise ValueError(f"must be an ISO {kind.__name__} string")  # pydantic reports ValueError
        try:
            kind.fromisoformat(value)
        except ValueError:  # its message quotes the whole value, however long: the field is named instead
            example = "2024-01-31" if kind is dt.date else "2024-01-31T08:00:00"
            raise ValueError(f"must be an ISO {kind.__name__} such as {example}") from None
        return value

    return BeforeValidator(check)


def _number(value: Any) -> Any:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError("must be a number")  # pydantic reports ValueError
    try:
        number = float(value)
    except OverflowError:  # an integer beyond a float: pydantic reports only ValueError
        raise ValueError("is too large for a number") from None
    if not math.isfinite(number):  # NaN or infinity: no JSON run config, no spec default, can hold one
        raise ValueError("must be a finite number")
    return number


PARAM_TYPES: dict[str, Any] = {
    "string": StrictStr,
    "integer": StrictInt,
    "number": Annotated[float, BeforeValidator(_number)],
    "boolean": StrictBool,
    "date": Annotated[str, _iso(dt.date)],
    "datetime": Annotated[str, _iso(dt.datetime)],
    "list": list[Any],
    "object": dict[str, Any],
}


#: A flow's params as a params model is built from them: (name, type, required, description),
#: sorted by name; hashable, so that the models are cached per flow.
Declared = tuple[tuple[str, str, bool, str], ...]


class ParamsRejected(ValueError):
    """Params that do not fit a flow; the message lists every field and what is wrong."""


def params_model(flow_id: str, params: Mapping[str, Any]) -> type[BaseModel]:
    """A strict model of a flow's params (the spec's ``FlowParam``s by name): unknown keys, wrong
    types and missing required params fail. Optional params may be left out (the job's defaults
    apply) or be ``null``."""
    return _params_model(flow_id, _declared(params))


def _declared(params: Mapping[str, Any], *, all_optional: bool = False) -> Declared:
    return tuple(
        sorted(
            (name, param.type, param.required and not all_optional, param.description) for name, param in params.items()
        )
    )


@functools.lru_cache(maxsize=1024)
def _params_model(flow_id: str, declared: Declared) -> type[BaseModel]:
    fields: dict[str, Any] = {}
    for name, type_name, required, description in declared:
        kind = PARAM_TYPES[type_name]
        if required:
            fields[name] = (kind, Field(description=description or None))
        else:
            fields[name] = (kind | None, Field(default=None, description=description or None))
    return create_model(f"{flow_id}_params", __config__=ConfigDict(extra="forbid"), **fields)


def check_params(flow_id: str, params: Mapping[str, Any], values: Mapping[str, Any]) -> dict[str, Any]:
    """``values`` checked against the flow's params; only the given ones are returned (as JSON
    values), so the job's declared defaults apply to the rest. Raises :class:`ParamsRejected`."""
    return _checked(flow_id, _declared(params), values)


def _checked(flow_id: str, declared: Declared, values: Mapping[str, Any]) -> dict[str, Any]:
    model = _params_model(flow_id, declared)
    try:
        checked = model.model_validate(dict(values))
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in error['loc']) or '(params)'}: "
            + ("not a param of this flow" if error["type"] == "extra_forbidden" else error["msg"])
            for error in exc.errors(include_input=False, include_url=False)
        )
        raise ParamsRejected(f"the params do not fit flow '{flow_id}': {problems}") from None
    return checked.model_dump(mode="json", exclude_unset=True)


def check_fixed_params(flow_id: str, params: Mapping[str, Any], values: Mapping[str, Any]) -> dict[str, Any]:
    """Fixed params of a trigger that other values complete later: names and types are checked,
    required params may still be missing."""
    return _checked(flow_id, _declared(params, all_optional=True), values)


def params_from_event(
    flow_id: str,
    params: Mapping[str, Any],
    topic_is_webhook: bool,
    data: Mapping[str, Any],
    fixed: Mapping[str, Any],
) -> dict[str, Any]:
    """The run params of one event.

    A webhook event (topic ``webhook.<flow id>``) carries the checked body under ``params``.
    Any other event's payload fills the params it names; keys that are not params of the flow
    are left out (a payload is often a larger record than one flow needs). The trigger's fixed
    params win over the payload. A declared ``event`` param receives the whole payload (the
    body, for webhooks) unless the payload sets it.
    """
    if topic_is_webhook:
        payload = data.get("params", {})
        if not isinstance(payload, Mapping):
            raise ParamsRejected(f"webhook event for flow '{flow_id}' has no 'params' object")
    else:
        payload = data
    values = {name: value for name, value in payload.items() if name in params}
    if EVENT_PARAM in params and EVENT_PARAM not in values:
        values[EVENT_PARAM] = dict(payload)
    values.update(fixed)
    return check_params(flow_id, params, values)
