"""The test harness inside a flow run: fixture and stand-in node types, and a recording catalog.

A flow under test is compiled with a catalog built here: every node type of the real catalog,
its ``run`` wrapped to record the node's value for the assertions, plus two test-only types that
replace nodes in the rewritten spec (``dp_assets.flowtest.rewrite``):

- ``TestFixture``: gives the case's fixture (rows, a file, a value, or an error) instead of running;
- ``TestStandIn``: a side-effecting sink that passes its input through and records what it would
  have sent (a ``SendNotification`` stand-in renders the message).

Values are recorded in memory; a node with ``timeout_seconds`` runs in a forked child, whose
values come back through pickles in a spool folder.
"""

from __future__ import annotations

import functools
import os
import pickle
import tempfile
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pandas as pd
from pydantic import Field

from dp_assets.catalog.base import (
    SKIPPED,
    Catalog,
    InputSpec,
    NodeContext,
    NodeOutputs,
    NodeType,
    Params,
    whole,
)
from dp_assets.flowtest.model import Fixture

FIXTURE_TYPE = "TestFixture"
STAND_IN_TYPE = "TestStandIn"
ANY_INPUTS = InputSpec(names=(), variadic=True, min_count=0)


class FixtureFailure(RuntimeError):
    """Raised by a fixture that stands for a failing node (``error``, ``fail_times``, ``missing``)."""


@dataclass
class Sent:
    """What a stand-in would have sent."""

    node_type: str
    rows: int | None
    message: str | None = None
    subject: str | None = None


@dataclass
class Harness:
    """Fixtures of the current case and the values recorded while it runs (reset per case)."""

    fixtures: dict[str, Fixture] = field(default_factory=dict)
    loaded: dict[str, Any] = field(default_factory=dict)  # fixture key -> value (frames copied on use)
    top_level: frozenset[str] = frozenset()
    records: dict[str, dict[str, Any]] = field(default_factory=dict)  # node id -> output -> value
    sent: dict[str, Sent] = field(default_factory=dict)
    calls: dict[str, int] = field(default_factory=dict)
    pid: int = field(default_factory=os.getpid)
    spool: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="dp-flowtest-")))
    lock: threading.Lock = field(default_factory=threading.Lock)

    def reset(self, fixtures: Mapping[str, Fixture], loaded: Mapping[str, Any], top_level: frozenset[str]) -> None:
        self.fixtures, self.loaded, self.top_level = dict(fixtures), dict(loaded), top_level
        self.records, self.sent, self.calls = {}, {}, {}
        self.pid = os.getpid()
        for stale in self.spool.glob("*.pickle"):
            stale.unlink()

    # -- recording ---------------------------------------------------------------------------

    def record(self, node_id: str, node_type: NodeType, value: Any) -> None:
        """Keep a top-level node's outputs (sub-chain body nodes have dotted ids and are left out)."""
        if node_id not in self.top_level:
            return
        outputs = dict(value.values) if isinstance(value, NodeOutputs) else {node_type.outputs[0]: value}
        if os.getpid() != self.pid:  # a forked child (node timeout): hand the value to the parent
            self._spool(node_id, ("record", outputs))
            return
        with self.lock:
            self.records[node_id] = outputs

    def note_sent(self, node_id: str, sent: Sent) -> None:
        if os.getpid() != self.pid:
            self._spool(node_id, ("sent", sent))
            return
        with self.lock:
            self.sent[node_id] = sent

    def _spool(self, node_id: str, payload: Any) -> None:
        path = self.spool / f"{payload[0]}-{node_id}-{os.getpid()}.pickle"
        try:
            path.write_bytes(pickle.dumps(payload, protocol=pickle.HIGHEST_PROTOCOL))
        except Exception:  # noqa: BLE001 - a value that cannot be pickled is simply not recorded
            path.unlink(missing_ok=True)

    def collect(self) -> None:
        """Merge what forked children spooled."""
        for path in sorted(self.spool.glob("*.pickle")):
            kind, payload = pickle.loads(path.read_bytes())  # noqa: S301 - spooled by our own forked children
            node_id = path.stem.split("-", 1)[1].rsplit("-", 1)[0]
            if kind == "record":
                self.records[node_id] = payload
            else:
                self.sent[node_id] = payload
            path.unlink()

    # -- fixtures ----------------------------------------------------------------------------

    def fixture_value(self, key: str, inputs: Mapping[str, Any]) -> Any:
        fixture = self.fixtures[key]
        with self.lock:
            call = self.calls[key] = self.calls.get(key, 0) + 1
        if fixture.kind == "error":
            raise FixtureFailure(fixture.error)
        if call <= fixture.fail_times:
            raise FixtureFailure(fixture.error or f"fixture '{key}' fails call {call} of {fixture.fail_times}")
        value = self.loaded[key]
        if isinstance(value, pd.DataFrame):
            value = value.copy()
            if fixture.match:
                value = _matching(key, value, fixture.match, inputs)
            if fixture.missing == "error" and not len(value):
                raise FixtureFailure(fixture.error or f"fixture '{key}' has no rows for this input")
        return value


