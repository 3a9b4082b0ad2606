"""MAX DP's "publish as API" (``flows/maxdp/sales_dashboard.json``), end to end with real processes.

A React Flow export from a visual designer, using seventeen node types, is validated and
published into the flow store (version 1), changed in the designer and published again
(version 2), picked up by the running webserver (a location reload, as the UI's button does),
launched with params through Dagster's GraphQL API as any HTTP client would (wrong param types
are refused with no run), and its ``DisplayResults`` preview and statistics read back through
GraphQL. Everything is compared with the same report computed in plain pandas.
"""

from __future__ import annotations

import json

import pandas as pd
import pytest
from click.testing import CliRunner
from examples_support import FLOWS

from dp_assets.cli import main as dp
from tests.support.dagster_processes import LOCATION
from tests.support.processes import wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]

FLOW = "maxdp_sales_dashboard"
SPEC = FLOWS / "maxdp" / "sales_dashboard.json"

LAUNCH = """
mutation Launch($params: ExecutionParams!) {
  launchRun(executionParams: $params) {
    __typename
    ... on LaunchRunSuccess { run { runId } }
    ... on RunConfigValidationInvalid { errors { message } }
    ... on PythonError { message }
  }
}"""
RUN = "query Run($id: ID!) { runOrError(runId: $id) { ... on Run { status tags { key value } } } }"
RUN_COUNT = "query Count($name: String!) { runsOrError(filter: {pipelineName: $name}) { ... on Runs { count } } }"
DASHBOARD = """
query Dashboard($key: AssetKeyInput!) {
  assetOrError(assetKey: $key) {
    ... on Asset {
      assetMaterializations(limit: 1) {
        runId
        metadataEntries {
          label
          ... on MarkdownMetadataEntry { mdStr }
          ... on TextMetadataEntry { text }
          ... on JsonMetadataEntry { jsonString }
          ... on IntMetadataEntry { intValue }
        }
      }
    }
  }
}"""


def expected_dashboard(region: str, min_amount: float, top_n: int) -> pd.DataFrame:
    """The flow written in plain pandas over the shipped CSVs."""
    orders = pd.read_csv(FLOWS / "maxdp" / "data" / "orders.csv", parse_dates=["ordered_at"])
    customers = pd.read_csv(FLOWS / "maxdp" / "data" / "customers.csv")
    segments = pd.DataFrame({"segment": ["ENT", "MID", "SMB"], "discount": [0.10, 0.05, 0.0]})
    orders = orders.fillna({"quantity": 1}).drop_duplicates(subset=["order_id"], keep="last")
    orders = orders[(orders["amount"] >= min_amount) & ((region == "ALL") | (orders["region"] == region))]
    rows = orders.merge(customers, how="left", on="customer_id").merge(segments, how="left", on="segment")
    rows["net_amount"] = (rows["amount"] * (1 - rows["discount"].fillna(0))).round(2)
    rows["segment_name"] = rows["segment"].map({"ENT": "Enterprise", "MID": "Mid-market", "SMB": "Small business"})
    totals = (
        rows.groupby(["region", "customer_id", "name", "segment_name"])
        .agg(revenue=("net_amount", "sum"), orders=("order_id", "count"), units=("quantity", "sum"))
        .reset_index()
    )
    totals = totals.sort_values(["region", "revenue", "customer_id"], ascending=[True, False, True])
    totals["rank_in_region"] = totals.groupby("region").cumcount() + 1
    top = totals[totals["rank_in_region"] <= top_n]
    top = top.sort_values(["revenue", "customer_id"], ascending=[False, True], ignore_index=True)
    return top[["region", "rank_in_region", "customer_id", "name", "segment_name", "orders", "units", "revenue"]]


def _launch(platform, params: dict) -> dict:
    variables = {
        "params": {
            "selector": {"repositoryLocationName": LOCATION, "repositoryName": "__repository__", "jobName": FLOW},
            "runConfigData": params,
        }
    }
    return platform.graphql(LAUNCH, variables)["launchRun"]


