"""Dagster's private APIs stay behind one fence, and each one the fence uses is checked here.

Two places may use a private Dagster API (``dagster._...``, a private name of a Dagster package,
a private method of a Dagster class): the instance plugins in ``dp_instance/`` and the
compile-time module ``dp_assets/dagster_internals.py``. The scan below fails when one appears
anywhere else in the product (``dp_*`` packages, ``bench/``) or in the instance files a
deployment copies. The tests after it fail when Dagster changes an internal the compile-time
module relies on; ``test_dagster_fence_storage.py`` does the same for the instance plugins.
docs/upgrading-dagster.md lists every internal with the test that guards it.

The tests themselves are not scanned: they drive Dagster's daemon, gRPC loader and storages
the way no product code does, and a test broken by an upgrade fails loudly in CI, which is what
the fence is for in production.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import dagster as dg
import pytest
from dagster._core.definitions.definitions_load_context import (
    DefinitionsLoadContext,
    DefinitionsLoadType,
)
from dagster._core.definitions.reconstruct import ReconstructableRepository
from dagster._core.types.loadable_target_origin import LoadableTargetOrigin
from dagster._grpc.server import LoadedRepositories
from dagster._serdes import deserialize_value

from dp_assets import dagster_internals as internals
from dp_assets.spec.fields import DAGSTER_RESERVED_NAMES
from dp_instance.run_internals import RUN_ID_PLACEHOLDER

ROOT = Path(__file__).resolve().parents[2]
FENCE = ("dp_instance/", "dp_assets/dagster_internals.py")
#: Files Dagster loads classes from by module path: a private path there breaks on upgrade too.
INSTANCE_FILES = ("dagster.yaml", "workspace.yaml", "docker-compose.yml", "deploy/*.yaml", "deploy/*.yml")
_DAGSTER_PACKAGE = re.compile(r"^dagster(_\w+)?$")  # dagster, dagster_celery, dagster_postgres...
_PRIVATE_PATH = re.compile(r"\bdagster(_\w+)?(\.\w+)*\._[A-Za-z]")
#: Private attributes of objects that are not Dagster's, read outside the fence on purpose.
NOT_DAGSTER = {
    "_exit": "os._exit: leave a forked child without running the parent's clean-up",
    "_replace": "a named tuple's copy-with-changes (urllib's SplitResult)",
    "_mapping": "SQLAlchemy's Row as a mapping (documented, underscored to avoid column names)",
    "_reads": "dp_assets' own per-request grant reads, set on the API's copy for one caller (dp_assets.store_api)",
}


def _private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def _docstrings(tree: ast.AST) -> set[int]:
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                found.add(id(body[0].value))
    return found


def _dagster_module(dotted: str) -> bool:
    return bool(_DAGSTER_PACKAGE.match(dotted.split(".")[0]))


def _private_path(dotted: str) -> bool:
    return any(map(_private, dotted.split(".")))


def _attribute_root(node: ast.Attribute) -> str | None:
    root = node.value
    while isinstance(root, ast.Attribute):
        root = root.value
    return root.id if isinstance(root, ast.Name) else None


def private_uses(source: str) -> list[str]:
    """Every private Dagster API ``source`` uses, as ``line: what``."""
    tree = ast.parse(source)
    dagster_names = {  # names this file binds to a Dagster module (``import dagster as dg``)
        (alias.asname or alias.name).split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, ast.Import)
        for alias in node.names
        if _dagster_module(alias.name)
    }
    docstrings = _docstrings(tree)
    found = []
    for node in ast.walk(tree):
        line = getattr(node, "lineno", 0)
        if isinstance(node, ast.Import):
            found += [
                f"{line}: import {a.name}" for a in node.names if _dagster_module(a.name) and _private_path(a.name)
            ]
        elif isinstance(node, ast.ImportFrom) and node.module and _dagster_module(node.module):
            if _private_path(node.module):
                found.append(f"{line}: from {node.module} import ...")
            found += [f"{line}: from {node.module} import {a.name}" for a in node.names if _private(a.name)]
        elif isinstance(node, ast.Attribute) and _private(node.attr):
            root = _attribute_root(node)
            if root in dagster_names:
                found.append(f"{line}: {root}...{node.attr}")
            elif root not in ("self", "cls") and node.attr not in NOT_DAGSTER:
                found.append(f"{line}: private attribute .{node.attr} (not Dagster's? add it to NOT_DAGSTER)")
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings:
            named = _PRIVATE_PATH.search(node.value)
            if named:
                found.append(f"{line}: string naming {named.group(0)}")
    return found


def _product_files() -> Iterator[Path]:
    for path in sorted([*ROOT.glob("dp_*/**/*.py"), *ROOT.glob("bench/**/*.py")]):
        relative = path.relative_to(ROOT).as_posix()
        if ".egg-info" not in relative and not relative.startswith(FENCE):
            yield path


@pytest.mark.parametrize(
    "snippet",
    [
        "from dagster._core.events import DagsterEvent",
        "import dagster._utils.schedules",
        "from dagster_celery.executor import _submit_task",
        "import dagster as dg\ndg._core.storage",
        "import importlib\nimportlib.import_module('dagster._core.run_coordinator')",
        "QUEUED = '''run_coordinator:\n  module: dagster._core.run_coordinator\n'''",
        "def run(context):\n    return context._step_execution_context",
    ],
)
def test_the_scan_finds_each_kind_of_private_use(snippet: str) -> None:
    assert private_uses(snippet)


def test_the_scan_leaves_public_uses_alone() -> None:
    source = (
        '"""Mentions dagster._core in a docstring."""\nimport dagster as dg\nfrom dagster import asset\n'
        "import os\nos._exit(0)\nclass A:\n    def f(self):\n        return self._x\n"
    )
    assert private_uses(source) == []


def test_no_private_dagster_api_outside_the_fence() -> None:
    offenders = {
        path.relative_to(ROOT).as_posix(): uses for path in _product_files() if (uses := private_uses(path.read_text()))
    }
    assert not offenders, (
        "private Dagster APIs outside dp_instance/ and dp_assets/dagster_internals.py "
        f"(move them behind the fence, docs/upgrading-dagster.md): {offenders}"
    )


def test_instance_files_name_dagster_classes_by_public_paths() -> None:
    files = sorted({path for pattern in INSTANCE_FILES for path in ROOT.glob(pattern)})
    assert any(path.name == "dagster.yaml" for path in files)
    offenders = {
        path.relative_to(ROOT).as_posix(): lines
        for path in files
        if (
            lines := [
                line.strip()
                for line in path.read_text().splitlines()
                if _PRIVATE_PATH.search(line) and not line.lstrip().startswith("#")
            ]
        )
    }
    assert not offenders, offenders


def _dagster_subclasses() -> Iterator[tuple[str, type, ast.ClassDef]]:
    for path in _product_files():
        tree = ast.parse(path.read_text())
        classes = [node for node in ast.walk(tree) if isinstance(node, ast.ClassDef) and node.bases]
        relative = path.relative_to(ROOT).as_posix()
        if not classes or "dagster" not in path.read_text() or relative.startswith("bench/"):
            continue  # bench/ holds no module-level class of its own on a Dagster class
        module = importlib.import_module(".".join(path.relative_to(ROOT).with_suffix("").parts))
        for node in classes:
            cls = getattr(module, node.name, None)
            if inspect.isclass(cls) and any(
                _DAGSTER_PACKAGE.match(base.__module__.split(".")[0]) for base in cls.__mro__[1:]
            ):
                yield relative, cls, node


def test_no_subclass_outside_the_fence_overrides_or_reads_a_private_member_of_dagster() -> None:
    """A class of ours that subclasses Dagster's (a resource, an IO manager) defines and reads
    only its own private members: one of Dagster's would break silently on upgrade."""
    offenders = []
    for where, cls, node in _dagster_subclasses():
        dagster_bases = [base for base in cls.__mro__[1:] if _dagster_module(base.__module__)]
        names = {item.name for item in node.body if isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef)}
        names |= {
            n.attr
            for n in ast.walk(node)
            if isinstance(n, ast.Attribute) and isinstance(n.value, ast.Name) and n.value.id == "self"
        }
        offenders += [
            f"{where}: {cls.__name__}.{name}"
            for name in sorted(names)
            if _private(name) and any(hasattr(base, name) for base in dagster_bases)
        ]
    assert not offenders, offenders


