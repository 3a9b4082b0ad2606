"""The retention rule: which runs of a flow are old. One model for the spec and for pruning.

A flow spec's ``retention:`` block *is* :class:`RetentionPolicy` (``dp_assets.spec.model``
refers to it), and the daily schedule (``dp_io.retention``), ``dp runs prune`` and the run
history pruning (``dp_io.run_history``) apply it with :func:`past_retention`.

This module imports pydantic only, not Dagster: the spec, validated without Dagster (``dp
validate``, editors' JSON Schema), uses it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import timedelta

from pydantic import BaseModel, ConfigDict, Field

_DURATION = re.compile(r"^\s*(\d+)\s*([smhdw])\s*$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
NO_RULE = "retention needs keep_last, older_than_days or both"


class RetentionPolicy(BaseModel):
    """A flow's ``retention:`` block: keep the last N runs and/or runs newer than N days.

    A block without a rule is accepted here, as the spec always has (a stored flow with
    ``retention: {}`` keeps loading) and prunes nothing; whatever applies a policy refuses it
    (:meth:`require_rule`)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    keep_last: int | None = Field(default=None, ge=1, description="Keep the outputs of this many most recent runs.")
    older_than_days: int | None = Field(default=None, ge=1, description="Prune runs older than this many days.")
    run_history: bool = Field(
        default=False,
        description="Also delete the Dagster run records and event logs of runs past retention "
        "(a run that holds an asset's latest materialisation is kept).",
    )

    @property
    def has_rule(self) -> bool:
        return self.keep_last is not None or self.older_than_days is not None

    @property
    def older_than(self) -> timedelta | None:
        return timedelta(days=self.older_than_days) if self.older_than_days else None

    def require_rule(self) -> RetentionPolicy:
        if not self.has_rule:
            raise ValueError(NO_RULE)
        return self


def parse_duration(text: str) -> timedelta:
    """``30m``, ``12h``, ``7d``, ``2w`` -> timedelta (for ``dp runs prune --older-than``)."""
    match = _DURATION.match(text or "")
    if not match:
        raise ValueError(f"duration {text!r}: write a number and a unit s, m, h, d or w (e.g. 7d)")
    return timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})


def check_rules(keep_last: int | None, older_than: timedelta | None) -> None:
    if keep_last is None and older_than is None:
        raise ValueError("prune needs keep_last, older_than or both")
    if keep_last is not None and keep_last < 0:
        raise ValueError("keep_last must be 0 or more")


def past_retention(
    runs: Iterable[tuple[float, str]], keep_last: int | None, older_than: timedelta | None, now: float
) -> list[str]:
    """The run ids among ``runs`` (start time, run id) that the rules judge old: beyond the
    newest ``keep_last`` *and* older than ``older_than`` (a rule that is ``None`` holds)."""
    cutoff = now - older_than.total_seconds() if older_than is not None else None
    return [
        run_id
        for rank, (started, run_id) in enumerate(sorted(runs, reverse=True))
        if (keep_last is None or rank >= keep_last) and (cutoff is None or started < cutoff)
    ]
