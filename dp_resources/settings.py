"""Where the platform keeps things, read from the environment when asked (never at import).

Every path has one function here so that the embedded default and production differ only in
environment variables:

- ``DP_HOME``: the local home (default ``./.dp_home``); holds the SQLite flow store, run outputs
  and the data root of the embedded default.
- ``DP_FLOWS_DIR``: spec files imported into the store when the code location loads
  (default: the repository's ``flows/``).
- ``DP_STORE_URL``: SQLAlchemy URL of the flow store (default: SQLite in ``DP_HOME``).
- ``DP_DATA_DIR``: the root that file nodes read from and write to (default ``DP_HOME/data``).
- ``DP_OUTPUTS_URL``: where run outputs are kept, a folder or any fsspec URL
  (default ``DP_HOME/outputs``).
- ``DP_HTTP_ALLOWED_NETWORKS``: comma-separated networks (CIDR) that HTTP nodes may reach although
  they are private or loopback (default: none).
"""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


def dp_home() -> Path:
    return Path(os.environ.get("DP_HOME") or Path.cwd() / ".dp_home").resolve()


def flows_dir() -> Path | None:
    """The folder of spec files to import on load; ``DP_FLOWS_DIR=""`` turns the import off."""
    value = os.environ.get("DP_FLOWS_DIR")
    if value is None:
        return REPO_ROOT / "flows"
    return Path(value).resolve() if value else None


def store_url() -> str:
    return os.environ.get("DP_STORE_URL") or f"sqlite:///{dp_home() / 'store.db'}"


def data_dir() -> Path:
    return Path(os.environ.get("DP_DATA_DIR") or dp_home() / "data").resolve()


def outputs_url() -> str:
    return os.environ.get("DP_OUTPUTS_URL") or str(dp_home() / "outputs")


def dagster_home() -> Path | None:
    value = os.environ.get("DAGSTER_HOME")
    return Path(value).resolve() if value else None


def http_allowed_networks() -> list[str]:
    value = os.environ.get("DP_HTTP_ALLOWED_NETWORKS", "")
    return [part.strip() for part in value.split(",") if part.strip()]