def test_maxdp_designer_flow_published_and_launched_through_graphql(platform, tmp_path):
    """Import a React Flow export, publish a new version, launch it as an API with params, read results."""
    cli, env = CliRunner(), platform.cli_env()
    checked = cli.invoke(dp, ["validate", str(SPEC)], env=env)
    assert checked.exit_code == 0, checked.output
    first = cli.invoke(dp, ["publish", str(SPEC), "-m", "exported from the designer"], env=env)
    assert first.exit_code == 0 and "new version" in first.output, first.output

    # the designer changes a default and a label, and publishes the flow again
    edited = json.loads(SPEC.read_text())
    edited["params"]["top_n"]["default"] = 2
    next(n for n in edited["nodes"] if n["id"] == "dashboard")["data"]["label"] = "Top two per region"
    (tmp_path / "sales_dashboard.json").write_text(json.dumps(edited))
    second = cli.invoke(dp, ["publish", str(tmp_path / "sales_dashboard.json"), "-m", "top two"], env=env)
    assert second.exit_code == 0 and "new version" in second.output, second.output
    v2 = second.output.split("new version", 1)[1].split(",")[0].strip()
    history = cli.invoke(dp, ["history", FLOW], env=env).output.splitlines()
    assert len(history) == 2 and history[1].startswith(f"* {v2}")  # the new version is the published one

    platform.reload_location()  # the running server compiles the published version

    # wrong param types: a clear error and no run
    refused = _launch(platform, {"top_n": "three"})
    assert refused["__typename"] == "RunConfigValidationInvalid"
    assert "top_n" in json.dumps(refused["errors"])
    assert platform.graphql(RUN_COUNT, {"name": FLOW})["runsOrError"]["count"] == 0

    # "publish as API": one GraphQL request with the params, as any HTTP client sends it
    launched = _launch(platform, {"region": "EU", "min_amount": 50.0})
    assert launched["__typename"] == "LaunchRunSuccess", launched
    run_id = launched["run"]["runId"]
    run = wait_for(
        "the launched run to finish",
        lambda: (
            (r := platform.graphql(RUN, {"id": run_id})["runOrError"])["status"] in ("SUCCESS", "FAILURE", "CANCELED")
            and r
        ),
        on_timeout=platform.logs,
    )
    assert run["status"] == "SUCCESS", platform.logs()
    tags = {t["key"]: t["value"] for t in run["tags"]}
    assert tags["dp/flow_version"] == v2

    # DisplayResults read back through GraphQL
    data = platform.graphql(DASHBOARD, {"key": {"path": [FLOW, "dashboard"]}})
    latest = data["assetOrError"]["assetMaterializations"][0]
    assert latest["runId"] == run_id
    entries = {e["label"]: e for e in latest["metadataEntries"]}
    expected = expected_dashboard("EU", 50.0, 2)
    assert entries["dagster/row_count"]["intValue"] == len(expected) == 2
    preview = entries["dp/preview"]["mdStr"]  # markdown metadata: the UI renders the table
    assert preview.splitlines()[0] == "| " + " | ".join(expected.columns) + " |"
    for name in expected["name"]:
        assert name in preview
    statistics = json.loads(entries["dp/statistics"]["jsonString"])
    assert statistics["mean"]["revenue"] == pytest.approx(expected["revenue"].mean())  # statistic -> column
    assert statistics["count"]["revenue"] == len(expected)
    assert "| mean |" in entries["statistics"]["mdStr"]  # describe() as a rendered table too

    # the same rows were exported by the flow's FileWriter
    exported = pd.read_csv(platform.home / "data" / "reports" / "maxdp" / "sales_dashboard_EU.csv")
    pd.testing.assert_frame_equal(exported, expected, check_dtype=False)
