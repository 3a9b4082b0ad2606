"""Where the platform keeps things: kept for old imports; the settings live in :mod:`dp_settings`.

Each function answers from :func:`dp_settings.current` (the environment when called, never at
import). New code takes a :class:`dp_settings.PlatformSettings` from its caller instead; the
variables are described in ``docs/settings.md``.
"""

from __future__ import annotations

from pathlib import Path

from dp_settings import REPO_ROOT, current

__all__ = [
    "REPO_ROOT",
    "dagster_home",
    "data_dir",
    "dp_home",
    "flows_dir",
    "http_allowed_networks",
    "outputs_url",
    "store_url",
]


def dp_home() -> Path:
    return current().dp_home()


def flows_dir() -> Path | None:
    """The folder of spec files to import on load; ``DP_FLOWS_DIR=""`` turns the import off."""
    return current().flows_folder()


def store_url() -> str:
    return current().store_url()


def data_dir() -> Path:
    return current().data_folder()


def outputs_url() -> str:
    return current().outputs_base()


def dagster_home() -> Path | None:
    return current().dagster_home_folder()


def http_allowed_networks() -> list[str]:
    return list(current().http.allowed_networks)
