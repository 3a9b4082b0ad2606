"""The building blocks of every spec model: the strict base model, and the id, name, tag and
owner types with Dagster's naming rules checked where a spec is validated (so a spec breaking
one fails naming its field, not at definition load)."""

from __future__ import annotations

import keyword
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from dp_assets.spec.ids import ID_PATTERN, NODE_ID_PATTERN

#: Names Dagster refuses for a job or an op output: Python's keywords and a few of its own. A copy
#: of its private ``DISALLOWED_NAMES``, so that validating a spec does not import Dagster (a
#: second); ``tests/platform/test_dagster_fence.py`` fails when the two differ.
DAGSTER_RESERVED_NAMES = frozenset(keyword.kwlist) | {
    "arg_dict",
    "bool",
    "conf",
    "config",
    "context",
    "dict",
    "float",
    "input",
    "input_arg_dict",
    "int",
    "meta",
    "output",
    "output_arg_dict",
    "str",
    "type",
}


def _not_reserved(value: str) -> str:
    """Flow ids name a Dagster job and node ids an op output: Dagster refuses Python keywords
    and a few names of its own (``context``, ``config``, ``input``, ``type``...)."""
    if value in DAGSTER_RESERVED_NAMES:
        raise ValueError(
            f"'{value}' is a name Dagster reserves (a Python keyword or one of its own); "
            "choose another id, e.g. '{value}_1'".replace("{value}", value)
        )
    return value


FlowId = Annotated[str, Field(pattern=ID_PATTERN, max_length=64), AfterValidator(_not_reserved)]
NodeId = Annotated[str, Field(pattern=NODE_ID_PATTERN, max_length=64), AfterValidator(_not_reserved)]
# A flow param's name: what a ``{{ params.NAME }}`` reference can name, and a field name the
# params models of triggers and the launch receiver can have (pydantic refuses a leading "_").
ParamName = Annotated[str, Field(pattern=r"^[A-Za-z][A-Za-z0-9_]*$", max_length=64)]
# Dagster's rules for asset tags and owners (dagster._utils.tags, dagster._core.definitions.utils),
# checked here so that a spec breaking them is a validation error naming the field, not a
# definition error at load.
TagKey = Annotated[str, Field(pattern=r"^([A-Za-z0-9_.-]{1,63}/)?[A-Za-z0-9_.-]{1,63}$")]
TagValue = Annotated[str, Field(pattern=r"^[A-Za-z0-9_.-]{0,63}$")]
Tags = dict[TagKey, TagValue]
Owner = Annotated[
    str,
    Field(
        pattern=r"^(team:.+|[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,7})$",
        description="An e-mail address or a team name prefixed with 'team:'.",
    ),
]


class Strict(BaseModel):
    # allow_inf_nan: a float field of a spec is a count of seconds or a limit, and an infinite
    # one breaks Dagster tags (int(inf)) and JSON storage alike.
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)
