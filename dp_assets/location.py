"""Assembling the code location: import specs, compile every published flow, apply policy once.

One broken flow never stops the others: each flow compiles on its own, and what failed is
reported in the load log, by ``dp validate``, and in the UI as the ``dp_platform/flow_load_report``
asset whose description lists every problem.
"""

import logging
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dagster as dg
from dagster import AssetExecutionContext

from dp_assets.catalog import default_catalog
from dp_assets.catalog.base import Catalog
from dp_assets.compiled_flows import compiled_flows, gc_paused
from dp_assets.compiler.checks import freshness_sensor
from dp_assets.compiler.executors import FlowExecutors
from dp_assets.compiler.factory import CompiledFlow
from dp_assets.compiler.translator import TABLE_FORMAT, FlowTranslator, output_format
from dp_assets.default_resources import shared_default_resources
from dp_assets.definition_names import DefinitionNames
from dp_assets.loading import LoadScope, pin_versions
from dp_assets.publishing import ImportReport, import_folder
from dp_assets.spec.cross_flow import FlowRead, cross_flow_problems
from dp_resources.store import FlowNotFound, FlowStore
from dp_settings import PlatformSettings, current, using

log = logging.getLogger("dp.location")
REPORT_KEY = dg.AssetKey(["dp_platform", "flow_load_report"])
#: The sensor that evaluates every flow's freshness checks.
FRESHNESS_SENSOR = "dp_freshness_sensor"


@dataclass
class LoadReport:
    flows: list[str] = field(default_factory=list)
    problems: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0
    #: flow -> the spec file it was imported from (flows without one were published another way)
    sources: dict[str, str] = field(default_factory=dict)
    #: flow -> a file change the store did not take, and what to do (``publishing.import_folder``)
    conflicts: dict[str, str] = field(default_factory=dict)

    #: A problem's text is cut here: it lands in an asset description and every repository
    #: snapshot, and a hostile spec's error can quote megabytes of it (an unknown type name).
    MAX_PROBLEM_CHARS = 4000
    #: The flow -> file table is left out of the description of a larger location.
    MAX_SOURCE_ROWS = 200

    def add_problem(self, where: str, text: str) -> None:
        if len(text) > self.MAX_PROBLEM_CHARS:
            text = text[: self.MAX_PROBLEM_CHARS] + f"... ({len(text):,} characters in all)"
        self.problems[where] = text

    def markdown(self) -> str:
        if not self.problems:
            lines = [f"All {len(self.flows)} published flows loaded."]
        else:
            lines = [f"{len(self.flows)} flows loaded; {len(self.problems)} problem(s):", ""]
            for where, text in sorted(self.problems.items()):
                lines.append(f"- **{where}**")
                lines += [f"    {line}" for line in text.splitlines()]
        if self.conflicts:
            lines += ["", f"{len(self.conflicts)} spec file change(s) not published:", ""]
            lines += [f"- **flow {flow}**: {text}" for flow, text in sorted(self.conflicts.items())]
        from_files = sum(flow in self.sources for flow in self.flows)
        lines += [
            "",
            f"{from_files} flow(s) from spec files, {len(self.flows) - from_files} published "
            "with `dp publish` or the API (`dp list` shows each flow's source).",
        ]
        if 0 < len(self.flows) <= self.MAX_SOURCE_ROWS:
            lines += ["", "| flow | from |", "|---|---|"]
            lines += [f"| {flow} | {self.sources.get(flow, 'the store')} |" for flow in sorted(self.flows)]
        return "\n".join(lines)


def build_code_location(
    store: FlowStore | None = None,
    flows_folder: "Path | str | None" = "env",
    catalog: Catalog | None = None,
    translator: FlowTranslator | None = None,
    resources: dict[str, object] | None = None,
    scope: LoadScope | None = None,
    settings: PlatformSettings | None = None,
) -> dg.Definitions:
    """The whole location (a code server), or only the flows ``scope`` names (a run or step
    worker, see ``dp_assets.loading``); a scope the store cannot satisfy loads everything.

    ``settings`` are the deployment's (default: the environment's, :func:`dp_settings.current`,
    read again when a ``DP_*`` variable changed); the compiler's pieces that need them
    (executors, sensor intervals) see them through :func:`dp_settings.using`. Settings and
    resources are kept between loads of this process: a warm run worker reconstructing its job
    takes its template's instead of building them again (about 0.1 s of each run).
    """
    settings = settings or current()
    with using(settings):
        catalog = catalog or default_catalog()
        store = store or FlowStore(settings.store_url())
        resources = resources if resources is not None else shared_default_resources(settings)
        if scope is not None and not scope.is_whole:
            scoped = _build_scoped(scope, store, catalog, translator, resources)
            if scoped is not None:
                return scoped
        if flows_folder == "env":
            flows_folder = settings.flows_folder()
        return _build_whole(store, flows_folder, catalog, translator, resources)


