"""What starts a flow's runs (``triggers:``: a schedule, events, files, another flow) and who is
told when one finishes (``notify:``)."""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import Field, field_validator, model_validator

from dp_assets.spec.dagster_rules import dagster_accepts_cron
from dp_assets.spec.fields import FlowId, Strict


def _interval_field() -> Any:
    return Field(
        default=None,
        ge=1,
        le=86400,
        description="Seconds between sensor ticks (default: DP_SENSOR_INTERVAL_SECONDS, else 30).",
    )


ENV_REF_RE = r"^\$\{env:[A-Za-z_][A-Za-z0-9_]*\}$"


class ScheduleTrigger(Strict):
    """Run the flow on a cron schedule (a Dagster ``ScheduleDefinition``)."""

    type: Literal["schedule"]
    cron: str = Field(description="Cron expression, e.g. '0 */2 * * *' (every two hours).")
    timezone: str = Field(default="UTC", description="IANA time zone of the cron expression.")
    params: dict[str, Any] = Field(default_factory=dict, description="Params of every run.")
    enabled: bool = Field(default=True, description="Running by default (can be toggled in the UI).")
    missed_runs: Literal["skip", "latest"] = Field(
        default="latest",
        description="Ticks missed while the daemon was down: 'latest' runs the latest one once "
        "the daemon is back; 'skip' runs none of them.",
    )
    missed_after_seconds: int = Field(
        default=300,
        ge=1,
        description="A tick evaluated this much later than its scheduled time counts as missed.",
    )

    @field_validator("cron")
    @classmethod
    def _valid_cron(cls, value: str) -> str:
        if not dagster_accepts_cron(value):
            raise ValueError(f"'{value}' is not a valid cron expression (e.g. '0 */2 * * *')")
        return value

    @field_validator("timezone")
    @classmethod
    def _valid_timezone(cls, value: str) -> str:
        from dp_assets.timezones import check_timezone  # a set lookup: the name never reaches a file

        return check_timezone(value)


class EventTrigger(Strict):
    """Run the flow once per event on matching topics (``*`` one segment, ``**`` any number)."""

    type: Literal["event"]
    topics: list[str] = Field(
        min_length=1,
        description="Topic patterns; list 'webhook.<flow id>' to accept POST /hooks/<flow id>.",
    )
    params: dict[str, Any] = Field(
        default_factory=dict, description="Fixed params; the event payload fills the others."
    )
    enabled: bool = True
    start: Literal["earliest", "latest"] = Field(
        default="earliest",
        description="Where a new sensor starts: every retained matching event ('earliest') or "
        "only events published after its first tick ('latest').",
    )
    interval_seconds: int | None = _interval_field()

    @field_validator("topics")
    @classmethod
    def _valid_patterns(cls, value: list[str]) -> list[str]:
        from dp_sensors.events.topics import validate_topic_pattern

        return [validate_topic_pattern(pattern) for pattern in value]


class FileTrigger(Strict):
    """Run the flow once per new (or changed) file matching a glob under the data root."""

    type: Literal["file"]
    glob: str = Field(description="Relative to the data root, e.g. 'incoming/*.csv'.")
    param: str = Field(default="path", description="The flow param that receives the file path.")
    params: dict[str, Any] = Field(default_factory=dict, description="Fixed params of every run.")
    enabled: bool = True
    min_age_seconds: float = Field(
        default=0,
        ge=0,
        description="Only files unchanged for this long (so a file still being written waits).",
    )
    interval_seconds: int | None = _interval_field()

    @field_validator("glob")
    @classmethod
    def _relative_glob(cls, value: str) -> str:
        import os
        from pathlib import PurePosixPath

        from dp_resources.paths import glob_error

        if not value or os.path.isabs(value) or value.startswith("/") or ".." in PurePosixPath(value).parts:
            raise ValueError(f"glob '{value}' must be relative to the data root, without '..'")
        # The files resource asks the same at every tick: a glob it refuses would fail each one.
        problem = glob_error(value)
        if problem is not None:
            raise ValueError(problem)
        return value


class FlowTrigger(Strict):
    """Run the flow when another flow's run succeeds (or fails): a chain, like SVOps' DAG chain."""

    type: Literal["flow"]
    flow: FlowId
    on: Literal["success", "failure"] = "success"
    params: dict[str, Any] = Field(default_factory=dict)
    pass_params: bool = Field(
        default=False,
        description="Also pass the upstream run's params that this flow declares too.",
    )
    enabled: bool = True
    interval_seconds: int | None = _interval_field()


Trigger = Annotated[ScheduleTrigger | EventTrigger | FileTrigger | FlowTrigger, Field(discriminator="type")]


RunOutcome = Literal["failure", "success"]


def _failures_only() -> list[RunOutcome]:
    return ["failure"]


class Notification(Strict):
    """Where to say that a run finished, sent by a run-status sensor with a link to the run.

    Webhook URLs are secrets (a Slack incoming-webhook URL is its own credential), so they are
    written as ``${env:NAME}`` and resolved only when a message is sent.
    """

    on: list[RunOutcome] = Field(default_factory=_failures_only, min_length=1)
    webhook: str | None = Field(
        default=None,
        description="'${env:NAME}': the variable holds a Slack-style incoming-webhook URL.",
    )
    email: list[str] | None = Field(default=None, description="Addresses, or '${env:NAME}' references to them.")

    @field_validator("webhook")
    @classmethod
    def _webhook_from_env(cls, value: str | None) -> str | None:
        if value is not None and not re.match(ENV_REF_RE, value):
            raise ValueError(
                "write the webhook as '${env:NAME}' and put the URL in that environment variable: "
                "webhook URLs are secrets and never sit in a spec"
            )
        return value

    @model_validator(mode="after")
    def _has_target(self) -> Notification:
        if not self.webhook and not self.email:
            raise ValueError("a notification needs a 'webhook' or an 'email' list")
        return self
