"""The test-case file of a flow: fixtures, sink stand-ins, params and expectations.

A file lives in a ``tests/`` folder beside the spec (``flows/maxdp/tests/sales_report.yaml``),
names the flow it tests and lists cases. Strict models (``extra="forbid"``): a misspelt key fails
with its name when the file is read, never silently tests less. See docs/flow-tests.md.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from dp_assets.catalog.dtypes import DtypeName
from dp_assets.spec.ids import ID_PATTERN

# A node of the flow, a node of a sub-chain body ("parent.child"), or a named output ("node.output"
# in expectations only).
NODE_PATH = r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$"


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Fixture(Strict):
    """What a node gives instead of running: rows, a file, any value, or an error.

    Exactly one of ``rows``, ``file``, ``value`` and ``error``. The node keeps its inputs, so a
    branch not taken still skips it; ``match`` filters the fixture rows by the node's input.
    """

    rows: list[dict[str, Any]] | None = Field(default=None, description="Records, one mapping per row.")
    file: str | None = Field(
        default=None, description="CSV, Parquet, JSON or JSON Lines file, relative to the test file."
    )
    value: Any = Field(default=None, description="Any value (a tool's answer, a dict, a list).")
    error: str | None = Field(default=None, description="The node fails with this message.")
    format: Literal["csv", "parquet", "json", "jsonl"] | None = Field(
        default=None, description="File format; default from the suffix."
    )
    sep: str = ","
    dtype: dict[str, DtypeName] | None = Field(
        default=None, description="pandas dtype per column (an allow-listed name, as in FileInput)."
    )
    parse_dates: list[str] | None = None
    match: list[str] | None = Field(
        default=None,
        description="Keep only the fixture rows whose values in these columns appear in the node's "
        "first input (per item inside a ForEach body).",
    )
    missing: Literal["empty", "error"] = Field(
        default="empty", description="With `match`: no matching rows give an empty frame, or an error."
    )
    fail_times: int = Field(
        default=0,
        ge=0,
        le=100,
        description="The first N calls fail (with `error` as the message, if given): a flaky source.",
    )

    @model_validator(mode="after")
    def _one_source(self) -> Fixture:
        sources = [name for name in ("rows", "file") if getattr(self, name) is not None]
        if "value" in self.model_fields_set:
            sources.append("value")
        if len(sources) > 1:
            raise ValueError(f"a fixture gives one of rows, file or value (got {', '.join(sources)})")
        if not sources and self.error is None:
            raise ValueError("a fixture needs rows, file, value or error")
        if sources and self.error is not None and not self.fail_times and self.missing != "error":
            raise ValueError(
                "`error` beside rows/file/value is the message of `fail_times` or `missing: error`; "
                "set one of them, or drop the data to make the node always fail"
            )
        if not sources and self.fail_times:
            raise ValueError("`fail_times` fails the first calls and then gives rows, file or value: give one")
        if (self.match or self.missing == "error") and self.rows is None and self.file is None:
            raise ValueError("`match` and `missing` filter rows: give `rows` or `file`")
        return self

    @property
    def kind(self) -> str:
        if self.rows is not None:
            return "rows"
        if self.file is not None:
            return "file"
        if "value" in self.model_fields_set:
            return "value"
        return "error"


class Sink(Strict):
    """How a side-effecting node behaves in the test."""

    real: bool = Field(
        default=False,
        description="Run it for real (a TableWriter writes to its database). false: a stand-in "
        "that passes its input through and records what it would have sent.",
    )


class Expectation(Strict):
    """Assertions on one node's output (``node`` or ``node.output``); every given one must hold."""

    rows: int | None = Field(default=None, ge=0, description="Number of rows.")
    columns: list[str] | None = Field(default=None, description="Exactly these columns, in this order.")
    has_columns: list[str] | None = Field(default=None, description="At least these columns.")
    values: dict[str, list[Any]] | None = Field(default=None, description="Column -> its values, in row order.")
    equals: list[dict[str, Any]] | None = Field(
        default=None, description="The rows, in order, on the columns they name."
    )
    golden: str | None = Field(
        default=None,
        description="A CSV file (relative to the test file) the output must equal; "
        "`dp test --update-golden` writes it.",
    )
    value: Any = Field(default=None, description="A non-table value equals this.")
    includes: dict[str, Any] | None = Field(
        default=None, description="A mapping value holds these keys with these values (nested)."
    )
    skipped: bool | None = Field(default=None, description="true: the node did not run or gave no value.")
    message: str | None = Field(
        default=None, description="A SendNotification stand-in's rendered message matches this regex."
    )
    ordered: bool = Field(default=True, description="false: compare rows in any order.")
    tolerance: float = Field(default=1e-9, ge=0, description="Relative tolerance of float comparisons.")

    @field_validator("message")
    @classmethod
    def _regex(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                re.compile(value)
            except re.error as exc:
                raise ValueError(f"not a valid regular expression: {exc}") from None
        return value

    def checks(self) -> list[str]:
        names = [
            n
            for n in ("rows", "columns", "has_columns", "values", "equals", "golden", "includes", "skipped", "message")
            if getattr(self, n) is not None
        ]
        if "value" in self.model_fields_set:
            names.append("value")
        return names

    @model_validator(mode="after")
    def _something(self) -> Expectation:
        if not self.checks():
            raise ValueError("an expectation needs at least one check (rows, columns, values, equals, ...)")
        return self


class Failure(Strict):
    """The run is expected to fail (at ``node``, with a message matching ``error``)."""

    node: str | None = Field(default=None, pattern=NODE_PATH)
    error: str | None = Field(default=None, description="Regex the failure message must match.")


class TestCase(Strict):
    name: str = Field(pattern=r"^\S[^\n]*$", max_length=100, description="Shown in the report; `dp test --case`.")
    description: str = ""
    params: dict[str, Any] = Field(default_factory=dict, description="The run's params (run config).")
    partition: str | None = Field(
        default=None,
        max_length=200,
        description="The partition the case runs, for a flow with 'partitions:' (default: its first).",
    )
    fixtures: dict[str, Fixture] = Field(default_factory=dict, description="Node -> what it gives instead.")
    sinks: dict[str, Sink] = Field(
        default_factory=dict,
        description="Node -> real or stand-in. APIRequest, SendNotification and TableWriter are "
        "stand-ins unless `real: true`; other side-effecting nodes must be listed or given a fixture.",
    )
    expect: dict[str, Expectation] = Field(default_factory=dict)
    fails: Failure | None = None

    @field_validator("fixtures", mode="before")
    @classmethod
    def _rows_shorthand(cls, value: Any) -> Any:
        """``orders: [{...}, {...}]`` is short for ``orders: {rows: [...]}``."""
        if isinstance(value, dict):
            return {k: {"rows": v} if isinstance(v, list) else v for k, v in value.items()}
        return value

    @field_validator("fixtures", "sinks", "expect")
    @classmethod
    def _node_paths(cls, value: dict[str, Any]) -> dict[str, Any]:
        for key in value:
            if not re.match(NODE_PATH, key):
                raise ValueError(f"'{key}' is not a node id (node, parent.child or node.output)")
        return value


class TestFile(Strict):
    flow: str | None = Field(default=None, pattern=ID_PATTERN, description="The flow id; default: the file's name.")
    description: str = ""
    cases: list[TestCase] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique_names(self) -> TestFile:
        seen: set[str] = set()
        for case in self.cases:
            if case.name in seen:
                raise ValueError(f"two cases are named '{case.name}'")
            seen.add(case.name)
        return self


TestCase.__test__ = False  # type: ignore[attr-defined]  # not pytest classes
TestFile.__test__ = False  # type: ignore[attr-defined]
