"""The store decides what is published: spec files of DP_FLOWS_DIR are imported when they
change, never over a version published since, and flows can be retired (SQLite and PostgreSQL).

Each test is a user's loop: edit or publish, load the code location, see what runs."""

from __future__ import annotations

import logging
import os
import shutil
import threading
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from dp_assets.catalog import default_catalog
from dp_assets.cli import main as dp
from dp_assets.location import REPORT_KEY, build_code_location
from dp_assets.publishing import import_folder
from dp_assets.store_api import FlowStoreAPI
from dp_resources.store import FlowStore

CATALOG = default_catalog()


def _spec(flow_id: str, rows: list[dict], description: str = "") -> dict:
    return {
        "id": flow_id,
        "description": description,
        "nodes": [{"id": "a", "type": "StaticData", "params": {"rows": rows}}],
    }


@pytest.fixture
def folder(tmp_path) -> Path:
    path = tmp_path / "flows"
    path.mkdir()
    return path


def _write(path: Path, spec: dict) -> Path:
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    # A new modification time even when the test writes twice within the clock's resolution.
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    return path


def _load(store: FlowStore, folder: Path) -> tuple[set[str], str]:
    """Load the code location: the jobs it has and its load report."""
    defs = build_code_location(store=store, flows_folder=folder, catalog=CATALOG)
    report = next(a for a in defs.assets if REPORT_KEY in a.keys)
    jobs = {job.name for job in defs.jobs or ()}
    return jobs, report.descriptions_by_key[REPORT_KEY]


def test_a_publish_is_never_undone_by_an_unchanged_file(store, folder, tmp_path):
    api = FlowStoreAPI(store, CATALOG)
    _write(folder / "orders.yaml", _spec("orders", [{"x": 1}]))
    _load(store, folder)
    first = store.get("orders")[0]

    edited = api.publish(_spec("orders", [{"x": 2}], "edited elsewhere"), message="from the designer")
    assert edited.published
    for _ in range(2):  # every later load keeps it
        jobs, _ = _load(store, folder)
        assert "orders" in jobs
        assert store.get("orders")[0] == edited.version != first
    assert import_folder(store, folder, CATALOG).unchanged == 1  # not even read again


def test_a_changed_file_publishes_its_version_when_nobody_published_since(store, folder):
    path = _write(folder / "orders.yaml", _spec("orders", [{"x": 1}]))
    _load(store, folder)
    _write(path, _spec("orders", [{"x": 1}, {"x": 2}]))
    _load(store, folder)
    version, spec = store.get("orders")
    assert spec["nodes"][0]["params"]["rows"] == [{"x": 1}, {"x": 2}]
    assert [v.message for v in store.history("orders")] == ["imported from orders.yaml"] * 2
    # A change that leaves the spec the same (a comment) is recorded, and publishes nothing new.
    path.write_text(path.read_text() + "# reviewed\n")
    _load(store, folder)
    assert store.get("orders")[0] == version and len(store.history("orders")) == 2


def test_a_file_changed_after_another_publish_is_a_reported_conflict(store, folder, caplog):
    api = FlowStoreAPI(store, CATALOG)
    path = _write(folder / "orders.yaml", _spec("orders", [{"x": 1}]))
    _load(store, folder)
    theirs = api.publish(_spec("orders", [{"x": 2}], "theirs")).version
    _write(path, _spec("orders", [{"x": 3}], "mine"))
    with caplog.at_level(logging.WARNING, logger="dp.publishing"):
        _, report = _load(store, folder)
    mine = next(
        v.version
        for v in store.history("orders")
        if v.version not in (theirs,) and store.get("orders", v.version)[1]["description"] == "mine"
    )
    assert store.get("orders")[0] == theirs  # the published one is kept, the file's is stored
    for text in (report, caplog.text, "\n".join(e.conflict or "" for e in api.list())):
        assert theirs in text and mine in text, text

    _, report = _load(store, folder)  # reported on every load until one side wins
    assert mine in report
    result = CliRunner().invoke(dp, ["publish", str(path)], env={"DP_STORE_URL": store.url})
    assert result.exit_code == 0, result.output
    _, report = _load(store, folder)
    assert store.get("orders")[0] == mine and "not published" not in report
    assert all(entry.conflict is None for entry in api.list())


def test_the_store_side_can_win_a_conflict_by_writing_the_file(store, folder):
    api = FlowStoreAPI(store, CATALOG)
    path = _write(folder / "orders.yaml", _spec("orders", [{"x": 1}]))
    _load(store, folder)
    theirs = api.publish(_spec("orders", [{"x": 2}], "theirs")).version
    _write(path, _spec("orders", [{"x": 3}], "mine"))
    _load(store, folder)
    shown = CliRunner().invoke(dp, ["show", "orders"], env={"DP_STORE_URL": store.url})
    path.write_text(shown.output)
    _, report = _load(store, folder)
    assert store.get("orders")[0] == theirs and "not published" not in report


