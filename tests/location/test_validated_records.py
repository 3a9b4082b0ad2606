"""Validated specs are kept by version: a restart restores the examples from their records without
validating them again, and `dp validate` does not compile a version that compiled before.

What a record saves is measured in bench/ (load_time: the examples, first load and restart);
here, what a user relies on: the same flows load, and a stale or broken record is never trusted.
"""

from __future__ import annotations

import json
import sqlite3

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dp_assets import compiled_flows
from dp_assets.catalog import default_catalog
from dp_assets.location import build_code_location
from dp_assets.spec import validation
from dp_assets.spec.loading import read_spec_file
from dp_assets.spec.validated_cache import ValidatedSpecs, platform_key
from dp_assets.spec.validation import validate_spec
from tests.fuzzing import fuzz_settings


def _flow_jobs(defs) -> set[str]:
    platform = {"dp_retention_job"}
    return {job.name for job in defs.resolve_all_job_defs() if not job.name.startswith("__")} - platform


def _restart(monkeypatch: pytest.MonkeyPatch) -> None:
    """What a new process has: no compiled flows in memory (the records on disk stay)."""
    monkeypatch.setattr(compiled_flows, "_compiled", compiled_flows.CompiledFlows())


def test_a_restart_restores_every_published_flow_from_its_record(flows_dir, dp_home, monkeypatch):
    first = _flow_jobs(build_code_location())
    recorded = {flow for flow, _ in ValidatedSpecs.for_home(dp_home).versions()}
    assert recorded == first and first

    _restart(monkeypatch)

    def not_again(*args, **kwargs):
        raise AssertionError("a stored version with a record was validated again")

    monkeypatch.setattr(compiled_flows, "validate_spec", not_again)
    assert _flow_jobs(build_code_location()) == first


def _rewrite(cache: ValidatedSpecs, flow: str, version: str, change) -> None:
    with sqlite3.connect(cache.path) as db:
        (text,) = db.execute("SELECT record FROM records WHERE flow = ? AND version = ?", (flow, version)).fetchone()
        db.execute("UPDATE records SET record = ? WHERE flow = ? AND version = ?", (change(text), flow, version))


def test_a_broken_or_foreign_record_is_validated_afresh(flows_dir, dp_home, monkeypatch):
    first = _flow_jobs(build_code_location())
    cache = ValidatedSpecs.for_home(dp_home)
    versions = cache.versions()
    _rewrite(cache, *versions[0], lambda text: "{not json")
    _rewrite(cache, *versions[1], lambda text: '{"flow": "someone_else", "version": "0", "checked": {}}')
    _rewrite(cache, *versions[2], lambda text: text.replace('"nodes"', '"nodez"'))  # no longer fits the model
    _restart(monkeypatch)
    validated = []
    real = compiled_flows.validate_spec
    monkeypatch.setattr(compiled_flows, "validate_spec", lambda *a, **k: validated.append(1) or real(*a, **k))
    assert _flow_jobs(build_code_location()) == first
    assert len(validated) == 3  # the three broken records, and only those


def test_a_records_file_that_is_not_a_database_is_replaced(flows_dir, dp_home, monkeypatch):
    first = _flow_jobs(build_code_location())
    path = ValidatedSpecs.for_home(dp_home).path
    path.write_bytes(b"not a database at all" * 100)
    for side in ("-wal", "-shm"):
        path.with_name(path.name + side).unlink(missing_ok=True)
    _restart(monkeypatch)
    assert _flow_jobs(build_code_location()) == first  # validated afresh
    assert {flow for flow, _ in ValidatedSpecs.for_home(dp_home).versions()} == first  # and recorded again


def test_a_folder_that_cannot_be_written_costs_only_the_saving(flows_dir, dp_home, monkeypatch):
    (dp_home / "cache").write_text("a file where the records folder should be")
    _restart(monkeypatch)
    first = _flow_jobs(build_code_location())
    assert first and ValidatedSpecs.for_home(dp_home).versions() == []


