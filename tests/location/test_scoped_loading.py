"""Run and step workers compile only the flows of the job they execute (``dp_assets.loading``).

Reconstruction goes through Dagster's own API, as a run worker, a multiprocess child or a
Celery step worker does: a ``ReconstructableJob`` for ``dp_assets.definitions:defs`` asks for
its repository. The code server's load pins the versions it compiled; a worker rebuilds those,
even after a newer version was published.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import dagster as dg
import pytest
import sqlalchemy as sa
from dagster._core.definitions.definitions_load_context import (
    DefinitionsLoadContext,
    DefinitionsLoadType,
)
from dagster._core.definitions.reconstruct import ReconstructableRepository
from dagster._core.types.loadable_target_origin import LoadableTargetOrigin
from dagster._grpc.server import LoadedRepositories

from dp_assets.catalog import default_catalog
from dp_assets.loading import VERSIONS_KEY, LoadScope
from dp_assets.publishing import publish_spec
from dp_resources import settings
from dp_resources.store import FlowStore

ROOT = Path(__file__).resolve().parents[2]


def _spec(flow_id: str, factor: float) -> dict:
    return {
        "id": flow_id,
        "nodes": [
            {"id": "source", "type": "StaticData", "params": {"rows": [{"k": 1, "v": 2.0}, {"k": 2, "v": 3.0}]}},
            {
                "id": "scaled",
                "type": "AddModifyColumn",
                "inputs": ["source"],
                "params": {"column": "w", "expression": f"v * {factor}"},
            },
        ],
    }


@pytest.fixture
def store(dp_home: Path, monkeypatch: pytest.MonkeyPatch) -> FlowStore:
    monkeypatch.setenv("DP_FLOWS_DIR", "")
    flow_store = FlowStore(settings.store_url())
    flow_store.upgrade()
    for flow_id in ("alpha", "beta", "gamma"):
        publish_spec(flow_store, _spec(flow_id, 2.0), default_catalog())
    return flow_store


@contextmanager
def _worker_process() -> Iterator[None]:
    """Dagster's load context is per process; each test starts as a fresh worker would."""
    with DefinitionsLoadContext.scoped(DefinitionsLoadContext(load_type=DefinitionsLoadType.RECONSTRUCTION)):
        yield


@pytest.fixture(autouse=True)
def fresh_worker() -> Iterator[None]:
    with _worker_process():
        yield


def _code_server_load() -> dg.RepositoryDefinition:
    """The location as a gRPC code server loads it (Dagster's own loader, initialization load)."""
    with DefinitionsLoadContext.scoped(DefinitionsLoadContext(load_type=DefinitionsLoadType.INITIALIZATION)):
        origin = LoadableTargetOrigin(
            module_name="dp_assets.definitions", attribute="defs", working_directory=str(ROOT)
        )
        loaded = LoadedRepositories(origin, None, ["dagster"], None)
        (repo,) = loaded.definitions_by_name.values()
        return repo


def _recon_repo() -> ReconstructableRepository:
    return ReconstructableRepository.for_module("dp_assets.definitions", "defs", working_directory=str(ROOT))


def _flow_jobs(repo: dg.RepositoryDefinition) -> set[str]:
    return {job.name for job in repo.get_all_jobs() if not job.name.startswith("__")}


def test_code_server_load_compiles_every_flow_and_pins_versions(store: FlowStore) -> None:
    repo = _code_server_load()
    assert _flow_jobs(repo) == {"alpha", "beta", "gamma"}
    metadata = repo.repository_load_data.reconstruction_metadata  # type: ignore[union-attr]
    pinned = json.loads(getattr(metadata[VERSIONS_KEY], "data", metadata[VERSIONS_KEY]))
    assert pinned == {flow: store.get(flow)[0] for flow in ("alpha", "beta", "gamma")}


def test_run_worker_compiles_only_its_flow(store: FlowStore) -> None:
    recon_job = _recon_repo().get_reconstructable_job("beta")
    job = recon_job.get_definition()
    assert job.name == "beta"
    assert _flow_jobs(recon_job.get_repository_definition()) == {"beta"}
    result = job.execute_in_process(instance=dg.DagsterInstance.ephemeral())
    assert result.success
    assert list(result.output_for_node("beta__step", "scaled")["w"]) == [4.0, 6.0]