def _build_whole(
    store: FlowStore,
    flows_folder: "Path | str | None",
    catalog: Catalog,
    translator: FlowTranslator | None,
    resources: dict[str, object],
) -> dg.Definitions:
    started = time.perf_counter()
    imported = import_flows_folder(store, flows_folder, catalog)
    return compile_published(store, imported, catalog, translator, resources, started=started)


def import_flows_folder(store: FlowStore, flows_folder: "Path | str | None", catalog: Catalog) -> ImportReport:
    """Bring the store's schema up to date and publish what changed in the flows folder
    (``publishing.import_folder``); a folder that cannot be imported is one problem of the report."""
    store.upgrade()
    folder = flows_folder
    if folder is None or not Path(folder).is_dir():
        return ImportReport()
    try:
        return import_folder(store, Path(folder), catalog)
    except Exception as exc:  # noqa: BLE001 - the flows already stored still load
        log.error("flows folder %s was not imported: %s", folder, exc)
        return ImportReport(problems={f"flows folder {folder}": f"not imported: {type(exc).__name__}: {exc}"})


def compile_published(
    store: FlowStore,
    imported: ImportReport,
    catalog: Catalog,
    translator: FlowTranslator | None,
    resources: dict[str, object],
    *,
    versions: dict[str, str] | None = None,
    started: float | None = None,
) -> dg.Definitions:
    """Every published flow compiled, with the platform's report asset, retention schedule,
    resources and executor. ``versions``: compile exactly these flows at these versions (the
    state of ``dp_assets.components.FlowStoreComponent``) instead of what is published now."""
    started = time.perf_counter() if started is None else started
    report = LoadReport()
    for where, text in imported.problems.items():
        report.add_problem(where, text)
    report.conflicts = dict(imported.conflicts)
    executors = FlowExecutors()
    flow_defs = []
    compiled_versions: dict[str, str] = {}
    retention: dict[str, dict] = {}
    names = DefinitionNames(FRESHNESS_SENSOR)
    specs = _published_specs(store, report) if versions is None else _pinned_specs(store, versions, report)
    loaded: dict[str, tuple[str, CompiledFlow, dg.Definitions]] = {}
    with gc_paused(lambda: len(loaded)):
        for flow_id, version, spec in specs:
            try:
                compiled = compiled_flows().get(flow_id, version, spec, catalog, translator, executors)
                flow_def = compiled.definitions(resources, executors.default, freshness_sensor=False)
                loaded[flow_id] = (version, compiled, flow_def)
            except Exception as exc:  # noqa: BLE001 - one flow's failure must not stop the others
                _report_broken(report, imported, flow_id, version, exc)
    _leave_out(loaded, _cross_flow_problems(loaded, catalog), report, imported)
    # Names are claimed by the flows that passed the cross-flow check (one left out for its reads
    # must not take a name from a later flow); a flow that reads one left out here goes too.
    clashes: dict[str, Exception] = {}
    for flow_id, (_, _, flow_def) in loaded.items():
        try:
            names.claim(flow_id, flow_def)
        except Exception as exc:  # noqa: BLE001 - one flow's failure must not stop the others
            clashes[flow_id] = exc
    if clashes:
        _leave_out(loaded, clashes, report, imported)
        _leave_out(loaded, _cross_flow_problems(loaded, catalog), report, imported)
    for flow_id, (version, compiled, flow_def) in loaded.items():
        flow_defs.append(flow_def)
        report.flows.append(flow_id)
        compiled_versions[flow_id] = version
        policy = compiled.validated.flow.retention
        if policy and (policy.keep_last or policy.older_than_days):
            retention[flow_id] = policy.model_dump()
    report.sources = {flow: imported.sources[flow] for flow in report.flows if flow in imported.sources}
    report.seconds = time.perf_counter() - started
    log.info("compiled %d flows in %.2fs; %d problem(s)", len(report.flows), report.seconds, len(report.problems))
    schedules = []
    if retention:  # one daily schedule prunes every flow's run outputs by its `retention:` block
        from dp_io.retention import build_retention_schedule

        schedules.append(build_retention_schedule(retention))
    freshness = [check for _, compiled, _ in loaded.values() for check in compiled.freshness_checks]
    platform = dg.Definitions(
        assets=[_load_report_asset(report)],
        schedules=schedules,
        # one sensor evaluates the freshness checks of every flow (a sensor per flow cost each
        # flow's load a definition and a snapshot)
        sensors=[freshness_sensor(freshness, FRESHNESS_SENSOR)] if freshness else None,
        resources=resources,
        executor=executors.default,
    )
    pin_versions(compiled_versions)
    return dg.Definitions.merge(*flow_defs, platform)


