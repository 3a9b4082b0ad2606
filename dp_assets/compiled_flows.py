"""The flows this process compiled, by flow, version and settings, and the GC pause of a build.

A code server builds its definitions twice on start, a Celery worker once per step and a warm run
worker inherits its template's: each compiles a flow version once (``CompiledFlows``), and a
restart restores validated versions from their records instead of validating again.
"""

import gc
from collections import OrderedDict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from dp_assets.catalog import default_catalog
from dp_assets.catalog.base import Catalog
from dp_assets.compiler.executors import FlowExecutors
from dp_assets.compiler.factory import CompiledFlow, compile_flow
from dp_assets.compiler.translator import FlowTranslator
from dp_assets.spec.validated_cache import ValidatedSpecs
from dp_assets.spec.validation import ValidatedFlow, validate_spec
from dp_settings import current

#: From this many flows on, what the build keeps is frozen out of the cyclic GC (see below).
FREEZE_FROM_FLOWS = 200


@contextmanager
def gc_paused(compiled: Callable[[], int]) -> Iterator[None]:
    """Pause the cyclic garbage collector while flows compile (``compiled()`` counts them).

    Compiling thousands of flows allocates millions of long-lived objects, and Python's cyclic
    GC walks all of them again and again while they are created, and again while Dagster
    serialises the repository. For a large location (``FREEZE_FROM_FLOWS``) the garbage is
    collected once at the end and what survives moves to the permanent generation
    (``gc.freeze``), which later collections skip: 1,000 flows load about 15% faster
    (docs/benchmarks.md). Frozen objects are still freed by reference counting; only a
    reference cycle among them that becomes garbage later stays (once per build, which a code
    server does twice at start)."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            if compiled() >= FREEZE_FROM_FLOWS:
                gc.collect()
                gc.freeze()
            gc.enable()


class CompiledFlows:
    """Compiled flows of this process, by flow, version and the ``DP_*`` environment.

    A code server calls the definitions function twice on start (Dagster resolves it once to
    find the repository, then reconstructs it), and a Celery worker once per step; a flow whose
    spec and settings did not change compiles once. Only the default catalog and translator are
    cached, since other ones may change without a version change."""

    def __init__(self, capacity: int = 20_000) -> None:
        self.capacity = capacity
        self._entries: OrderedDict[tuple, CompiledFlow] = OrderedDict()
        self._records: ValidatedSpecs | None = None
        self._records_home: Path | None = None

    def cached(
        self, flow_id: str, version: str, catalog: Catalog, translator: FlowTranslator | None, executors: FlowExecutors
    ) -> CompiledFlow | None:
        """The compiled flow of this exact version when this process holds it, else None."""
        if catalog is not default_catalog() or translator is not None:
            return None
        key = (flow_id, version, executors.settings_key)
        entry = self._entries.get(key)
        if entry is not None:
            self._entries.move_to_end(key)
        return entry

    def get(
        self,
        flow_id: str,
        version: str,
        spec: dict,
        catalog: Catalog,
        translator: FlowTranslator | None,
        executors: FlowExecutors,
    ) -> CompiledFlow:
        entry = self.cached(flow_id, version, catalog, translator, executors)
        if entry is not None:
            return entry
        cacheable = catalog is default_catalog() and translator is None
        validated = self._validated(flow_id, version, spec, catalog, cacheable)
        if validated.id != flow_id:  # a row written around publish_spec; its job would take another's name
            raise ValueError(f"stored as flow '{flow_id}', but the spec's id is '{validated.id}'")
        executor = executors.for_flow(validated)  # policies.executor, else DP_EXECUTOR
        entry = compile_flow(validated, catalog, translator, executor)
        if cacheable:
            self._entries[(flow_id, version, executors.settings_key)] = entry
            if len(self._entries) > self.capacity:
                self._entries.popitem(last=False)
        return entry

    def records(self) -> ValidatedSpecs:
        """The records of validated versions in DP_HOME (``spec.validated_cache``)."""
        home = current().dp_home()
        if self._records is None or self._records_home != home:
            self._records, self._records_home = ValidatedSpecs.for_home(home), home
        return self._records

    def _validated(self, flow_id: str, version: str, spec: dict, catalog: Catalog, cacheable: bool) -> ValidatedFlow:
        """A stored version, restored from its record when it passed before on this platform code
        (a restart skips validating it again), else validated and recorded."""
        if not cacheable:
            return validate_spec(spec, catalog, check_schemas=False, check_compiles=False)
        records = self.records()
        record = records.get(flow_id, version)
        restored = records.restore(record, spec, catalog) if record is not None else None
        if restored is not None:
            return restored
        return validate_spec(spec, catalog, check_schemas=False, check_compiles=False, cache=records)


_compiled = CompiledFlows()


def compiled_flows() -> CompiledFlows:
    """This process's compiled flows (the flow spec component compiles through them too)."""
    return _compiled
