"""``dp test``: the test-case model, the rewrite, the assertions and the runner, on small flows.

Flows and test files are written to a temporary folder the way a user lays them out (the spec,
``tests/`` beside it); the CLI runs them in process. Where a case writes to a database it is a
real SQLite file.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa
import yaml
from click.testing import CliRunner

from dp_assets.catalog import default_catalog
from dp_assets.cli import main as dp
from dp_assets.flowtest import TestFileError, find_targets, load_test_file
from dp_assets.flowtest.expect import compare_rows, same
from dp_assets.flowtest.model import TestCase
from dp_assets.flowtest.rewrite import CaseError, rewrite_for_case

ORDERS = [
    {"order_id": 1, "region": "EU", "amount": 10.0},
    {"order_id": 2, "region": "US", "amount": 30.0},
    {"order_id": 3, "region": "EU", "amount": 25.0},
]
FLOW = {
    "id": "tiny",
    "params": {"min_amount": {"type": "number", "default": 0}},
    "nodes": [
        {"id": "orders", "type": "FileInput", "params": {"path": "orders.csv"}},
        {
            "id": "big",
            "type": "FilterRows",
            "inputs": ["orders"],
            "params": {"condition": "amount >= params.min_amount"},
        },
        {
            "id": "totals",
            "type": "GroupAggregate",
            "inputs": ["big"],
            "params": {"by": "region", "agg": {"total": ["amount", "sum"], "n": ["order_id", "count"]}},
        },
        {
            "id": "save",
            "type": "TableWriter",
            "inputs": ["totals"],
            "params": {"table": "totals", "connection": "tiny", "if_exists": "replace"},
        },
        {
            "id": "tell",
            "type": "SendNotification",
            "inputs": ["totals"],
            "params": {"channel": "webhook", "webhook": "team", "message": "{row_count} regions, first {region}"},
        },
    ],
}


def write_flow(folder: Path, spec: dict, cases: list[dict], name: str = "tiny") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    (folder / "tests").mkdir(exist_ok=True)
    (folder / "tests" / f"{name}.yaml").write_text(
        yaml.safe_dump({"flow": spec["id"], "cases": cases}, sort_keys=False)
    )
    return folder / f"{name}.yaml"


def run_dp_test(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(dp, ["test", *args])
    return result.exit_code, result.output


# --- the test-case file ------------------------------------------------------------------------

BAD_FILES = [
    pytest.param({"cases": [{"name": "a", "expectt": {}}]}, "cases.0.expectt: unknown field", id="unknown-key"),
    pytest.param(
        {"cases": [{"name": "a", "fixtures": {"orders": {"rows": [], "value": 1}}}]},
        "one of rows, file or value",
        id="two-fixture-sources",
    ),
    pytest.param(
        {"cases": [{"name": "a", "expect": {"totals": {"ordered": False}}}]},
        "needs at least one check",
        id="expectation-without-check",
    ),
    pytest.param({"cases": [{"name": "a"}, {"name": "a"}]}, "two cases are named 'a'", id="duplicate-case"),
    pytest.param(
        {"cases": [{"name": "a", "expect": {"tell": {"message": "(unclosed"}}}]},
        "not a valid regular expression",
        id="bad-regex",
    ),
    pytest.param(
        {"cases": [{"name": "a", "fixtures": {"orders": {"rows": [], "fail_times": 0, "error": "x"}}}]},
        "message of `fail_times` or `missing: error`",
        id="error-beside-rows",
    ),
    pytest.param({"cases": []}, "cases: List should have at least 1 item", id="no-cases"),
    pytest.param({"flow": "Not-An-Id", "cases": [{"name": "a"}]}, "flow: String should match", id="bad-flow-id"),
]


@pytest.mark.parametrize(("content", "message"), BAD_FILES)
def test_a_bad_test_file_names_the_field(tmp_path, content, message):
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(content))
    with pytest.raises(TestFileError, match=str(path)) as raised:
        load_test_file(path)
    assert message in str(raised.value)


def test_the_flow_defaults_to_the_file_name_and_rows_have_a_shorthand(tmp_path):
    path = tmp_path / "tiny.yaml"
    path.write_text("cases:\n  - name: a\n    fixtures:\n      orders: [{order_id: 1}]\n")
    loaded = load_test_file(path)
    assert loaded.flow == "tiny" and loaded.cases[0].fixtures["orders"].rows == [{"order_id": 1}]


# --- the rewrite ---------------------------------------------------------------------------------


def _rewrite(case: dict, spec: dict = FLOW):
    from dp_assets.spec.validation import validate_spec

    validated = validate_spec(spec, default_catalog(), check_schemas=False)
    return rewrite_for_case(validated.raw, TestCase.model_validate({"name": "c", **case}), default_catalog())


def test_fixtures_and_stand_ins_replace_nodes_and_keep_their_wiring():
    done = _rewrite({"fixtures": {"orders": ORDERS}, "sinks": {"save": {"real": True}}})
    by_id = {n["id"]: n for n in done.spec["nodes"]}
    assert by_id["orders"]["type"] == "TestFixture" and by_id["orders"]["params"] == {"key": "orders"}
    assert by_id["save"]["type"] == "TableWriter"  # real: true
    assert by_id["tell"]["type"] == "TestStandIn" and by_id["tell"]["inputs"] == ["totals"]
    assert by_id["tell"]["params"]["type"] == "SendNotification"
    assert done.stand_ins == ["tell"] and done.real == ["save"]


REWRITE_ERRORS = [
    pytest.param({"fixtures": {"nope": []}}, "fixtures: flow 'tiny' has no node 'nope'", id="unknown-fixture"),
    pytest.param({"sinks": {"nope": {}}}, "sinks: flow 'tiny' has no node 'nope'", id="unknown-sink"),
    pytest.param({"expect": {"nope": {"rows": 1}}}, "expect: flow 'tiny' has no node 'nope'", id="unknown-target"),
    pytest.param({"fixtures": {"save": []}, "sinks": {"save": {}}}, "'save' has a fixture too", id="fixture-and-sink"),
]


@pytest.mark.parametrize(("case", "message"), REWRITE_ERRORS)
def test_a_case_that_does_not_fit_the_flow_is_refused(case, message):
    with pytest.raises(CaseError, match=message):
        _rewrite(case)


def test_a_side_effect_without_fixture_or_decision_is_refused():
    spec = {"id": "calls", "nodes": [{"id": "ping", "type": "HttpTool", "params": {"url": "https://example.com"}}]}
    with pytest.raises(CaseError, match=r"'ping' \(HttpTool\) reach outside the flow"):
        _rewrite({}, spec)
    assert _rewrite({"sinks": {"ping": {"real": False}}}, spec).stand_ins == ["ping"]


def test_body_nodes_are_addressed_through_their_parent():
    spec = {
        "id": "fan",
        "nodes": [
            {"id": "items", "type": "StaticData", "params": {"rows": [{"k": 1}]}},
            {
                "id": "each",
                "type": "ForEach",
                "inputs": ["items"],
                "params": {
                    "body": [{"id": "save", "type": "TableWriter", "params": {"table": "t", "if_exists": "append"}}]
                },
            },
        ],
    }
    done = _rewrite({}, spec)
    body = done.spec["nodes"][1]["params"]["body"]
    assert body[0]["type"] == "TestStandIn" and done.stand_ins == ["each.save"]


# --- value comparisons ---------------------------------------------------------------------------

SAME = [
    pytest.param(1, 1.0, True, id="int-float"),
    pytest.param(0.1 + 0.2, 0.3, True, id="float-tolerance"),
    pytest.param(pd.Timestamp("2024-05-01"), "2024-05-01", True, id="timestamp-iso"),
    pytest.param(pd.Timestamp("2024-05-01", tz="UTC"), "2024-05-01", True, id="aware-timestamp-naive-text"),
    pytest.param(float("nan"), None, True, id="nan-null"),
    pytest.param(pd.NA, None, True, id="na-null"),
    pytest.param(None, 0, False, id="null-zero"),
    pytest.param(True, 1, False, id="bool-int"),
    pytest.param({"a": [1, 2]}, {"a": [1, 2.0]}, True, id="nested"),
    pytest.param("EU", "US", False, id="text"),
]


@pytest.mark.parametrize(("actual", "expected", "equal"), SAME)
def test_values_compare_by_value(actual, expected, equal):
    assert same(actual, expected, 1e-9) is equal


def test_unordered_rows_compare_on_the_named_columns():
    actual = [{"a": 2, "b": "y", "c": 0}, {"a": 1, "b": "x", "c": 0}]
    assert compare_rows(actual, [{"a": 1, "b": "x"}, {"a": 2, "b": "y"}], ordered=False, tolerance=1e-9) is None
    assert "row 0, column 'a'" in compare_rows(actual, [{"a": 1}, {"a": 2}], ordered=True, tolerance=1e-9)


# --- running cases -------------------------------------------------------------------------------


def test_passing_and_failing_cases_are_reported_and_exit_1(tmp_path):
    spec = write_flow(
        tmp_path / "flows",
        FLOW,
        [
            {
                "name": "totals per region",
                "params": {"min_amount": 20},
                "fixtures": {"orders": ORDERS},
                "expect": {
                    "totals": {
                        "equals": [{"region": "EU", "total": 25.0, "n": 1}, {"region": "US", "total": 30.0, "n": 1}]
                    },
                    "save": {"rows": 2},
                    "tell": {"message": "^2 regions, first EU$"},
                },
            },
            {
                "name": "a wrong expectation",
                "fixtures": {"orders": ORDERS},
                "expect": {"totals": {"rows": 5, "values": {"region": ["US", "EU"]}}},
            },
        ],
    )
    code, output = run_dp_test(str(spec))
    assert code == 1, output
    assert "PASS  totals per region  (3 checks" in output
    assert "FAIL  a wrong expectation" in output
    assert "totals: rows: 2, expected 5" in output
    assert "totals: values['region']: row 0: 'EU', expected 'US'" in output
    assert "1 passed, 1 failed" in output


def test_stand_ins_send_nothing_and_real_sinks_write(tmp_path, monkeypatch):
    db = tmp_path / "tiny.db"
    monkeypatch.setenv("DP_DB_TINY_URL", f"sqlite:///{db}")
    spec = write_flow(
        tmp_path / "flows",
        FLOW,
        [
            {"name": "stand-in", "fixtures": {"orders": ORDERS}, "expect": {"save": {"rows": 2}}},
        ],
    )
    assert run_dp_test(str(spec))[0] == 0
    assert not db.exists() or not sa.inspect(sa.create_engine(f"sqlite:///{db}")).has_table("totals")
    write_flow(
        tmp_path / "flows",
        FLOW,
        [
            {
                "name": "real",
                "fixtures": {"orders": ORDERS},
                "sinks": {"save": {"real": True}},
                "expect": {"save": {"rows": 2}},
            },
        ],
    )
    code, output = run_dp_test(str(spec))
    assert code == 0, output
    written = pd.read_sql_table("totals", sa.create_engine(f"sqlite:///{db}"))
    assert written.to_dict(orient="records") == [
        {"region": "EU", "total": 35.0, "n": 2},
        {"region": "US", "total": 30.0, "n": 1},
    ]


def test_expected_failures_flaky_fixtures_and_on_error_continue(tmp_path):
    spec = {
        "id": "flaky",
        "nodes": [
            {"id": "source", "type": "StaticData", "params": {"rows": [{"a": 1}]}, "retry": {"max_retries": 2}},
            {"id": "extra", "type": "StaticData", "params": {"rows": [{"a": 2}]}, "on_error": "continue"},
            {"id": "both", "type": "UnionConcatenate", "inputs": ["source", "extra"]},
        ],
    }
    path = write_flow(
        tmp_path / "flows",
        spec,
        [
            {
                "name": "retried twice",
                "fixtures": {"source": {"rows": [{"a": 5}], "fail_times": 2}},
                "expect": {"both": {"values": {"a": [5, 2]}}},
            },
            {
                "name": "fails after its retries",
                "fixtures": {"source": {"error": "upstream down"}},
                "fails": {"node": "source", "error": "after 3 attempts: FixtureFailure: upstream down"},
            },
            {
                "name": "fail-safe node",
                "fixtures": {"extra": {"error": "optional source down"}},
                "expect": {"extra": {"skipped": True}, "both": {"skipped": True}},
            },
            {"name": "expected a failure that did not come", "fails": {"node": "source"}},
        ],
        name="flaky",
    )
    code, output = run_dp_test(str(path))
    assert "PASS  retried twice" in output and "PASS  fails after its retries" in output
    assert "PASS  fail-safe node" in output
    assert "fails: the run succeeded, expected it to fail at node 'source'" in output
    assert code == 1


def test_golden_files_are_written_then_compared(tmp_path):
    case = {"name": "golden", "fixtures": {"orders": ORDERS}, "expect": {"totals": {"golden": "golden/totals.csv"}}}
    spec = write_flow(tmp_path / "flows", FLOW, [case])
    code, output = run_dp_test(str(spec), "--update-golden")
    assert code == 0 and "(golden files written)" in output, output
    golden = tmp_path / "flows" / "tests" / "golden" / "totals.csv"
    assert golden.read_text().splitlines()[0] == "region,total,n"
    assert run_dp_test(str(spec))[0] == 0
    golden.write_text(golden.read_text().replace("35.0", "36.0"))
    code, output = run_dp_test(str(spec))
    assert code == 1 and "golden golden/totals.csv: row 0, column 'total': 35.0, expected 36.0" in output


def test_a_file_fixture_and_a_node_with_a_timeout(tmp_path):
    """A node with timeout_seconds runs in a forked child; its value still reaches the assertions."""
    spec = {
        "id": "timed",
        "nodes": [
            {"id": "orders", "type": "FileInput", "params": {"path": "orders.csv"}},
            {
                "id": "sorted",
                "type": "SortData",
                "inputs": ["orders"],
                "params": {"by": "amount"},
                "timeout_seconds": 30,
            },
        ],
    }
    path = write_flow(
        tmp_path / "flows",
        spec,
        [
            {
                "name": "csv fixture",
                "fixtures": {"orders": {"file": "fixtures/orders.csv", "dtype": {"amount": "float64"}}},
                "expect": {"sorted": {"values": {"order_id": [1, 3, 2]}, "columns": ["order_id", "region", "amount"]}},
            },
        ],
        name="timed",
    )
    (tmp_path / "flows" / "tests" / "fixtures").mkdir()
    pd.DataFrame(ORDERS).to_csv(tmp_path / "flows" / "tests" / "fixtures" / "orders.csv", index=False)
    code, output = run_dp_test(str(path))
    assert code == 0, output


def test_params_are_checked_like_run_config(tmp_path):
    spec = write_flow(
        tmp_path / "flows",
        FLOW,
        [
            {"name": "bad param", "params": {"min_amount": "lots"}, "fixtures": {"orders": ORDERS}},
        ],
    )
    code, output = run_dp_test(str(spec))
    assert code == 1 and "params do not fit the flow" in output and "min_amount" in output


# --- finding what to run ---------------------------------------------------------------------------


def test_targets_by_flow_id_spec_file_and_folder(tmp_path):
    spec = write_flow(tmp_path / "flows" / "team", FLOW, [{"name": "a", "fixtures": {"orders": ORDERS}}])
    (tmp_path / "flows" / "untested.yaml").write_text(yaml.safe_dump({**FLOW, "id": "untested"}))
    by_id = find_targets("tiny", tmp_path / "flows")
    assert [(t.flow_id, t.spec) for t in by_id] == [("tiny", spec)]
    assert [t.flow_id for t in find_targets(None, tmp_path / "flows")] == ["tiny"]  # only tested flows
    assert find_targets(str(spec), tmp_path)[0].tests == (spec.parent / "tests" / "tiny.yaml",)
    code, output = run_dp_test("untested", "--path", str(tmp_path / "flows"))
    assert code == 1 and "flow 'untested' has no test files" in output
    code, output = run_dp_test("missing", "--path", str(tmp_path / "flows"))
    assert code == 1 and "no flow 'missing'" in output
    code, output = run_dp_test("tiny", "--path", str(tmp_path / "flows"), "--case", "zzz")
    assert code == 1 and "no case(s) named zzz" in output


def test_every_shipped_example_passes_its_flow_tests():
    """`dp test` over the repository's flows/: every example's cases pass."""
    code, output = run_dp_test("--path", str(Path(__file__).resolve().parents[2] / "flows"))
    assert code == 0, output
    for flow in (
        "maxdp_sales_dashboard",
        "data_processing_pipeline",
        "ml_training_pipeline",
        "simple_workflow_example",
        "dppoc_event_etl",
        "pastetrader_market_brief",
        "adaptive_card_pipeline",
    ):
        assert f"flow {flow}" in output


def test_a_streamed_source_without_a_fixture_is_asserted_whole(tmp_path, monkeypatch):
    """A source with ``stream: true`` yields parts; a case reads its real table and sees it whole."""
    db = tmp_path / "shop.db"
    monkeypatch.setenv("DP_DB_SHOP_URL", f"sqlite:///{db}")
    orders = pd.DataFrame([{"order_id": i, "region": "EU" if i % 3 else "US", "amount": float(i)} for i in range(1, 8)])
    orders.to_sql("orders", sa.create_engine(f"sqlite:///{db}"), index=False)
    spec = {
        "id": "streamed",
        "nodes": [
            {
                "id": "orders",
                "type": "TableReader",
                "params": {
                    "table": "orders",
                    "connection": "shop",
                    "order_by": ["order_id"],
                    "chunksize": 3,
                    "stream": True,
                },
            },
            {
                "id": "totals",
                "type": "GroupAggregate",
                "inputs": ["orders"],
                "params": {"by": "region", "agg": {"total": ["amount", "sum"]}},
            },
        ],
    }
    totals = orders.groupby("region", as_index=False).agg(total=("amount", "sum"))
    path = write_flow(
        tmp_path / "flows",
        spec,
        [
            {
                "name": "real table in parts",
                "expect": {
                    "orders": {"rows": len(orders), "values": {"order_id": orders["order_id"].tolist()}},
                    "totals": {"values": {"region": totals["region"].tolist(), "total": totals["total"].tolist()}},
                },
            },
        ],
        name="streamed",
    )
    code, output = run_dp_test(str(path))
    assert code == 0, output