def _cross_flow_problems(
    loaded: dict[str, tuple[str, CompiledFlow, dg.Definitions]], catalog: Catalog
) -> dict[str, str]:
    """What fails in the flows' reads of other flows' nodes (``FlowInput``; spec.cross_flow)."""
    reads: dict[str, list[FlowRead]] = {}
    for flow_id, (_, compiled, _) in loaded.items():
        for node in compiled.validated.flow.nodes:  # type: ignore[attr-defined]
            read = catalog[node.type].reads_flows
            if read is not None:
                reads.setdefault(flow_id, []).extend(FlowRead(node.id, f, n) for f, n in read(node.params))
    if not reads:  # the usual location: no flow reads another, nothing more to compute at load
        return {}
    stored: dict[str, frozenset[str]] = {}
    for flow_id, (_, compiled, _) in loaded.items():
        flow = compiled.validated.flow
        # a node kept in a table is read with TableReader: FlowInput reads the run-scoped files
        in_tables = {node.id for node in flow.nodes if output_format(flow, node) == TABLE_FORMAT}  # type: ignore[attr-defined]
        outputs = {out for step in compiled.steps for out in step.node_keys_by_output_name}
        stored[flow_id] = frozenset(outputs - in_tables)
    return cross_flow_problems(stored, reads)


def _leave_out(
    loaded: dict[str, tuple[str, CompiledFlow, dg.Definitions]],
    problems: Mapping[str, str | Exception],
    report: LoadReport,
    imported: ImportReport,
) -> None:
    """Take the flows of ``problems`` out of ``loaded``, reporting each one's problem."""
    for flow_id, problem in problems.items():
        version = loaded.pop(flow_id)[0]
        _report_broken(report, imported, flow_id, version, ValueError(problem) if isinstance(problem, str) else problem)


def published_versions(store: FlowStore) -> dict[str, str]:
    """flow -> published version, as one query (the state of the flow store component)."""
    return {
        info.id: info.published_version
        for info in store.list_flows()
        if info.published_version and info.deleted_at is None
    }


def _report_broken(
    report: LoadReport,
    imported: ImportReport,
    flow_id: str,
    version: str,
    exc: Exception,
) -> None:
    """A flow that failed to compile; when its spec file is gone, the full error is logged once
    (the load that finds the file gone) and later loads keep one line saying how to retire it."""
    where = f"flow {flow_id} (version {version})"
    gone = imported.gone.get(flow_id)
    if gone is None:
        report.add_problem(where, f"{type(exc).__name__}: {exc}")
        log.error("flow '%s' version %s was left out: %s", flow_id, version, exc)
        return
    retire = (
        f"its spec file {gone} was removed, but the flow is still published in the store: "
        f"`dp delete {flow_id}` retires it, `dp unpublish {flow_id}` keeps it stored but not compiled"
    )
    if flow_id in imported.newly_gone:
        report.add_problem(where, f"{type(exc).__name__}: {exc}\n{retire}")
        log.error("flow '%s' version %s was left out: %s; %s", flow_id, version, exc, retire)
    else:
        report.add_problem(where, f"does not compile; {retire}")
        log.info("flow '%s' (spec file removed) does not compile; `dp delete %s` retires it", flow_id, flow_id)


