"""Run ids as people type them: the 8 characters the Dagster UI shows, or any unique prefix.

Every ``dp`` command that takes a run id resolves it here (``dp runs show|read``,
``dp retry-failed``, ``dp status``), so a short id means the same run everywhere and an unclear
one is refused the same way: never a guess. Public Dagster instance APIs only.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

#: Fewer characters than this match too many runs to be worth a lookup (the UI shows 8).
MIN_PREFIX = 4
#: A whole run id (a UUID) is taken as given, known or not: the command says what it lacks.
FULL_LENGTH = 36
#: How many candidates an ambiguous prefix lists.
LISTED = 5


class RunIdError(LookupError):
    """No run, or more than one, answers to the id given; the message says which and what to do."""


class AmbiguousRunId(RunIdError):
    """Several runs start with the prefix given; the message names them."""


def resolve_run_id(instance: Any | None, given: str, *, also: Iterable[str] = ()) -> str:
    """The whole id of the one run whose id starts with ``given``.

    Candidates are the runs of ``instance`` (may be ``None``) and the ids in ``also`` (for
    example run folders of the outputs store, whose run records may have been pruned). A whole id
    is returned as given. Raises :class:`RunIdError` for a prefix shorter than ``MIN_PREFIX``, one
    that matches no run, or one that matches several (naming them).
    """
    given = given.strip()
    if len(given) >= FULL_LENGTH:
        return given
    known = set(also)
    if instance is not None:
        known.update(instance.get_run_ids())
    if given in known:
        return given
    if len(given) < MIN_PREFIX:
        raise RunIdError(
            f"run id '{given}' is too short: give at least {MIN_PREFIX} characters (the UI shows the first 8)"
        )
    matches = sorted(run_id for run_id in known if run_id.startswith(given))
    if len(matches) == 1:
        return matches[0]
    if not matches:
        where = "in the Dagster instance of DAGSTER_HOME" if instance is not None else "here"
        raise RunIdError(f"no run id starts with '{given}' {where}")
    listed = "; ".join(_describe(instance, matches[:LISTED]))
    more = f" and {len(matches) - LISTED} more" if len(matches) > LISTED else ""
    raise AmbiguousRunId(
        f"run id '{given}' is ambiguous: {len(matches)} runs start with it ({listed}{more}); give more characters"
    )


def _describe(instance: Any | None, run_ids: list[str]) -> list[str]:
    """``run_id (job, STATUS)`` for the runs the instance knows, the bare id for the others."""
    records = {}
    if instance is not None:
        import dagster as dg

        records = {
            record.dagster_run.run_id: record.dagster_run
            for record in instance.get_run_records(filters=dg.RunsFilter(run_ids=run_ids))
        }
    described = []
    for run_id in run_ids:
        run = records.get(run_id)
        described.append(f"{run_id} ({run.job_name}, {run.status.value})" if run is not None else run_id)
    return described
