"""The deployment's Celery file as the running platform reads it: one file for both sides.

The executor of Celery flows (``compiler.executors``, when the code location loads) and the
workers (``python -m dp_deploy celery-worker -y``) read the same ``deploy/celery-worker.yaml``;
``dp_deploy`` checks it against ``dagster.yaml``. It lives here, below ``dp_deploy``, because the
code location needs it at load time and ``dp_deploy`` is the layer above the code location.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from dp_assets.compiler import celery as cc
from dp_assets.compiler.celery_executor import celery_executor_for
from dp_settings import load


class DeploymentError(RuntimeError):
    """Deployment files that disagree or break a rule; the message lists every problem."""


def load_yaml(path: str | Path) -> dict[str, Any]:
    data = yaml.safe_load(Path(path).read_text()) or {}
    if not isinstance(data, dict):
        raise DeploymentError(f"{path}: expected a mapping at the top level")
    return data


@dataclass(frozen=True)
class CeleryDeployment:
    """The Celery settings that the executor and the workers of a deployment share.

    Both sides read one file, ``$DP_CELERY_CONFIG`` (``deploy/celery-worker.yaml``): the
    workers through ``celery-worker -y``, the executor of Celery flows when the code location
    loads. Two copies of the settings could drift apart (a shorter redelivery timeout on one
    side); one file cannot. Without the variable both use :func:`celery.celery_settings`.
    """

    longest_step_seconds: float
    settings: Mapping[str, Any]  # Celery's config_source: no broker, no backend
    source: str

    def executor(self) -> Any:
        """The Celery executor with these settings (broker and backend read at run start)."""
        return celery_executor_for(self.longest_step_seconds, settings=self.settings)

    def step_too_long(self, seconds: float) -> bool:
        return seconds > self.longest_step_seconds


def celery_deployment(path: str | Path | None = None) -> CeleryDeployment:
    """The deployment's Celery settings: ``path``, else ``$DP_CELERY_CONFIG``, else the defaults.

    Raises :class:`DeploymentError` naming the file when it is missing or not a worker file.
    """
    path = path or load().celery.config
    if not path:
        return CeleryDeployment(float(cc.DEFAULT_LONGEST_STEP_SECONDS), cc.celery_settings(), "built-in defaults")
    try:
        doc = load_yaml(path)
    except (OSError, yaml.YAMLError) as exc:
        raise DeploymentError(
            f"${cc.CONFIG_FILE_ENV}={path}: cannot read the Celery worker file ({exc}); point it "
            "at deploy/celery-worker.yaml or unset it for the defaults"
        ) from exc
    block = (doc.get("execution") or {}).get("config") or {}
    settings = block.get("config_source")
    if not isinstance(settings, Mapping) or not settings:
        raise DeploymentError(
            f"{path} has no execution.config.config_source: render it with `python -m dp_deploy render-worker-yaml`"
        )
    longest = (doc.get("dp") or {}).get("longest_step_seconds", cc.DEFAULT_LONGEST_STEP_SECONDS)
    return CeleryDeployment(float(longest), dict(settings), str(path))
