"""A DuckDB connection in the step's own process: its memory limit and threads from the settings,
external access off except for the step's own Parquet sources (``allowed_paths``: DuckDB reads
those files itself, and no SQL that runs here can reach another file, the network or an
extension), the configuration then locked."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class EngineLimits:
    memory_limit: str = "2GB"
    threads: int | None = None  # None: DuckDB's default, the machine's cores

    @classmethod
    def from_settings(cls, settings: Any = None) -> EngineLimits:
        """The limits of ``settings``, else of the settings in force (``dp_settings.current``:
        read once per process and environment, not rebuilt for each step's connection)."""
        if settings is None:
            from dp_settings import current

            settings = current()
        return cls(memory_limit=settings.duckdb.memory_limit or cls.memory_limit, threads=settings.duckdb.threads)

    def config(self) -> dict[str, Any]:
        """DuckDB's settings for these limits (``SqlTransform``'s connection takes them too)."""
        return {"memory_limit": self.memory_limit, **({"threads": self.threads} if self.threads else {})}


def connect(limits: EngineLimits | None = None, allowed_paths: tuple[str, ...] = ()) -> Any:
    import duckdb

    from .sql_expressions import quote_text

    limits = limits or EngineLimits.from_settings()
    config: dict[str, Any] = {
        **limits.config(),
        "autoinstall_known_extensions": False,
        "autoload_known_extensions": False,
    }
    connection = duckdb.connect(":memory:", config=config)
    # DuckDB takes allowed_paths only once the database runs and before external access is off
    if allowed_paths:
        connection.execute(f"SET allowed_paths = [{', '.join(quote_text(path) for path in allowed_paths)}]")
    connection.execute("SET enable_external_access = false")
    # timestamps with a zone come back in UTC; the chain gives each column its input's zone back
    connection.execute("SET TimeZone = 'UTC'")
    connection.execute("SET lock_configuration = true")
    return connection
