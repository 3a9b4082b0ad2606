"""Reading the settings: once where a process starts, and ``current()`` where nothing can pass them.

Services read :func:`load` once at start and pass the result down. Two kinds of code cannot be
handed it by us, and call :func:`current` instead:

- code Dagster calls without our arguments while a run executes: resources' methods (the
  ``llm``, ``databases``, ``notifications``... resources read their defaults when used), the
  Celery executor's factory at run start, the IO manager's default base;
- code under the compiler while a code location loads (sensor intervals, executors): the
  location's build makes its settings current for that call (:func:`using`), so those pieces
  see exactly the settings the location was built with.

Outside :func:`using`, ``current()`` reads the environment and keeps the result while the
``DP_*`` variables stay the same, so a run that reads it a thousand times parses once, and a
test that changes a variable sees the change on its next call (as with ``os.environ`` before).
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar

from pydantic import SecretStr

from dp_settings.model import PlatformSettings

#: Variables outside ``DP_*`` that the model reads.
OTHER_VARIABLES = ("DAGSTER_HOME",)

_active: ContextVar[PlatformSettings | None] = ContextVar("dp_settings_active", default=None)
_cache_lock = threading.Lock()
_cached: tuple[tuple[tuple[str, str], ...], PlatformSettings] | None = None


def environment_key(environ: Mapping[str, str] | None = None) -> tuple[tuple[str, str], ...]:
    """The variables the settings are made of, as a hashable key (compiled flows use it too)."""
    env = os.environ if environ is None else environ
    return tuple(
        sorted((name, value) for name, value in env.items() if name.startswith("DP_") or name in OTHER_VARIABLES)
    )


def fingerprint(settings: PlatformSettings) -> str:
    """A digest of every value (secrets included): equal settings, equal fingerprint.

    Compiled flows are reused only under the same settings (``dp_assets.location``).
    """

    def reveal(value: object) -> object:
        return value.get_secret_value() if isinstance(value, SecretStr) else str(value)

    text = json.dumps(settings.model_dump(), sort_keys=True, default=reveal)
    return hashlib.sha256(text.encode()).hexdigest()


def load(environ: Mapping[str, str] | None = None) -> PlatformSettings:
    """The settings of ``environ`` (default: this process's environment), read now."""
    if environ is None:
        return PlatformSettings()
    from dp_settings.sources import settings_from_mapping

    return settings_from_mapping(environ)


def current() -> PlatformSettings:
    """The settings in force here: the ones :func:`using` made current, else the environment's.

    Only for code that cannot be handed the settings (see the module docstring).
    """
    global _cached
    active = _active.get()
    if active is not None:
        return active
    key = environment_key()
    cached = _cached
    if cached is not None and cached[0] == key:
        return cached[1]
    settings = load()
    with _cache_lock:
        _cached = (key, settings)
    return settings


@contextmanager
def using(settings: PlatformSettings) -> Iterator[PlatformSettings]:
    """Make ``settings`` what :func:`current` answers inside this block (this thread/context)."""
    token = _active.set(settings)
    try:
        yield settings
    finally:
        _active.reset(token)