def test_worker_rebuilds_the_version_the_run_was_planned_with(store: FlowStore) -> None:
    planned = _code_server_load()  # the code server's load pins today's versions
    old_version = store.get("beta")[0]
    publish_spec(store, _spec("beta", 10.0), default_catalog())  # published after the launch
    assert store.get("beta")[0] != old_version

    recon_job = _recon_repo().get_reconstructable_job("beta").with_repository_load_data(planned.repository_load_data)
    job = recon_job.get_definition()
    assert job.tags["dp/flow_version"] == old_version
    result = job.execute_in_process(instance=dg.DagsterInstance.ephemeral())
    assert list(result.output_for_node("beta__step", "scaled")["w"]) == [4.0, 6.0]

    with _worker_process():  # a worker given no pinned versions rebuilds the published one
        latest = _recon_repo().get_reconstructable_job("beta").get_definition()
    assert latest.tags["dp/flow_version"] == store.get("beta")[0]


def test_asset_materialisation_from_the_graph_compiles_the_selected_flows(store: FlowStore) -> None:
    selection = [dg.AssetKey(["alpha", "scaled"]), dg.AssetKey(["gamma", "source"])]
    recon_job = _recon_repo().get_reconstructable_job("__ASSET_JOB").get_subset(asset_selection=frozenset(selection))
    job = recon_job.get_definition()
    assert _flow_jobs(recon_job.get_repository_definition()) == {"alpha", "gamma"}
    assert set(job.asset_layer.executable_asset_keys) >= set(selection)


def test_jobs_that_are_not_flows_load_the_whole_location(store: FlowStore) -> None:
    recon_job = (
        _recon_repo()
        .get_reconstructable_job("__ASSET_JOB")
        .get_subset(asset_selection=frozenset([dg.AssetKey(["dp_platform", "flow_load_report"])]))
    )
    recon_job.get_definition()
    assert _flow_jobs(recon_job.get_repository_definition()) == {"alpha", "beta", "gamma"}


def test_scope_of_a_job() -> None:
    assert LoadScope.for_job("beta", None).flows == {"beta"}
    assert LoadScope.for_job("__ASSET_JOB", None).is_whole
    scope = LoadScope.for_job("__ASSET_JOB", [dg.AssetKey(["a", "x"]), dg.AssetKey(["b", "y"])])
    assert scope.flows == {"a", "b"}
    assert not scope.covers({dg.AssetKey(["a", "x"])})
    assert scope.covers({dg.AssetKey(["a", "x"]), dg.AssetKey(["b", "y"]), dg.AssetKey(["b", "z"])})
    assert LoadScope.current().is_whole  # a plain import is not a worker


def test_a_worker_of_the_process_that_loaded_the_location_reads_no_store(store: FlowStore) -> None:
    """A warm run worker is forked from a template that loaded the whole location: the versions
    its run was planned with are compiled already (a version is its content's hash), so it
    starts without a store read, even with the store gone."""
    planned = _code_server_load()
    database = Path(str(store.engine.url.database))
    store.engine.dispose()
    database.rename(database.with_suffix(".away"))
    try:
        recon_job = (
            _recon_repo().get_reconstructable_job("beta").with_repository_load_data(planned.repository_load_data)
        )
        job = recon_job.get_definition()
        result = job.execute_in_process(instance=dg.DagsterInstance.ephemeral())
    finally:
        database.with_suffix(".away").rename(database)
    assert job.tags["dp/flow_version"] == store.get("beta")[0]
    assert list(result.output_for_node("beta__step", "scaled")["w"]) == [4.0, 6.0]


def test_a_worker_that_read_the_store_keeps_no_connection_of_it(store: FlowStore) -> None:
    """A run or step worker reads the store once; an idle connection left in the store's pool
    would hold one connection per running run on PostgreSQL (F5, the connection budget)."""
    publish_spec(store, _spec("beta", 3.0), default_catalog())  # a version no process compiled
    store.engine.dispose()
    checkouts: list[object] = []
    sa.event.listen(store.engine, "checkout", lambda *_args: checkouts.append(1))
    with _worker_process():
        job = _recon_repo().get_reconstructable_job("beta").get_definition()
    assert checkouts  # it did read the store
    assert store.engine.pool.checkedin() == 0  # type: ignore[attr-defined]
    assert job.tags["dp/flow_version"] == store.get("beta")[0]