def test_delete_restore_and_unpublish(store, folder):
    api = FlowStoreAPI(store, CATALOG)
    _write(folder / "orders.yaml", _spec("orders", [{"x": 1}]))
    _write(folder / "other.yaml", _spec("other", [{"y": 1}]))
    assert {"orders", "other"} <= _load(store, folder)[0]
    cli = CliRunner()
    env = {"DP_STORE_URL": store.url}

    assert cli.invoke(dp, ["delete", "orders"], env=env).output.strip() == "orders: deleted"
    jobs, _ = _load(store, folder)  # the unchanged file does not bring it back
    assert "orders" not in jobs and "other" in jobs
    assert len(store.history("orders")) == 1  # its versions stay
    listed = cli.invoke(dp, ["list"], env=env).output
    assert "orders" not in listed and "other" in listed and "1 deleted" in listed
    assert "deleted" in cli.invoke(dp, ["list", "--all"], env=env).output

    assert cli.invoke(dp, ["restore", "orders"], env=env).exit_code == 0
    assert "orders" in _load(store, folder)[0]

    assert cli.invoke(dp, ["unpublish", "orders"], env=env).exit_code == 0
    assert "orders" not in _load(store, folder)[0]
    assert api.info("orders").state == "unpublished"
    assert cli.invoke(dp, ["publish", "orders"], env=env).exit_code == 0  # its newest version again
    assert "orders" in _load(store, folder)[0]
    missing = cli.invoke(dp, ["delete", "nope"], env=env)
    assert missing.exit_code == 1 and "no flow 'nope'" in missing.output


def test_a_changed_file_of_a_deleted_flow_does_not_bring_it_back(store, folder):
    path = _write(folder / "orders.yaml", _spec("orders", [{"x": 1}]))
    _load(store, folder)
    store.delete("orders")
    _write(path, _spec("orders", [{"x": 2}]))
    jobs, report = _load(store, folder)
    assert "orders" not in jobs and "dp restore orders" in report
    assert len(store.history("orders")) == 2  # the file's version is kept, unpublished


def test_a_broken_flow_whose_file_is_gone_is_reported_once_with_how_to_retire_it(store, folder, caplog):
    path = _write(folder / "orders.yaml", _spec("orders", [{"x": 1}]))
    _load(store, folder)
    # A published version that no longer compiles (stored by an older platform, say).
    broken = {"id": "orders", "nodes": [{"id": "a", "type": "NoLongerInTheCatalog"}]}
    store.save("orders", "broken-version", broken)
    path.unlink()
    with caplog.at_level(logging.INFO):
        _, first = _load(store, folder)
    assert "NoLongerInTheCatalog" in first and "dp delete orders" in first
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR and "orders" in r.getMessage()]
    assert len(errors) == 1
    caplog.clear()
    with caplog.at_level(logging.INFO):
        _, second = _load(store, folder)
    assert "dp delete orders" in second and "NoLongerInTheCatalog" not in second
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR and "orders" in r.getMessage()]
    CliRunner().invoke(dp, ["delete", "orders"], env={"DP_STORE_URL": store.url})
    _, third = _load(store, folder)
    assert "orders" not in third


def test_the_load_report_and_list_say_where_each_flow_came_from(store, folder):
    api = FlowStoreAPI(store, CATALOG)
    _write(folder / "orders.yaml", _spec("orders", [{"x": 1}]))
    api.publish(_spec("by_hand", [{"x": 1}]))
    _, report = _load(store, folder)
    assert f"| orders | {(folder / 'orders.yaml').resolve()} |" in report
    assert "| by_hand | the store |" in report
    sources = {entry.id: entry.source for entry in api.list()}
    assert sources == {"orders": str((folder / "orders.yaml").resolve()), "by_hand": None}


def test_two_loads_at_once_take_one_decision(store, folder):
    """Two code servers importing the same changed files at once: each version is stored and
    published once, and neither load fails."""
    for i in range(6):
        _write(folder / f"f{i}.yaml", _spec(f"f{i}", [{"x": i}]))
    errors: list[BaseException] = []

    def load() -> None:
        try:
            report = import_folder(FlowStore(store.url), folder, CATALOG)
            assert not report.problems and not report.conflicts, report
        except BaseException as exc:  # noqa: BLE001 - collected for the main thread
            errors.append(exc)

    threads = [threading.Thread(target=load) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    assert sorted(info.id for info in store.list_flows()) == [f"f{i}" for i in range(6)]
    assert all(info.versions == 1 and info.published_version for info in store.list_flows())


def test_examples_load_twice_without_reading_unchanged_files(store, tmp_path):
    examples = Path(__file__).resolve().parents[2] / "flows"
    copy = tmp_path / "examples"
    shutil.copytree(examples, copy)
    first = import_folder(store, copy, CATALOG)
    assert first.published and not first.problems
    second = import_folder(store, copy, CATALOG)
    assert second.unchanged == len(first.sources) and not second.published


def test_a_store_made_before_file_records_is_migrated_and_keeps_its_flows(tmp_path):
    """A deployment's store at the first schema revision: its flows stay published after the
    upgrade, and its spec files are recorded on the next load without a new version."""
    from alembic import command
    from alembic.config import Config

    from dp_resources.store.store import MIGRATIONS

    url = f"sqlite:///{tmp_path / 'old.db'}"
    old = FlowStore(url)
    with old.engine.begin() as conn:
        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS))
        config.attributes["connection"] = conn
        command.upgrade(config, "0001")
        conn.exec_driver_sql("INSERT INTO dp_workspaces VALUES ('default', '2026-01-01 00:00:00')")
        conn.exec_driver_sql(
            "INSERT INTO dp_flows VALUES ('orders', 'default', 'v1', '2026-01-01 00:00:00', '2026-01-01 00:00:00')"
        )
        conn.exec_driver_sql(
            "INSERT INTO dp_flow_versions (flow_id, version, spec, message, created_at) VALUES "
            """('orders', 'v1', '{"id": "orders", "nodes": [{"id": "a", "type": "StaticData", """
            """"params": {"rows": [{"x": 1}]}}]}', '', '2026-01-01 00:00:00')"""
        )
    old.upgrade()
    assert [(i.id, i.state, i.published_version) for i in old.list_flows()] == [("orders", "published", "v1")]
    assert old.published_specs()[0][:2] == ("orders", "v1")
