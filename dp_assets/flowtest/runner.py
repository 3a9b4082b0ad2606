"""Running a flow's test cases in process, on an ephemeral Dagster instance.

Per case: the published spec is rewritten (fixtures and stand-ins, ``rewrite.py``), compiled by
the platform's own compiler with the test catalog (``harness.py``), and materialised with
``dagster.materialize`` on an ephemeral instance, in process. Files written by the flow land in
a temporary data root, outputs stay in memory, and the values every node gave are checked
against the case's expectations (``expect.py``).
"""

from __future__ import annotations

import contextlib
import re
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self

import dagster as dg
import yaml
from pydantic import ValidationError

from dp_assets.catalog import default_catalog
from dp_assets.catalog.base import Catalog
from dp_assets.compiler.factory import build_flow_definitions
from dp_assets.flowtest.expect import check
from dp_assets.flowtest.harness import Harness, test_catalog
from dp_assets.flowtest.model import Fixture, TestCase, TestFile
from dp_assets.flowtest.rewrite import CaseError, rewrite_for_case
from dp_assets.spec.loading import SpecLoadError, load_yaml, read_spec_file
from dp_assets.spec.validation import FlowValidationError, ValidatedFlow, validate_spec

QUIET_LOGS = {"console": {"config": {"log_level": "CRITICAL"}}}


class TestFileError(ValueError):
    """A test file that cannot be read or does not fit the model; the message names file and field."""


TestFileError.__test__ = False  # type: ignore[attr-defined]


@dataclass
class CaseResult:
    flow_id: str
    case: str
    file: Path
    passed: bool
    problems: list[str] = field(default_factory=list)
    checks: int = 0
    seconds: float = 0.0
    stand_ins: list[str] = field(default_factory=list)
    run_id: str | None = None