def test_validate_compiles_a_version_once(dp_home, monkeypatch):
    spec = read_spec_file("flows/sales_summary.yaml")
    cache = ValidatedSpecs.for_home(dp_home)
    compiled = []
    real = validation.dagster_rules.compile_refusal
    monkeypatch.setattr(validation.dagster_rules, "compile_refusal", lambda *a: compiled.append(1) or real(*a))
    first = validate_spec(spec, default_catalog(), cache=cache)
    again = validate_spec(spec, default_catalog(), cache=cache)
    assert compiled == [1] and again.version == first.version
    edited = {**spec, "description": "edited"}
    validate_spec(edited, default_catalog(), cache=cache)  # a new version compiles
    assert compiled == [1, 1]


def test_a_version_that_does_not_compile_is_never_recorded_as_compiled(dp_home, monkeypatch):
    spec = read_spec_file("flows/sales_summary.yaml")
    cache = ValidatedSpecs.for_home(dp_home)
    monkeypatch.setattr(validation.dagster_rules, "compile_refusal", lambda *a: "does not compile in Dagster: no")
    for _ in range(2):
        with pytest.raises(validation.FlowValidationError, match="does not compile"):
            validate_spec(spec, default_catalog(), cache=cache)
    assert ValidatedSpecs.for_home(dp_home).versions() == []


def test_records_of_another_platform_code_are_not_read(dp_home, monkeypatch):
    spec = read_spec_file("flows/sales_summary.yaml")
    validated = validate_spec(spec, default_catalog(), cache=ValidatedSpecs.for_home(dp_home))
    assert ValidatedSpecs.for_home(dp_home).compiled(validated.id, validated.version)
    monkeypatch.setattr("dp_assets.spec.validated_cache.platform_key", lambda: "another-code")
    assert not ValidatedSpecs.for_home(dp_home).compiled(validated.id, validated.version)


def test_records_of_earlier_platform_code_are_dropped_by_the_next_record(dp_home, monkeypatch):
    spec = read_spec_file("flows/sales_summary.yaml")
    validate_spec(spec, default_catalog(), cache=ValidatedSpecs.for_home(dp_home))
    monkeypatch.setattr("dp_assets.spec.validated_cache.platform_key", lambda: "another-code")
    edited = validate_spec({**spec, "description": "edited"}, default_catalog(), cache=ValidatedSpecs.for_home(dp_home))
    with sqlite3.connect(ValidatedSpecs.for_home(dp_home).path) as db:
        rows = db.execute("SELECT platform, version FROM records").fetchall()
    assert rows == [("another-code", edited.version)]


@fuzz_settings(200)
@given(
    flow_id=st.text(max_size=40) | st.from_regex(r"[a-z_./\\]{1,12}", fullmatch=True),
    version=st.text(max_size=20) | st.from_regex(r"[0-9a-f]{1,16}", fullmatch=True),
)
def test_any_flow_id_and_version_find_their_own_record_or_none(tmp_path_factory, flow_id, version):
    """The location asks with a store row's id and version before validating the spec: whatever
    they are, a lookup never raises, and finds only a record put under exactly that id and version."""
    cache = ValidatedSpecs(tmp_path_factory.mktemp("records"))
    assert cache.get(flow_id, version) is None
    assert not cache.compiled(flow_id, version)
    validated = validate_spec(read_spec_file("flows/sales_summary.yaml"), default_catalog(), check_compiles=False)
    cache.put(validated, validated.raw, compiles=True)
    found = cache.get(flow_id, version)
    mine = (flow_id, version) == (validated.id, validated.version)
    assert (found is not None) == mine
    assert cache.get(validated.id, validated.version)["version"] == validated.version


def test_a_records_file_locked_by_another_process_costs_the_saving_and_is_kept(dp_home):
    """Another process holding the file's lock (here past the wait) costs this one the saving,
    never the records: the file is not taken for a broken one and replaced."""
    cache = ValidatedSpecs.for_home(dp_home)
    spec = read_spec_file("flows/sales_summary.yaml")
    validated = validate_spec(spec, default_catalog(), cache=cache)
    edited = validate_spec({**spec, "description": "edited"}, default_catalog(), check_compiles=False)
    other = sqlite3.connect(cache.path, isolation_level=None)
    other.execute("BEGIN EXCLUSIVE")  # in WAL mode: a writer; readers go on
    try:
        late = ValidatedSpecs.for_home(dp_home)  # a process that starts while the lock is held
        assert late.compiled(validated.id, validated.version)
        late.put(edited, edited.raw, compiles=True)  # waits BUSY_SECONDS, keeps nothing, raises nothing
        assert late.get(validated.id, validated.version) is None  # then leaves records alone a while
    finally:
        other.execute("ROLLBACK")
        other.close()
    assert ValidatedSpecs.for_home(dp_home).versions() == [(validated.id, validated.version)]


