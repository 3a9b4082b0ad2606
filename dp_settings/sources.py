"""Settings from a mapping instead of the process environment (tests, ``environ=`` arguments)."""

from __future__ import annotations

from collections.abc import Mapping

from pydantic_settings import EnvSettingsSource
from pydantic_settings.sources.utils import parse_env_vars

from dp_settings.model import PlatformSettings


class MappingEnvSource(EnvSettingsSource):
    """pydantic-settings' environment source, reading ``environ`` rather than ``os.environ``."""

    def __init__(self, environ: Mapping[str, str]) -> None:
        self._environ = dict(environ)
        super().__init__(PlatformSettings)

    def _load_env_vars(self) -> Mapping[str, str | None]:
        return parse_env_vars(self._environ, self.case_sensitive, self.env_ignore_empty, self.env_parse_none_str)


def settings_from_mapping(environ: Mapping[str, str]) -> PlatformSettings:
    return PlatformSettings(_build_sources=((MappingEnvSource(environ),), {}))
