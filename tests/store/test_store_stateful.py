"""The flow store's API as a state machine (Hypothesis), over SQLite: generated specs published,
republished, rolled back, fetched by version prefix, and failed publishes, checked after every
step against a model of what the store promises:

- a flow's history is append-only: versions in the order they were first stored, never changed;
- the published (latest) version is the one last published, and ``get`` returns it;
- a failed publish (invalid spec, or a spec the store cannot write) writes nothing at all;
- a version prefix is text, never a pattern: ``%`` and ``_`` match only themselves.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import pytest
import sqlalchemy as sa
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from dp_assets.catalog import default_catalog
from dp_assets.publishing import publish_spec
from dp_assets.spec.validation import FlowValidationError
from dp_resources.store import FlowNotFound, FlowStore
from tests.fuzzing import fuzz_settings

CATALOG = default_catalog()
FLOW_IDS = st.sampled_from(["alpha", "beta", "gamma_1"])
# Text without control characters: the spec loader refuses those (a concern of tests/spec).
TEXT = st.text(st.characters(blacklist_categories=("Cc", "Cs")), max_size=12)
VALUES = st.one_of(st.integers(-(10**6), 10**6), TEXT, st.booleans(), st.none())
ROWS = st.lists(st.fixed_dictionaries({"x": VALUES}), min_size=1, max_size=3)
# Hex digits (versions are hashes) plus LIKE's wildcards and its escape character.
PREFIXES = st.one_of(
    st.sampled_from(["%", "_", "_%", "/%"]), st.text(alphabet="0123456789abcdef%_/\\", min_size=1, max_size=5)
)


def _spec(flow_id: str, rows: list, description: str | None) -> dict:
    spec = {"id": flow_id, "nodes": [{"id": "a", "type": "StaticData", "params": {"rows": rows}}]}
    if description is not None:
        spec["description"] = description
    return spec


def _broken(flow_id: str, how: str) -> dict:
    """A spec that validation refuses, in one of several ways."""
    node = {"id": "a", "type": "StaticData", "params": {"rows": [{"x": 1}]}}
    return {
        "unknown type": {"id": flow_id, "nodes": [{**node, "type": "NoSuchNode"}]},
        "duplicate node": {"id": flow_id, "nodes": [node, node]},
        "missing input": {
            "id": flow_id,
            "nodes": [node, {"id": "b", "type": "FilterRows", "inputs": ["nowhere"], "params": {"condition": "x > 1"}}],
        },
        "bad params": {"id": flow_id, "nodes": [{**node, "params": {"rows": "not a list"}}]},
        "no nodes": {"id": flow_id, "nodes": []},
    }[how]


class FlowStoreMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.folder = Path(tempfile.mkdtemp(prefix="dp-store-machine-"))
        self.store = FlowStore(f"sqlite:///{self.folder / 'store.db'}")
        self.store.upgrade()
        self.versions: dict[str, list[str]] = {}  # flow -> versions, first stored first
        self.specs: dict[tuple[str, str], dict] = {}
        self.published: dict[str, str] = {}

    def teardown(self) -> None:
        self.store.engine.dispose()
        shutil.rmtree(self.folder, ignore_errors=True)

    def _everything(self) -> tuple:
        flows = [(f.id, f.published_version, f.versions) for f in self.store.list_flows()]
        history = {f: [(h.version, h.published) for h in self.store.history(f)] for f, _, _ in flows}
        return flows, history, self.store.published_specs()

    @rule(flow=FLOW_IDS, rows=ROWS, description=st.none() | TEXT, publish=st.booleans())
    def publish_a_spec(self, flow: str, rows: list, description: str | None, publish: bool) -> None:
        validated, result = publish_spec(self.store, _spec(flow, rows, description), CATALOG, publish=publish)
        version = validated.version
        known = self.versions.setdefault(flow, [])
        assert result.created == (version not in known)
        assert result.published == (publish and self.published.get(flow) != version)
        if version not in known:
            known.append(version)
            self.specs[(flow, version)] = validated.raw
        if publish:
            self.published[flow] = version

    @rule(
        flow=FLOW_IDS,
        how=st.sampled_from(["unknown type", "duplicate node", "missing input", "bad params", "no nodes"]),
    )
    def publish_an_invalid_spec(self, flow: str, how: str) -> None:
        before = self._everything()
        with pytest.raises(FlowValidationError):
            publish_spec(self.store, _broken(flow, how), CATALOG)
        assert self._everything() == before

    @rule(flow=FLOW_IDS)
    def save_what_the_store_cannot_write(self, flow: str) -> None:
        """A failure inside the store's transaction (a value JSON cannot hold) leaves nothing:
        not the version, nor the flow or workspace rows written before it."""
        before = self._everything()
        with pytest.raises(sa.exc.StatementError, match="not JSON serializable"):
            self.store.save(flow, "f" * 64, {"id": flow, "nodes": {1, 2}}, workspace=f"ws_{flow}")
        assert self._everything() == before

    @rule(flow=FLOW_IDS, data=st.data())
    def roll_back(self, flow: str, data: st.DataObject) -> None:
        if not self.versions.get(flow):
            with pytest.raises(FlowNotFound):
                self.store.publish(flow, "0")
            return
        version = data.draw(st.sampled_from(self.versions[flow]))
        self.store.publish(flow, version)
        self.published[flow] = version

    @rule(flow=FLOW_IDS, prefix=PREFIXES)
    def get_by_prefix(self, flow: str, prefix: str) -> None:
        matches = [v for v in self.versions.get(flow, []) if v.startswith(prefix)]
        if len(matches) != 1:
            with pytest.raises(FlowNotFound):
                self.store.get(flow, prefix)
            return
        assert self.store.get(flow, prefix) == (matches[0], self.specs[(flow, matches[0])])

    @invariant()
    def history_is_append_only_and_latest_is_last_published(self) -> None:
        listed = {f.id: f for f in self.store.list_flows()}
        assert sorted(listed) == sorted(self.versions)
        for flow, versions in self.versions.items():
            history = self.store.history(flow)
            assert [h.version for h in history] == versions
            assert [h.published for h in history] == [v == self.published.get(flow) for v in versions]
            assert listed[flow].versions == len(versions)
            assert listed[flow].published_version == self.published.get(flow)
            if flow in self.published:
                version = self.published[flow]
                assert self.store.get(flow) == (version, self.specs[(flow, version)])
            else:
                with pytest.raises(FlowNotFound, match="no published version"):
                    self.store.get(flow)
        assert self.store.published_specs() == sorted(
            (flow, v, self.specs[(flow, v)]) for flow, v in self.published.items()
        )


FlowStoreMachine.TestCase.settings = fuzz_settings(30, stateful_step_count=15)
TestFlowStoreStateMachine = FlowStoreMachine.TestCase


def test_a_version_prefix_is_text_not_a_pattern(tmp_path: Path):
    """``dp show FLOW --version %`` named no version yet returned one (LIKE's wildcards)."""
    store = FlowStore(f"sqlite:///{tmp_path / 'store.db'}")
    store.upgrade()
    validated, _ = publish_spec(store, _spec("alpha", [{"x": 1}], None), CATALOG)
    for pattern in ("%", "_", "_" * len(validated.version), "%" + validated.version[-3:]):
        with pytest.raises(FlowNotFound, match="no version matching"):
            store.get("alpha", pattern)
    assert store.get("alpha", validated.version[:4])[0] == validated.version
