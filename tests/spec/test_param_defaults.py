"""A param's default is checked against its declared type in `dp validate` and before it is stored:
a default that does not fit is an error naming the flow, the param and the value, never a flow that
loads and then fails its first run (issue 17)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dp_assets.catalog import default_catalog
from dp_assets.publishing import publish_spec
from dp_assets.spec.validation import FlowValidationError, validate_spec
from dp_resources.store import FlowStore
from dp_sensors.triggers.params import check_params

CATALOG = default_catalog()
SOURCE = {"id": "src", "type": "StaticData", "params": {"rows": [{"a": 1}]}}


def flow(kind: str, default: Any) -> dict[str, Any]:
    return {"id": "sales", "params": {"since": {"type": kind, "default": default}}, "nodes": [SOURCE]}


BAD_DEFAULTS = [
    pytest.param("integer", "ten", "the default 'ten' is not an integer value", id="integer-text"),
    pytest.param("integer", 2.5, "the default 2.5 is not an integer value", id="integer-float"),
    pytest.param(
        "date", "not-a-date", "the default 'not-a-date' is not an ISO date such as 2024-01-31", id="date-text"
    ),
    pytest.param("date", "2024-02-30", "the default '2024-02-30' is not an ISO date", id="date-impossible"),
    pytest.param(
        "datetime", "2024-01-31 25:00", "is not an ISO datetime such as 2024-01-31T08:00:00", id="datetime-hour-25"
    ),
    pytest.param("boolean", "yes", "the default 'yes' is not a boolean value", id="boolean-yes"),
    pytest.param("boolean", 1, "the default 1 is not a boolean value", id="boolean-one"),
    pytest.param("number", 10**400, "is not a finite number a run can be given", id="number-beyond-float"),
    pytest.param("list", "a,b", "the default 'a,b' is not a list value", id="list-text"),
]


@pytest.mark.parametrize(("kind", "default", "message"), BAD_DEFAULTS)
def test_dp_validate_names_flow_param_and_value(kind: str, default: Any, message: str) -> None:
    with pytest.raises(FlowValidationError) as caught:
        validate_spec(flow(kind, default), CATALOG)
    errors = [str(e) for e in caught.value.errors]
    assert any(e.startswith("flow 'sales', field 'params.since.default': ") and message in e for e in errors), errors


@pytest.mark.parametrize(
    ("kind", "default"),
    [
        ("date", "2024-01-31"),
        ("datetime", "2024-01-31T08:00:00+01:00"),
        ("datetime", "2024-01-31"),
        ("integer", 10),
        ("number", 10),
        ("number", 2.5),
        ("boolean", False),
        ("object", {"a": [1]}),
        ("list", []),
        ("string", ""),
    ],
)
def test_defaults_of_the_declared_type_are_accepted(kind: str, default: Any) -> None:
    validate_spec(flow(kind, default), CATALOG)


def test_a_bad_default_is_not_stored(tmp_path: Path) -> None:
    """`dp publish` and the code location's import store through publish_spec: nothing is written."""
    store = FlowStore(f"sqlite:///{tmp_path / 'store.db'}")
    store.upgrade()
    with pytest.raises(FlowValidationError, match=r"params\.since\.default"):
        publish_spec(store, flow("date", "not-a-date"), CATALOG, check_compiles=False)
    assert [info.id for info in store.list_flows()] == []
    publish_spec(store, flow("date", "2024-01-31"), CATALOG, check_compiles=False)
    assert [info.id for info in store.list_flows()] == ["sales"]


KINDS = ["string", "integer", "number", "boolean", "date", "datetime", "list", "object"]
CONVERT = {
    "string": str,
    "integer": int,
    "number": float,
    "boolean": bool,
    "list": list,
    "object": dict,
    "date": dt.date.fromisoformat,
    "datetime": dt.datetime.fromisoformat,
}
JSON_SCALARS = st.one_of(
    st.booleans(),
    st.integers(-(10**30), 10**30),
    st.floats(allow_nan=False),
    st.text(max_size=20),
    st.sampled_from(
        [
            "2024-01-31",
            "2024-02-30",
            "2024-01-31T08:00:00",
            "2024-W05-3",
            "20240131",
            "31/01/2024",
            "true",
            "10",
            "1e400",
        ]
    ),
)
DEFAULTS = st.one_of(
    JSON_SCALARS,
    st.lists(JSON_SCALARS, max_size=3),
    st.dictionaries(st.text(max_size=5), JSON_SCALARS, max_size=3),
    st.dictionaries(st.integers(0, 3), JSON_SCALARS, min_size=1, max_size=2),
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(kind=st.sampled_from(KINDS), default=DEFAULTS)
def test_any_default_validates_and_converts_or_fails_naming_the_param(kind: str, default: Any) -> None:
    """Property: a (type, default) pair either validates, and then the default converts to the
    declared type and a run may be given it as that param; or it fails naming the param."""
    spec = flow(kind, default)
    try:
        validated = validate_spec(spec, CATALOG)
    except FlowValidationError as exc:
        assert all(e.flow == "sales" for e in exc.errors)
        assert any(e.field is not None and e.field.startswith("params.since") for e in exc.errors), exc.errors
        return
    converted = CONVERT[kind](default)
    assert isinstance(converted, dt.date if kind in ("date", "datetime") else type(converted))
    check_params("sales", validated.flow.params, {"since": default})  # a launch takes the same value
