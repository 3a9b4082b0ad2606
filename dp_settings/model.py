"""The platform's settings: every ``DP_*`` environment variable, typed, described and defaulted.

One model, read once where a process starts (the code location, the webhook receiver, the proxy,
the CLI, a Celery worker, ``python -m dp_deploy``) and passed down. Each field names its variable
(``DP_`` + the field name, or ``DP_<GROUP>_<FIELD>`` inside a group such as ``smtp``); the
generated table in ``docs/settings.md`` lists them all.

Empty values keep the meaning they always had: a variable set to ``""`` counts as unset, except
``DP_FLOWS_DIR`` (empty turns the import of spec files off) and the few noted on their field.
Values that hold a password or token are ``SecretStr``: they never show in a ``repr`` or a log.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from dp_settings.fields import CommaList, Unset, secret_value, setting
from dp_settings.groups import (
    AuthSettings,
    CelerySettings,
    DagsterSettings,
    DbSettings,
    DuckDbSettings,
    HttpSettings,
    LlmSettings,
    ProxySettings,
    RabbitMqSettings,
    SmtpSettings,
    StoreSettings,
    WebhookSettings,
)

#: The repository's root: its ``flows/`` is the default spec folder.
REPO_ROOT = Path(__file__).resolve().parent.parent
EXECUTORS = ("in_process", "multiprocess", "celery")


class PlatformSettings(BaseSettings):
    """Every setting of the platform, from the environment (see the module docstring)."""

    model_config = SettingsConfigDict(
        env_prefix="DP_",
        env_nested_delimiter="_",
        env_nested_max_split=1,  # DP_PROXY_LOGIN_BURST is proxy.login_burst
        extra="ignore",
        frozen=True,
    )

    home: Annotated[str | None, Unset] = setting(
        "The local home: SQLite flow store, run outputs and data root of the embedded default.",
        default_text="./.dp_home",
    )
    flows_dir: str | None = setting(
        "Spec files imported into the store when the code location loads; empty: no import.",
        default_text="the repository's flows/",
    )
    data_dir: Annotated[str | None, Unset] = setting(
        "The root that file nodes read from and write to.", default_text="DP_HOME/data"
    )
    outputs_url: Annotated[str | None, Unset] = setting(
        "Where run outputs are kept: a folder or any fsspec URL.", default_text="DP_HOME/outputs"
    )
    tables_url: Annotated[SecretStr | None, Unset] = setting(
        "PostgreSQL URL of `storage.format: table` outputs (read when such a flow runs).",
        default_text="none (required by table outputs)",
    )
    executor: Annotated[Literal["in_process", "multiprocess", "celery"] | None, Unset] = setting(
        "Executor of every flow whose spec names none: in_process, multiprocess or celery.",
        default_text="in_process",
    )
    sensor_interval_seconds: Annotated[int | None, Unset] = setting(
        "Seconds between sensor ticks of triggers that declare no interval (a whole number, ≥ 1).",
        default_text="30",
    )
    events_url: Annotated[SecretStr | None, Unset] = setting(
        "Event bus: `redis://...[?stream=NAME]` or a SQLAlchemy URL.", default_text="the flow store"
    )
    launches_url: Annotated[SecretStr | None, Unset] = setting(
        "Database of the receiver's launch ledger.", default_text="the flow store"
    )
    code_location: Annotated[str | None, Unset] = setting(
        "Code location name for launches.", default_text="the one that holds the flow"
    )
    mcp_config: Annotated[str | None, Unset] = setting(
        "YAML/JSON file of the MCP servers flows may use.", default_text="none"
    )
    allowed_secret_names: CommaList = setting(
        "Glob patterns (comma separated) of the variables a spec may reference as `${env:NAME}`.",
        default=[],
        default_text="DP_SECRET_*",
    )
    webserver_url: Annotated[str | None, Unset] = setting(
        "Base URL of the Dagster UI, for links in notifications.", default_text="no link"
    )
    invoke_max_wait_seconds: Annotated[float | None, Unset] = setting(
        "Longest a `POST /flows/{id}/invoke` or `dp invoke` waits for its run before answering 202 "
        "with the run id (a caller's own timeout is capped at it).",
        default_text="60",
        gt=0,
        le=3600,
    )
    invoke_max_rows: Annotated[int | None, Unset] = setting(
        "Rows of each result node that an invoke answer carries (the rest is in the run's outputs).",
        default_text="1000",
        ge=0,
        le=100_000,
    )
    dagster_home: Annotated[str | None, Unset] = setting(
        "Dagster's instance folder (`dagster.yaml`); Dagster reads it too.",
        default_text="none",
        validation_alias="DAGSTER_HOME",
    )

    store: StoreSettings = Field(default_factory=StoreSettings)
    http: HttpSettings = Field(default_factory=HttpSettings)
    db: DbSettings = Field(default_factory=DbSettings)
    celery: CelerySettings = Field(default_factory=CelerySettings)
    rabbitmq: RabbitMqSettings = Field(default_factory=RabbitMqSettings)
    duckdb: DuckDbSettings = Field(default_factory=DuckDbSettings)
    smtp: SmtpSettings = Field(default_factory=SmtpSettings)
    llm: LlmSettings = Field(default_factory=LlmSettings)
    proxy: ProxySettings = Field(default_factory=ProxySettings)
    webhook: WebhookSettings = Field(default_factory=WebhookSettings)
    auth: AuthSettings = Field(default_factory=AuthSettings)
    dagster: DagsterSettings = Field(default_factory=DagsterSettings)

    # --- where things are (the working directory is read when asked, as before) --------------

    def dp_home(self) -> Path:
        return Path(self.home or Path.cwd() / ".dp_home").resolve()

    def flows_folder(self) -> Path | None:
        """The folder of spec files to import on load; ``DP_FLOWS_DIR=""`` turns the import off."""
        if self.flows_dir is None:
            return REPO_ROOT / "flows"
        return Path(self.flows_dir).resolve() if self.flows_dir else None

    def store_url(self) -> str:
        return secret_value(self.store.url) or f"sqlite:///{self.dp_home() / 'store.db'}"

    def data_folder(self) -> Path:
        return Path(self.data_dir or self.dp_home() / "data").resolve()

    def outputs_base(self) -> str:
        return self.outputs_url or str(self.dp_home() / "outputs")

    def dagster_home_folder(self) -> Path | None:
        return Path(self.dagster_home).resolve() if self.dagster_home else None

    def invoke_wait_cap(self) -> float:
        """``DP_INVOKE_MAX_WAIT_SECONDS``, else 60 s."""
        return self.invoke_max_wait_seconds or 60.0

    def invoke_row_limit(self) -> int:
        """``DP_INVOKE_MAX_ROWS``, else 1,000."""
        return 1000 if self.invoke_max_rows is None else self.invoke_max_rows

    def events_bus_url(self) -> str:
        """``DP_EVENTS_URL``, else the flow store's database."""
        return secret_value(self.events_url) or self.store_url()

    def launch_ledger_url(self) -> str:
        """``DP_LAUNCHES_URL``, else the flow store's database."""
        return secret_value(self.launches_url) or self.store_url()

    def default_executor(self) -> str:
        return self.executor or "in_process"

    def sensor_interval(self, default: int = 30) -> int:
        """``DP_SENSOR_INTERVAL_SECONDS``, else ``default``."""
        return self.sensor_interval_seconds or default

    @field_validator("executor", mode="before")
    @classmethod
    def _known_executor(cls, value: Any) -> Any:
        if value and value not in EXECUTORS:
            raise ValueError(f"DP_EXECUTOR={value!r}: choose one of {', '.join(EXECUTORS)}")
        return value

    @field_validator("sensor_interval_seconds", mode="before")
    @classmethod
    def _whole_seconds(cls, value: Any) -> Any:
        if isinstance(value, str) and value:
            try:
                value = int(value)
            except ValueError:
                raise ValueError(f"DP_SENSOR_INTERVAL_SECONDS={value!r} is not a whole number of seconds") from None
        if isinstance(value, int) and value < 1:
            raise ValueError("DP_SENSOR_INTERVAL_SECONDS must be at least 1 second")
        return value
