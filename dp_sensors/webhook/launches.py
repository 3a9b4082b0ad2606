"""Idempotent launches: one run per flow and ``Idempotency-Key``, however often and however
concurrently the request is repeated (reliability test E2).

Keys are scoped per flow: the row's primary key is ``(flow_id, idempotency_key)``, so the same
key sent for two flows gives two runs, and a caller of one flow can neither learn whether another
flow used a key (no 409 naming it) nor block it (no 503 while it launches). Tokens are per flow
or global, so the flow is also the finest principal the receiver knows.

Dagster never de-duplicates GraphQL launches, so the key is recorded in ``dp_launches`` under a
unique constraint *before* launching. Of concurrent requests with one key exactly one insert
succeeds; that request holds a lease, launches, and stores the run id. The others find the row
and poll until the run id appears, then answer with it. A repeat with a different body is a
conflict (409).

Failure handling:

- the launcher raises: the row is deleted, so a retry with the same key launches again (the
  launcher gets the key as the ``dp/idempotency_key`` run tag and may look for an earlier run
  with it before launching, which makes retries after ambiguous failures such as timeouts safe);
- the receiver dies between insert and launch: the lease (``lease_seconds``, longer than any
  launch takes) expires and the next request with the key takes the row over and launches.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import time
import uuid
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from anyio import to_thread
from pydantic import BaseModel, ConfigDict
from sqlalchemy.exc import IntegrityError

from dp_sensors.events.sql import as_utc, create_sql_engine, create_tables
from dp_sensors.webhook.bodies import Refused

Launcher = Callable[[str, dict[str, Any], dict[str, str]], str]
"""``launcher(flow_id, params, tags) -> run_id``: launches one run (e.g. GraphQL ``launchRun``)."""

IDEMPOTENCY_TAG = "dp/idempotency_key"
#: Dagster's run tag naming the partition a run materialises; a launch that names a partition
#: hands it to the launcher under this tag (``dp_sensors.launch.GraphQLLauncher``).
PARTITION_TAG = "dagster/partition"
MAX_PARTITION_KEY = 255

metadata = sa.MetaData()

launches_table = sa.Table(
    "dp_launches",
    metadata,
    sa.Column("idempotency_key", sa.String(255), nullable=False),
    sa.Column("flow_id", sa.String(64), nullable=False),
    sa.Column("request_hash", sa.String(64), nullable=False),
    sa.Column("run_id", sa.String(64), nullable=True),
    sa.Column("owner", sa.String(32), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("lease_expires_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("launched_at", sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint("flow_id", "idempotency_key", name="pk_dp_launches_flow_key"),
)
_GLOBAL_KEYS_TABLE = "dp_launches_global_keys"


class LaunchRejected(Exception):
    """Raised by a launcher when the run was definitely not created (e.g. invalid run config)."""


class LaunchFailed(Exception):
    """The launcher failed; the key was released so the same request may be retried."""


class IdempotencyConflict(Exception):
    """The key was used before with a different flow or body."""


class LaunchInProgress(Exception):
    """Another request with the key is still launching; retry shortly with the same key."""


#: What :func:`launch_once` raises for the caller to answer (see :func:`launch_refusal`).
LAUNCH_ERRORS = (IdempotencyConflict, LaunchRejected, LaunchInProgress, LaunchFailed)


def launch_refusal(exc: Exception, flow_id: str) -> Refused:
    """The HTTP answer to one of ``LAUNCH_ERRORS``, the same for a launch and an invoke."""
    if isinstance(exc, IdempotencyConflict):
        return Refused(409, str(exc))
    if isinstance(exc, LaunchRejected):
        return Refused(422, f"flow {flow_id!r} refused the launch: {exc}")
    if isinstance(exc, LaunchInProgress):
        return Refused(503, str(exc))  # Refused adds Retry-After to a 503
    logging.getLogger("dp_sensors.webhook").warning("%s", exc, exc_info=exc.__cause__)
    return Refused(502, f"{exc}; nothing was kept for this key, retry with the same key")


class LaunchRecord(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    idempotency_key: str
    flow_id: str
    request_hash: str
    run_id: str | None
    owner: str
    created_at: datetime
    lease_expires_at: datetime
    launched_at: datetime | None


class Reservation(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    won: bool
    existing: LaunchRecord | None


class LaunchOutcome(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    run_id: str
    flow_id: str
    idempotency_key: str
    replayed: bool


def request_hash(flow_id: str, params: Mapping[str, Any], partition: str | None = None) -> str:
    """Hash of what was asked, so a key reused for another request is detected (a launch
    without a partition hashes as it did before partitions could be named)."""
    asked: dict[str, Any] = {"flow_id": flow_id, "params": params}
    if partition is not None:
        asked["partition"] = partition
    canonical = json.dumps(asked, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def body_partition(body: Mapping[str, Any], flow_id: str) -> str | None:
    """The ``partition`` a launch body names, or None. Only its shape is checked here; whether the
    flow has that partition is Dagster's to say, as for ``dp launch --partition`` (the launcher
    refuses a flow without partitions or a key it does not have: 422, nothing launched)."""
    raw = body.get("partition")
    if raw is None:
        return None
    if (
        not isinstance(raw, str)
        or not raw
        or len(raw) > MAX_PARTITION_KEY
        or any(ch < " " or ch == "\x7f" for ch in raw)
    ):
        raise Refused(
            422,
            f"'partition' for flow {flow_id!r} must be one partition key: a string of 1 to "
            f"{MAX_PARTITION_KEY} characters without control characters",
        )
    return raw


def launch_tags(trigger: str, partition: str | None) -> dict[str, str]:
    """The run tags of a receiver's launch: its trigger, and the partition when one is named."""
    return {"dp/trigger": trigger} if partition is None else {"dp/trigger": trigger, PARTITION_TAG: partition}