# ---- the compile-time internals -----------------------------------------------------------------


def test_the_implicit_asset_job_has_the_name_the_fence_imports() -> None:
    @dg.asset
    def anything() -> int:
        return 1

    jobs = {job.name for job in dg.Definitions(assets=[anything]).get_repository_def().get_all_jobs()}
    assert internals.IMPLICIT_ASSET_JOB_NAME in jobs


def test_an_upstream_outside_the_run_carries_the_placeholder_run_id() -> None:
    """Dagster hands an IO manager an artificial upstream context for an asset the run does not
    materialise; ``dp_io`` recognises it by this run id and looks the value up instead."""
    seen = []

    class Recording(dg.IOManager):
        def handle_output(self, context: dg.OutputContext, obj: object) -> None:
            pass

        def load_input(self, context: dg.InputContext) -> int:
            seen.append(context.upstream_output.run_id)
            return 1

    @dg.asset
    def upstream() -> int:
        return 1

    @dg.asset
    def downstream(upstream: int) -> int:
        return upstream + 1

    result = dg.materialize([upstream, downstream], selection=[downstream], resources={"io_manager": Recording()})
    assert result.success
    assert seen == [RUN_ID_PLACEHOLDER]


def test_dagsters_definitions_check_sets_the_variable_the_fence_reads(tmp_path: Path) -> None:
    """`dagster definitions validate` (what `dg check defs` runs) loads the definitions with
    `validating_definitions()` true; a plain load sees it false."""
    seen = tmp_path / "seen.txt"
    module = tmp_path / "probe_defs.py"
    module.write_text(
        "import dagster as dg\n"
        "from pathlib import Path\n"
        "from dp_assets.dagster_internals import validating_definitions\n"
        f"Path({str(seen)!r}).write_text(str(validating_definitions()))\n"
        "defs = dg.Definitions()\n"
    )
    env = {k: v for k, v in os.environ.items() if k != internals.DEFS_VALIDATION_ENV}
    dagster = Path(sys.executable).parent / "dagster"
    done = subprocess.run(
        [str(dagster), "definitions", "validate", "-f", str(module)],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert seen.read_text() == "True"
    assert internals.validating_definitions() is False  # this process is no definitions check


def test_every_reserved_name_is_refused_by_dagster_and_ids_are_not() -> None:
    """Spec validation refuses the names in DISALLOWED_NAMES (a set lookup: a public constructor
    per id would cost 70 µs each); Dagster's public definitions refuse exactly those."""
    assert {"context", "config", "input", "type", "class", "def"} <= internals.DISALLOWED_NAMES
    assert DAGSTER_RESERVED_NAMES == internals.DISALLOWED_NAMES  # the spec model's copy, kept to skip a Dagster import
    for name in internals.DISALLOWED_NAMES:
        with pytest.raises(dg.DagsterInvalidDefinitionError):
            dg.GraphDefinition(name=name, node_defs=[])
    dg.GraphDefinition(name="orders_daily", node_defs=[])


def test_every_partition_key_dagster_refuses_is_refused_by_the_spec() -> None:
    """The spec checks partition keys without importing Dagster; a key Dagster would refuse when
    the flow compiles must be refused by validation already, naming the field."""
    from dagster._core.definitions.partitions.utils.base import INVALID_PARTITION_SUBSTRINGS
    from pydantic import ValidationError

    from dp_assets.spec.partitions import StaticPartitions

    for substring in INVALID_PARTITION_SUBSTRINGS:
        key = f"eu{substring}west"
        with pytest.raises(dg.DagsterInvalidDefinitionError):
            dg.StaticPartitionsDefinition([key])
        with pytest.raises(ValidationError):
            StaticPartitions(type="static", keys=[key])
    StaticPartitions(type="static", keys=["eu-west", "eu west", "ünïcode"])
    dg.StaticPartitionsDefinition(["eu-west", "eu west", "ünïcode"])


def test_a_flow_job_resolved_against_its_own_assets_is_dagsters_job() -> None:
    @dg.asset(required_resource_keys={"counter"})
    def counted() -> int:
        return 1

    @dg.asset
    def other() -> int:
        return 2

    job = dg.define_asset_job("counted_job", selection=[counted])
    counter = dg.ResourceDefinition.hardcoded_resource(41)
    ours = internals.resolve_asset_job(job, [counted], dg.in_process_executor, {"counter": counter})
    theirs = dg.Definitions(
        assets=[counted, other], jobs=[job], resources={"counter": counter}, executor=dg.in_process_executor
    ).resolve_job_def("counted_job")
    assert isinstance(ours, dg.JobDefinition)
    assert ours.name == theirs.name
    assert ours.executor_def is theirs.executor_def
    assert ours.asset_layer.executable_asset_keys == theirs.asset_layer.executable_asset_keys == {counted.key}
    assert set(ours.resource_defs) == set(theirs.resource_defs)
    assert ours.execute_in_process().success


PROBE_DEFS = """
import dagster as dg
from dp_assets.dagster_internals import (
    add_reconstruction_metadata, job_being_reconstructed, reconstruction_metadata,
)

SEEN = []

@dg.asset
def first() -> int:
    return 1

@dg.asset
def second(first: int) -> int:
    return first + 1

@dg.definitions
def defs() -> dg.Definitions:
    SEEN.append((job_being_reconstructed(), reconstruction_metadata()))
    add_reconstruction_metadata("probe/pinned", "v1")
    return dg.Definitions(assets=[first, second], jobs=[dg.define_asset_job("only_second", selection=[second]),
                                                        dg.define_asset_job("both", selection=[first, second])],
                          executor=dg.in_process_executor)
"""


@contextmanager
def _load_context(load_type: DefinitionsLoadType) -> Iterator[None]:
    """Dagster's load context is per process; scoped, so that no other test inherits it."""
    with DefinitionsLoadContext.scoped(DefinitionsLoadContext(load_type=load_type)):
        yield


@pytest.fixture
def probe_location(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, object]]:
    name = f"dp_fence_probe_{tmp_path.name.replace('-', '_')}"
    (tmp_path / f"{name}.py").write_text(PROBE_DEFS)
    monkeypatch.syspath_prepend(str(tmp_path))
    yield name, importlib.import_module(name)
    sys.modules.pop(name, None)