def test_a_records_file_locked_while_it_opens_is_not_replaced(dp_home, monkeypatch):
    """A file another process holds locked before it is in WAL mode cannot even be read: the
    look-up finds nothing, and the file (someone's database) is left as it is."""
    path = ValidatedSpecs.for_home(dp_home).path
    path.parent.mkdir(parents=True)
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("CREATE TABLE kept (x)")
    other.execute("INSERT INTO kept VALUES (1)")
    other.execute("BEGIN EXCLUSIVE")
    opened = []
    real_open = ValidatedSpecs._open
    monkeypatch.setattr(ValidatedSpecs, "_open", staticmethod(lambda p: opened.append(p) or real_open(p)))
    try:
        cache = ValidatedSpecs.for_home(dp_home)
        assert cache.get("sales_summary", "94f37375da88da1d") is None
        assert cache.versions() == []
        assert len(opened) == 1  # not tried again for every flow of a load: BACK_OFF_SECONDS
    finally:
        other.execute("ROLLBACK")
    assert other.execute("SELECT x FROM kept").fetchall() == [(1,)]
    other.close()
    assert path.exists()
    later = ValidatedSpecs.for_home(dp_home)  # the next process, once the file is free
    validated = validate_spec(read_spec_file("flows/sales_summary.yaml"), default_catalog(), cache=later)
    assert later.versions() == [(validated.id, validated.version)]


def _look_up_in_child(cache: ValidatedSpecs, flow_id: str, version: str) -> None:
    raise SystemExit(0 if cache.compiled(flow_id, version) else 3)


def test_a_forked_worker_reads_records_whatever_its_parent_s_threads_held(dp_home):
    """A warm template forks run workers: a fork taken while another thread of the parent was
    using the records must not leave the child waiting on a lock no thread of its own holds."""
    import multiprocessing

    cache = ValidatedSpecs.for_home(dp_home)
    validated = validate_spec(read_spec_file("flows/sales_summary.yaml"), default_catalog(), cache=cache)
    with cache._lock:  # a parent thread inside a look-up at the moment of the fork
        child = multiprocessing.get_context("fork").Process(
            target=_look_up_in_child, args=(cache, validated.id, validated.version)
        )
        child.start()
        child.join(timeout=20)
    if child.is_alive():
        child.kill()
        child.join()
    assert child.exitcode == 0


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20,
)


@fuzz_settings(100)
@given(
    record=st.text(max_size=200)
    | JSON.map(json.dumps)
    | st.builds(lambda checked: {"checked": checked}, JSON | st.just({"id": "sales_summary", "nodes": []}))
)
def test_any_text_in_a_record_gives_the_stored_version_or_a_fresh_validation(tmp_path_factory, record):
    """The records file is in DP_HOME, where anything may write: whatever a version's row holds
    (text, JSON, a record whose checked spec is any JSON), a load gets that flow at that version,
    restored or validated afresh, and never an error."""
    spec = read_spec_file("flows/sales_summary.yaml")
    version = validate_spec(spec, default_catalog(), check_compiles=False).version
    cache = ValidatedSpecs(tmp_path_factory.mktemp("records"))
    if isinstance(record, dict):  # a well-formed record around any checked spec
        record = json.dumps({"flow": "sales_summary", "version": version, "compiles": True, **record})
    assert cache.versions() == []  # made the file
    with sqlite3.connect(cache.path) as db:
        db.execute("INSERT INTO records VALUES (?, ?, ?, ?)", (platform_key(), "sales_summary", version, record))
    flows = compiled_flows.CompiledFlows()
    flows.records = lambda: cache  # type: ignore[method-assign]
    loaded = flows._validated("sales_summary", version, spec, default_catalog(), cacheable=True)
    assert (loaded.id, loaded.version) == ("sales_summary", version)
