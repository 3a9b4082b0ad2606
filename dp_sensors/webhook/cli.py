"""The receiver's defaults. ``dp webhook serve`` itself lives in ``dp_assets/cli/triggers.py``:
it needs the flow store's published flows, which dp_sensors does not import."""

from __future__ import annotations

DEFAULT_PORT = 8787