def test_the_load_context_and_the_job_being_reconstructed_as_a_worker_sees_them(
    probe_location: tuple[str, object], tmp_path: Path
) -> None:
    """A code server's load pins metadata and sees no job; a run worker reconstructing one job
    (and the implicit asset job for a selection) sees that job and the pinned metadata."""
    module, probe = probe_location
    origin = LoadableTargetOrigin(module_name=module, attribute="defs", working_directory=str(tmp_path))
    with _load_context(DefinitionsLoadType.INITIALIZATION):  # as a code server starts
        (repo,) = LoadedRepositories(origin, None, ["dagster"], None).definitions_by_name.values()
    assert probe.SEEN[0] == (None, None)  # type: ignore[attr-defined]  # the code server's own load
    load_data = repo.repository_load_data
    recon = ReconstructableRepository.for_module(module, "defs", working_directory=str(tmp_path))

    with _load_context(DefinitionsLoadType.RECONSTRUCTION):  # as a run worker starts
        recon.get_reconstructable_job("only_second").with_repository_load_data(load_data).get_definition()
    expected = (internals.JobBeingReconstructed("only_second", None), {"probe/pinned": "v1"})
    assert probe.SEEN[-1] == expected  # type: ignore[attr-defined]

    selected = (
        recon.get_reconstructable_job(internals.IMPLICIT_ASSET_JOB_NAME)
        .with_repository_load_data(load_data)
        .get_subset(asset_selection={dg.AssetKey("second")})
    )
    with _load_context(DefinitionsLoadType.RECONSTRUCTION):
        selected.get_definition()
    assert probe.SEEN[-1][0] == internals.JobBeingReconstructed(  # type: ignore[attr-defined]
        internals.IMPLICIT_ASSET_JOB_NAME, frozenset({dg.AssetKey("second")})
    )
    assert internals.job_being_reconstructed() is None  # called outside a reconstruction


