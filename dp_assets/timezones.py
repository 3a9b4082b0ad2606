"""Time-zone names from specs, checked against the IANA list before any library sees them.

``zoneinfo.ZoneInfo(name)`` and pandas' ``tz=`` turn a name into a file path: ``'Europe'`` opens a
folder, ``'zone.tab'`` a non-zone file, and pandas' ``'dateutil/<path>'`` form reads any file on
the machine (``'dateutil//etc/passwd'``). So a name is accepted only when it is one of the zones
``zoneinfo.available_timezones()`` lists (or ``UTC``): the check is a set lookup, and a name a
spec chooses never reaches the filesystem (issue 16).
"""

from __future__ import annotations

import difflib
import functools
from typing import Any

MAX_NAME_LENGTH = 64  # the longest IANA name is about 30 characters


@functools.cache
def known_timezones() -> frozenset[str]:
    """The IANA zone names of this machine's tz database (tzdata), read once."""
    import zoneinfo

    return frozenset(zoneinfo.available_timezones()) | {"UTC"}


def timezone_error(value: Any) -> str | None:
    """Why ``value`` is not a time-zone name (None when it is one)."""
    if not isinstance(value, str):
        return f"a time zone must be text such as 'Europe/Berlin', not {type(value).__name__}"
    if value in known_timezones():
        return None
    shown = value if len(value) <= MAX_NAME_LENGTH else value[:MAX_NAME_LENGTH] + "..."
    message = f"unknown time zone {shown!r}"
    close = difflib.get_close_matches(value, sorted(known_timezones()), n=1) if len(value) <= MAX_NAME_LENGTH else []
    hint = f"did you mean '{close[0]}'?" if close else "use an IANA name such as 'Europe/Berlin' or 'UTC'"
    return f"{message}; {hint}"


def check_timezone(value: Any) -> str:
    """``value`` when it is an IANA zone name; otherwise ``ValueError`` (a pydantic validator's
    error, so the message names the field it came from)."""
    problem = timezone_error(value)
    if problem is not None:
        raise ValueError(problem)
    return value