def _published_specs(store: FlowStore, report: LoadReport) -> Iterator[tuple[str, str, dict[str, Any]]]:
    """Every published ``(flow id, version, spec)``; should the one query fail (a stored spec
    the database driver cannot decode, say), each flow is read on its own and the ones that
    cannot be read are reported, so one bad row never hides the others."""
    try:
        rows = store.published_specs()
    except Exception as exc:  # noqa: BLE001
        log.error("reading the published flows at once failed (%s); reading them one by one", exc)
    else:
        yield from rows
        return
    for info in store.list_flows():
        if not info.published_version:
            continue
        try:
            version, spec = store.get(info.id, info.published_version)
        except Exception as exc:  # noqa: BLE001 - one unreadable row is that flow's problem
            report.add_problem(
                f"flow {info.id} (version {info.published_version})",
                f"cannot be read from the store: {type(exc).__name__}: {exc}",
            )
            log.error("flow '%s' could not be read from the store: %s", info.id, exc)
            continue
        yield info.id, version, spec


def _build_scoped(
    scope: LoadScope,
    store: FlowStore,
    catalog: Catalog,
    translator: FlowTranslator | None,
    resources: dict[str, object],
) -> dg.Definitions | None:
    """Only the flows a worker's job needs, at the versions its run was planned with; ``None``
    when they are not all in the store (the job is not a flow's), so the caller loads everything."""
    executors = FlowExecutors()
    flow_defs = []
    read_store = False
    for flow_id in sorted(scope.flows or ()):
        pinned = scope.versions.get(flow_id)
        # A version is its content's hash: one this process compiled (a warm run worker forked
        # from a template that loaded the location) needs no store read at all.
        compiled = compiled_flows().cached(flow_id, pinned, catalog, translator, executors) if pinned else None
        if compiled is None:
            read_store = True
            try:
                version, spec = store.get(flow_id, pinned)
            except FlowNotFound:
                log.info("'%s' is not a stored flow; loading the whole location", flow_id)
                return None
            compiled = compiled_flows().get(flow_id, version, spec, catalog, translator, executors)
        # a worker runs the flow's job or a Materialize of its assets: no sensor is evaluated there
        flow_defs.append(compiled.definitions(resources, executors.default, freshness_sensor=False))
    if read_store:
        # A worker reads the store once: its pool would otherwise hold an idle connection for the
        # life of the process, one per running run and per Celery pool process (the connection
        # budget, F5 in docs/deploy.md). A later read opens a new one.
        store.engine.dispose()
    keys = {key for defs in flow_defs for asset in defs.assets or () for key in asset.keys}  # type: ignore[union-attr]
    if not scope.covers(keys):
        return None
    log.info("compiled %s for a worker (of the whole location)", ", ".join(sorted(scope.flows or ())))
    platform = dg.Definitions(resources=resources, executor=executors.default)
    return dg.Definitions.merge(*flow_defs, platform)


def _pinned_specs(
    store: FlowStore, versions: dict[str, str], report: LoadReport
) -> Iterator[tuple[str, str, dict[str, Any]]]:
    """``(flow id, version, spec)`` for exactly ``versions``: the published rows in one query, and
    a flow whose published version moved on since is read at the pinned version."""
    published = {flow_id: (version, spec) for flow_id, version, spec in _published_specs(store, report)}
    for flow_id, version in sorted(versions.items()):
        if flow_id in published and published[flow_id][0] == version:
            yield flow_id, version, published[flow_id][1]
            continue
        try:
            found, spec = store.get(flow_id, version)
        except Exception as exc:  # noqa: BLE001 - a flow deleted since the state was taken is that flow's problem
            report.add_problem(
                f"flow {flow_id} (version {version})",
                f"is in the flow store component's state but cannot be read from the store "
                f"({type(exc).__name__}: {exc}); `dg utils refresh-defs-state` takes the store's state again",
            )
            continue
        yield flow_id, found, spec


def _load_report_asset(report: LoadReport) -> dg.AssetsDefinition:
    @dg.asset(
        key=REPORT_KEY,
        group_name="dp_platform",
        description="Flows that failed to load, as of the last code location load.\n\n" + report.markdown(),
        metadata={"dp/problems": len(report.problems), "dp/flows": len(report.flows)},
    )
    def flow_load_report(context: AssetExecutionContext) -> dg.MaterializeResult:
        return dg.MaterializeResult(
            metadata={
                "problems": dg.MetadataValue.json(report.problems),
                "flows": len(report.flows),
                "report": dg.MetadataValue.md(report.markdown()),
            }
        )

    return flow_load_report