def test_a_run_worker_argument_and_a_snapshot_are_what_dagster_reads(
    probe_location: tuple[str, object], tmp_path: Path
) -> None:
    from dagster._core.remote_representation.external_data import RepositorySnap

    module, _ = probe_location
    with dg.instance_for_test() as instance:
        run, arguments = internals.run_worker_arguments(module, "defs", str(tmp_path), "only_second", instance)
        parsed = deserialize_value(arguments)
        assert parsed.run_id == run.run_id
        assert parsed.job_origin.job_name == "only_second"

        probe_defs = importlib.import_module(module).defs()
        serialized = internals.repository_snapshot(probe_defs, defer_snapshots=True)
        snap = deserialize_value(serialized, RepositorySnap)
        assert "only_second" in {job.name for job in snap.job_datas or snap.job_refs or []}

        job = probe_defs.resolve_job_def("both")
        result = internals.execute_run_in_process(job, instance)
        assert result.success
        assert instance.get_run_by_id(result.run_id).status == dg.DagsterRunStatus.SUCCESS


def test_the_celery_internals_have_the_shape_the_terminating_executor_uses() -> None:
    from dagster_celery.core_execution_loop import core_celery_execution_loop
    from dagster_celery.executor import CeleryExecutor, _submit_task

    assert str(internals.retry_mode_from_config({"enabled": {}})) == "RetryMode.ENABLED"
    assert str(internals.retry_mode_from_config({"disabled": {}})) == "RetryMode.DISABLED"
    assert list(inspect.signature(core_celery_execution_loop).parameters) == [
        "job_context",
        "execution_plan",
        "step_execution_fn",
    ]
    assert list(inspect.signature(_submit_task).parameters) == [
        "app",
        "plan_context",
        "step",
        "queue",
        "priority",
        "known_state",
    ]
    assert list(inspect.signature(CeleryExecutor.execute).parameters) == ["self", "plan_context", "execution_plan"]


# ---- deprecation warnings -----------------------------------------------------------------------


@pytest.mark.parametrize("module", ["dp_fence_warning_probe", "fence_warning_probe"])
def test_a_deprecated_dagster_call_in_our_code_fails_the_suite(
    module: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """pyproject.toml's filters: a deprecation raised by a call in a ``dp_*`` module is an error;
    elsewhere (a third-party library) it is shown in the summary, not hidden."""
    (tmp_path / f"{module}.py").write_text("def run_id(context):\n    return context.run_id\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    probe = importlib.import_module(module)
    try:
        context = dg.build_asset_context()
        if module.startswith("dp_"):
            with pytest.raises(DeprecationWarning, match=r"context\.run\.run_id"):
                probe.run_id(context)
        else:
            with pytest.warns(DeprecationWarning, match=r"context\.run\.run_id"):
                probe.run_id(context)
    finally:
        sys.modules.pop(module, None)