class LaunchLedger:
    """The ``dp_launches`` table; each method is one short transaction that writes first."""

    def __init__(self, url: str | sa.Engine, *, lease_seconds: float = 300.0) -> None:
        if isinstance(url, sa.Engine):
            self._engine, self._owns_engine = url, False
        else:
            self._engine, self._owns_engine = create_sql_engine(url), True
        self.lease_seconds = lease_seconds

    def ensure_schema(self) -> None:
        """Create the table; a table of the old layout (one key namespace) is migrated."""
        old_layout = self._has_global_keys()
        if old_layout:
            try:
                with self._engine.begin() as conn:
                    conn.execute(sa.text(f"ALTER TABLE dp_launches RENAME TO {_GLOBAL_KEYS_TABLE}"))
            except sa.exc.DBAPIError:
                # Another receiver starting at the same time renamed it first and migrates it.
                old_layout = False
        create_tables(self._engine, metadata)
        if old_layout:
            old = sa.Table(_GLOBAL_KEYS_TABLE, sa.MetaData(), autoload_with=self._engine)
            columns = [column.name for column in launches_table.columns]
            with self._engine.begin() as conn:
                conn.execute(
                    launches_table.insert().from_select(columns, sa.select(*[old.c[name] for name in columns]))
                )
                conn.execute(sa.text(f"DROP TABLE {_GLOBAL_KEYS_TABLE}"))

    def _has_global_keys(self) -> bool:
        inspector = sa.inspect(self._engine)
        if not inspector.has_table(launches_table.name):
            return False
        primary = inspector.get_pk_constraint(launches_table.name)["constrained_columns"]
        return list(primary) == ["idempotency_key"]

    def close(self) -> None:
        if self._owns_engine:
            self._engine.dispose()

    def _lease(self) -> tuple[datetime, datetime]:
        now = datetime.now(UTC)
        return now, now + timedelta(seconds=self.lease_seconds)

    @staticmethod
    def _row(key: str, flow_id: str) -> sa.ColumnElement[bool]:
        table = launches_table
        return sa.and_(table.c.flow_id == flow_id, table.c.idempotency_key == key)

    def reserve(self, key: str, flow_id: str, hashed: str, owner: str) -> Reservation:
        """Insert the flow's key for ``owner``, or report the record that holds it.

        ``won=False, existing=None`` means the record vanished in between (its launch failed and
        was released); the caller then simply tries again.
        """
        now, expires = self._lease()
        try:
            with self._engine.begin() as conn:
                conn.execute(
                    launches_table.insert().values(
                        idempotency_key=key,
                        flow_id=flow_id,
                        request_hash=hashed,
                        run_id=None,
                        owner=owner,
                        created_at=now,
                        lease_expires_at=expires,
                        launched_at=None,
                    )
                )
        except IntegrityError:
            return Reservation(won=False, existing=self.get(key, flow_id))
        return Reservation(won=True, existing=None)

    def get(self, key: str, flow_id: str) -> LaunchRecord | None:
        with self._engine.connect() as conn:
            row = conn.execute(sa.select(launches_table).where(self._row(key, flow_id))).one_or_none()
        if row is None:
            return None
        values = dict(row._mapping)
        for name in ("created_at", "lease_expires_at", "launched_at"):
            if values[name] is not None:
                values[name] = as_utc(values[name])
        return LaunchRecord(**values)

    def take_over(self, key: str, flow_id: str, owner: str) -> bool:
        """Claim a row whose owner's lease expired without a run id (the owner died)."""
        now, expires = self._lease()
        table = launches_table
        with self._engine.begin() as conn:
            result = conn.execute(
                table.update()
                .where(
                    self._row(key, flow_id),
                    table.c.run_id.is_(None),
                    table.c.lease_expires_at < now,
                )
                .values(owner=owner, lease_expires_at=expires)
            )
        return result.rowcount == 1

    def complete(self, key: str, flow_id: str, owner: str, run_id: str) -> bool:
        """Store the run id; ``False`` if ``owner`` lost its lease meanwhile."""
        table = launches_table
        with self._engine.begin() as conn:
            result = conn.execute(
                table.update()
                .where(self._row(key, flow_id), table.c.owner == owner, table.c.run_id.is_(None))
                .values(run_id=run_id, launched_at=datetime.now(UTC))
            )
        return result.rowcount == 1

    def release(self, key: str, flow_id: str, owner: str) -> None:
        """Forget a reservation whose launch failed, so the key can be used again."""
        table = launches_table
        with self._engine.begin() as conn:
            conn.execute(
                table.delete().where(self._row(key, flow_id), table.c.owner == owner, table.c.run_id.is_(None))
            )