def _matching(key: str, rows: pd.DataFrame, columns: list[str], inputs: Mapping[str, Any]) -> pd.DataFrame:
    source = next(iter(inputs.values()), None)
    if not isinstance(source, pd.DataFrame):
        raise FixtureFailure(f"fixture '{key}' matches on {columns} but the node's input is not a table")
    missing = [c for c in columns if c not in rows.columns or c not in source.columns]
    if missing:
        raise FixtureFailure(f"fixture '{key}': match column(s) {missing} are not in both the fixture and the input")
    wanted = set(source[columns].astype(str).itertuples(index=False, name=None))
    keep = [tuple(row) in wanted for row in rows[columns].astype(str).itertuples(index=False, name=None)]
    return rows[keep].reset_index(drop=True)


# -- test-only node types --------------------------------------------------------------------


class FixtureParams(Params):
    key: str = Field(description="The fixture's node path in the case file.")


class StandInParams(Params):
    key: str
    type: str = Field(description="The node type it stands in for.")
    params: dict[str, Any] = Field(default_factory=dict, description="The original node's params.")


def _fixture_type(harness: Harness) -> NodeType:
    def fixture(ctx: NodeContext, params: FixtureParams, inputs: dict[str, Any]) -> Any:
        """A test fixture: the case's rows, file or value instead of the node's own work."""
        value = harness.fixture_value(params.key, inputs)
        ctx.add_metadata(**{"dp/test_fixture": params.key})
        return value

    return NodeType(FIXTURE_TYPE, FixtureParams, fixture, "test", inputs=ANY_INPUTS, kinds=frozenset({"test"}))


def _stand_in_type(harness: Harness, catalog: Catalog) -> NodeType:
    def stand_in(ctx: NodeContext, params: StandInParams, inputs: dict[str, Any]) -> Any:
        """A test stand-in for a side-effecting node: its input passes through, nothing is sent."""
        value = next(iter(inputs.values())) if len(inputs) == 1 else (dict(inputs) or None)
        original = catalog[params.type].params_model.model_validate(params.params)  # still checked
        sent = Sent(params.type, len(value) if isinstance(value, pd.DataFrame) else None)
        if params.type == "SendNotification" and isinstance(value, pd.DataFrame):
            from dp_assets.catalog.nodes.sinks_api import SendNotificationParams, template_values
            from dp_resources.notifications import safe_format

            assert isinstance(original, SendNotificationParams)  # the catalog's SendNotification
            values = template_values(ctx, value, original.preview_rows)
            sent.message = safe_format(original.message, values)
            sent.subject = safe_format(original.subject, values)
        harness.note_sent(params.key, sent)
        ctx.add_metadata(**{"dp/test_stand_in": params.type})
        ctx.log.info(f"{ctx.node_id}: stand-in for {params.type}; nothing sent")
        return value

    return NodeType(STAND_IN_TYPE, StandInParams, stand_in, "test", inputs=ANY_INPUTS, kinds=frozenset({"test"}))


def _recording(node_type: NodeType, harness: Harness) -> NodeType:
    original = node_type.run

    @functools.wraps(original)
    def run(ctx: NodeContext, params: Any, inputs: dict[str, Any]) -> Any:
        # A streamed source is read whole: the harness compares and hands on whole tables.
        value = whole(original(ctx, params, inputs))
        harness.record(ctx.node_id, node_type, value)
        return value

    return replace(node_type, run=run)


def test_catalog(base: Catalog, harness: Harness) -> Catalog:
    """``base`` with every ``run`` recording into ``harness``, plus the fixture and stand-in types."""
    extra = [_fixture_type(harness), _stand_in_type(harness, base)]
    return Catalog(_recording(node_type, harness) for node_type in [*base.values(), *extra])


def is_skipped(outputs: Mapping[str, Any] | None, output: str) -> bool:
    return outputs is None or outputs.get(output, SKIPPED) is SKIPPED


test_catalog.__test__ = False  # type: ignore[attr-defined]  # not a pytest test