def load_test_file(path: Path) -> TestFile:
    try:
        data = load_yaml(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise TestFileError(f"{path}: cannot read the test file: {exc}") from exc
    if not isinstance(data, Mapping):
        raise TestFileError(f"{path}: a test file is a mapping with `flow` and `cases`")
    data = dict(data)
    data.setdefault("flow", path.stem)
    try:
        return TestFile.model_validate(data)
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            where = ".".join(str(p) for p in err["loc"]) or "(top level)"
            unknown = err["type"] == "extra_forbidden"
            message = "unknown field; remove it or check its spelling" if unknown else err["msg"]
            lines.append(f"  - {where}: {message}")
        raise TestFileError(f"{path}: not a valid test file:\n" + "\n".join(lines)) from None


def load_fixture(fixture: Fixture, base: Path) -> Any:
    """The value a fixture gives (read once per case; frames are copied on every use)."""
    import pandas as pd

    if fixture.kind == "value":
        return fixture.value
    if fixture.kind == "error":
        return None
    if fixture.kind == "rows":
        frame = pd.DataFrame.from_records(fixture.rows) if fixture.rows else pd.DataFrame()
    else:
        path = (base / str(fixture.file)).resolve()
        kind = fixture.format or {".csv": "csv", ".parquet": "parquet", ".json": "json", ".jsonl": "jsonl"}.get(
            path.suffix.lower()
        )
        if kind is None:
            raise CaseError(f"fixture file {fixture.file}: unknown format; set `format`")
        if not path.is_file():
            raise CaseError(f"fixture file {fixture.file} does not exist (looked at {path})")
        if kind == "csv":
            frame = pd.read_csv(path, sep=fixture.sep)
        elif kind == "parquet":
            frame = pd.read_parquet(path)
        else:
            frame = pd.read_json(path, lines=kind == "jsonl", orient="records")
    for column in fixture.parse_dates or []:
        frame[column] = pd.to_datetime(frame[column])
    if fixture.dtype:
        frame = frame.astype(fixture.dtype)
    return frame


def _error_text(error: Any) -> str:
    """The node's own failure message (``NodeFailed`` names flow and node), else the deepest cause."""
    chain = []
    while error is not None:
        chain.append(error)
        error = error.cause
    chosen = next((e for e in chain if e.cls_name == "NodeFailed"), chain[-1])
    text = re.sub(r"^[\w.]+(Error|Exception|Failed|Timeout)\w*: ", "", chosen.message.strip())
    return text.splitlines()[0] if text else chosen.cls_name or "unknown error"


def failures_of(result: dg.ExecuteInProcessResult) -> list[str]:
    """The error text of every failed step of a run (with its causes)."""
    texts = []
    for event in result.all_events:
        if event.is_step_failure and event.step_failure_data and event.step_failure_data.error:
            texts.append(_error_text(event.step_failure_data.error))
    return texts


class FlowTestRunner:
    """Runs test cases; holds the test catalog and the resources shared by its cases.

    ``resources`` override the platform's defaults (a test may pass an ``HttpResource`` that
    allows loopback, or real database connections); ``files`` is always the case's own temporary
    data root.
    """

    def __init__(
        self,
        catalog: Catalog | None = None,
        resources: Mapping[str, Any] | None = None,
        flows_root: Path | None = None,
        instance: dg.DagsterInstance | None = None,
    ):
        self.base_catalog = catalog or default_catalog()
        self.harness = Harness()
        self.catalog = test_catalog(self.base_catalog, self.harness)
        self.flows_root = flows_root
        self._overrides = dict(resources or {})
        self._shared: dict[str, Any] | None = None
        # Cases share ``instance`` when one is given (the designer's previews: making an ephemeral
        # instance costs about a second, its storage's migrations); else each case gets its own.
        self._instance = instance

    def close(self) -> None:
        from dp_resources.sandbox import SandboxResource

        for resource in (self._shared or {}).values():
            if isinstance(resource, SandboxResource):
                resource.close()  # its fork server outlives a run otherwise

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- resources ---------------------------------------------------------------------------

    def _resources(self, data_dir: Path) -> dict[str, Any]:
        """The platform's resources (outputs in memory), the overrides, and the case's data root."""
        from dp_assets.default_resources import default_resources
        from dp_resources.files import FilesResource

        if self._shared is None:
            shared = default_resources()
            shared["io_manager"] = dg.InMemoryIOManager()
            shared["table_io"] = dg.InMemoryIOManager()  # storage.format: table, in memory too
            shared.update(self._overrides)
            self._shared = shared
        resources = dict(self._shared)
        read_roots = {"flows": str(self.flows_root)} if self.flows_root else {}
        if "files" not in self._overrides:
            resources["files"] = FilesResource(data_dir=str(data_dir), read_roots=read_roots)
        return resources

    # -- running -----------------------------------------------------------------------------

    def run_file(
        self,
        spec_path: Path,
        test_path: Path,
        *,
        cases: Iterable[str] | None = None,
        update_golden: bool = False,
        on_result: Callable[[CaseResult], None] | None = None,
    ) -> list[CaseResult]:
        """Every case of ``test_path`` (or those named in ``cases``) against the spec at ``spec_path``."""
        test_file = load_test_file(test_path)
        try:
            validated = validate_spec(read_spec_file(spec_path), self.base_catalog)
        except (SpecLoadError, FlowValidationError) as exc:
            raise TestFileError(f"{spec_path}: the flow itself is invalid, so no case can run:\n{exc}") from exc
        if validated.id != test_file.flow:
            raise TestFileError(f"{test_path}: tests flow '{test_file.flow}' but {spec_path} is flow '{validated.id}'")
        wanted = set(cases or [])
        results = []
        for case in test_file.cases:
            if wanted and case.name not in wanted:
                continue
            result = self.run_case(validated, case, test_path, update_golden=update_golden)
            if on_result:
                on_result(result)
            results.append(result)
        return results

    def run_case(
        self, validated: ValidatedFlow, case: TestCase, test_path: Path, *, update_golden: bool = False
    ) -> CaseResult:
        started = time.perf_counter()
        result = CaseResult(validated.id, case.name, test_path, passed=False)
        try:
            self._run(validated, case, test_path, update_golden, result)
        except (CaseError, FlowValidationError, dg.DagsterInvalidConfigError) as exc:
            result.problems.append(_config_message(exc))
        except Exception as exc:  # noqa: BLE001 - one broken case must not stop the others
            result.problems.append(f"the case could not run: {type(exc).__name__}: {exc}")
        result.passed = not result.problems
        result.seconds = time.perf_counter() - started
        return result

    def _run(
        self, validated: ValidatedFlow, case: TestCase, test_path: Path, update_golden: bool, result: CaseResult
    ) -> None:
        base = test_path.parent
        rewritten = rewrite_for_case(validated.raw, case, self.base_catalog)
        result.stand_ins = rewritten.stand_ins
        loaded = {key: load_fixture(fixture, base) for key, fixture in case.fixtures.items()}
        compiled = validate_spec(rewritten.spec, self.catalog, check_schemas=False)
        self.harness.reset(case.fixtures, loaded, rewritten.top_level)
        with tempfile.TemporaryDirectory(prefix="dp-flowtest-data-") as data_dir:
            run = self._materialize(compiled, case, Path(data_dir))
        self.harness.collect()
        result.run_id = run.run_id
        failures = failures_of(run)
        result.problems += _failure_problems(case, run.success, failures)
        for target, expectation in case.expect.items():
            node_id, _, output = target.partition(".")
            node_type = self.catalog[_node_type_name(compiled, node_id)]
            outputs = self.harness.records.get(node_id)
            result.checks += len(expectation.checks())
            result.problems += check(
                target,
                outputs,
                output or node_type.outputs[0],
                expectation,
                self.harness.sent.get(node_id),
                base,
                update_golden,
            )
        if case.fails:
            result.checks += 1

    def _materialize(self, compiled: ValidatedFlow, case: TestCase, data_dir: Path) -> dg.ExecuteInProcessResult:
        defs = build_flow_definitions(compiled, self.catalog, executor=dg.in_process_executor)
        # A compiled flow's assets are its steps, each a multi-asset.
        assets = [asset for asset in defs.assets or [] if isinstance(asset, dg.AssetsDefinition)]
        ops = {asset.node_def.name: {"config": {"params": dict(case.params)}} for asset in assets}
        partitions_def = assets[0].partitions_def
        partition = case.partition
        if partitions_def is not None and partition is None:
            if isinstance(partitions_def, dg.DynamicPartitionsDefinition):
                raise CaseError(f"flow '{compiled.id}' has dynamic partitions: give the case a 'partition:'")
            partition = partitions_def.get_first_partition_key()
        if partitions_def is None and partition is not None:
            raise CaseError(f"partition: flow '{compiled.id}' has no partitions")
        # A case's own instance is disposed when the case is done: its SQLite connections are
        # closed in the thread that made them, not whenever GC finds them.
        scope = contextlib.nullcontext(self._instance) if self._instance else dg.DagsterInstance.ephemeral()
        with scope as instance:
            if isinstance(partitions_def, dg.DynamicPartitionsDefinition) and partition is not None:
                instance.add_dynamic_partitions(compiled.id, [partition])  # as `dp partitions add` would
            return dg.materialize(
                assets,
                partition_key=partition,
                run_config={"ops": ops, "loggers": QUIET_LOGS},
                resources=self._resources(data_dir),
                instance=instance,
                raise_on_error=False,
                tags={"dp/flow": compiled.id, "dp/test_case": case.name},
            )


def _node_type_name(compiled: ValidatedFlow, node_id: str) -> str:
    for node in compiled.flow.nodes:  # type: ignore[attr-defined]
        if node.id == node_id:
            return node.type
    raise CaseError(f"expect: flow '{compiled.id}' has no node '{node_id}'")


def _failure_problems(case: TestCase, success: bool, failures: list[str]) -> list[str]:
    if case.fails is None:
        if success:
            return []
        return ["the run failed: " + ("; ".join(failures) or "no step failure recorded (see the logs)")]
    if success:
        return [
            "fails: the run succeeded, expected it to fail"
            + (f" at node '{case.fails.node}'" if case.fails.node else "")
        ]
    text = "\n".join(failures)
    problems = []
    if case.fails.node:
        node = case.fails.node.split(".", 1)[0]
        if f"node '{node}'" not in text:
            problems.append(f"fails: expected a failure at node '{case.fails.node}', got: {text or '(none)'}")
    if case.fails.error and not re.search(case.fails.error, text):
        problems.append(f"fails: no failure message matches /{case.fails.error}/; got: {text or '(none)'}")
    return problems


def _config_message(exc: Exception) -> str:
    if isinstance(exc, dg.DagsterInvalidConfigError):
        errors = "; ".join(e.message for e in exc.errors) or str(exc)
        return f"params do not fit the flow: {errors}"
    return str(exc)