async def launch_once(
    ledger: LaunchLedger,
    launcher: Launcher,
    *,
    key: str,
    flow_id: str,
    params: dict[str, Any],
    hashed: str,
    tags: Mapping[str, str] | None = None,
    wait_seconds: float = 60.0,
    poll_seconds: float = 0.05,
    tag_key: bool = True,
) -> LaunchOutcome:
    """Launch ``flow_id`` once for ``key``; repeats (also concurrent ones) get the same run id.

    ``tag_key``: tag the run with the key, so that a launch retried after a lost answer finds
    the run an earlier attempt made (the launcher looks for it first). Off for a key no one can
    send again (an invoke's own, made for a call without one): nothing to look for.

    Database calls and the launcher run in worker threads; waiting is an async sleep, so many
    waiting requests cost no threads.
    """
    run_tags = {**(tags or {}), IDEMPOTENCY_TAG: key} if tag_key else dict(tags or {})
    deadline = time.monotonic() + wait_seconds
    delay = poll_seconds
    while True:
        owner = uuid.uuid4().hex
        reservation = await to_thread.run_sync(ledger.reserve, key, flow_id, hashed, owner)
        if reservation.won:
            return await _launch_as_owner(ledger, launcher, key, flow_id, params, run_tags, owner)
        existing = reservation.existing
        if existing is not None:
            if existing.request_hash != hashed:
                raise IdempotencyConflict(
                    f"Idempotency-Key {key!r} was already used for flow {flow_id!r} "
                    "with a different body; use a new key for a different request"
                )
            if existing.run_id is not None:
                return LaunchOutcome(run_id=existing.run_id, flow_id=flow_id, idempotency_key=key, replayed=True)
            if existing.lease_expires_at < datetime.now(UTC) and await to_thread.run_sync(
                ledger.take_over, key, flow_id, owner
            ):
                return await _launch_as_owner(ledger, launcher, key, flow_id, params, run_tags, owner)
        if time.monotonic() >= deadline:
            raise LaunchInProgress(
                f"the launch of flow {flow_id!r} with Idempotency-Key {key!r} is still in "
                "progress; repeat the request with the same key to get its run id"
            )
        await asyncio.sleep(delay)
        delay = min(delay * 2, 0.5)


async def _launch_as_owner(
    ledger: LaunchLedger,
    launcher: Launcher,
    key: str,
    flow_id: str,
    params: dict[str, Any],
    tags: dict[str, str],
    owner: str,
) -> LaunchOutcome:
    try:
        run_id = await to_thread.run_sync(launcher, flow_id, params, dict(tags))
    except LaunchRejected:
        await to_thread.run_sync(ledger.release, key, flow_id, owner)
        raise
    except Exception as exc:
        await to_thread.run_sync(ledger.release, key, flow_id, owner)
        raise LaunchFailed(f"launching flow {flow_id!r} failed: {exc}") from exc
    if not isinstance(run_id, str) or not run_id:
        await to_thread.run_sync(ledger.release, key, flow_id, owner)
        raise LaunchFailed(f"the launcher returned {run_id!r} for flow {flow_id!r}, not a run id")
    if not await to_thread.run_sync(ledger.complete, key, flow_id, owner, run_id):
        raise LaunchFailed(
            f"the launch of flow {flow_id!r} (run {run_id}) outlived its lease of "
            f"{ledger.lease_seconds:.0f}s and another request took Idempotency-Key {key!r} over; "
            "raise lease_seconds above the longest launch"
        )
    return LaunchOutcome(run_id=run_id, flow_id=flow_id, idempotency_key=key, replayed=False)
