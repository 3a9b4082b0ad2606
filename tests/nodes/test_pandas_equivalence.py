"""Every in-memory node type gives the same answer as the same operation done directly in pandas.

One table of cases with ids ``<NodeType>-<case>``; the inputs cover nulls, empty frames, mixed
dtypes, pandas 3's ``str`` dtype and time zones. Database, HTTP and file nodes are compared with
pandas in their own test files (``pd.read_sql_table``, ``pd.json_normalize``, ``pd.read_csv``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import dagster as dg
import pandas as pd
import pytest
from node_helpers import make_ctx, run_node

from dp_assets.catalog.base import SKIPPED, NodeOutputs


def orders() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "order_id": [1, 2, 3, 4, 5, 6],
            "region": pd.Series(["EU", "US", None, "EU", "US", "EU"], dtype="str"),
            "amount": [10.0, None, 7.5, 10.0, 3.0, 12.5],
            "qty": [1, 2, 3, 1, 5, 2],
            "ordered_at": pd.to_datetime(
                [
                    "2024-01-01 10:00",
                    "2024-01-02 00:00",
                    "2024-01-02 00:00",
                    "2024-01-03 00:00",
                    None,
                    "2024-01-05 00:00",
                ]
            ).tz_localize("Asia/Seoul"),
            "tags": pd.Series(["a b", "c", None, "a b c", "", "d"], dtype="str"),
            "mixed": pd.Series([1, "two", 3.0, None, "5", True], dtype=object),
        }
    )


def empty() -> pd.DataFrame:
    return orders().iloc[0:0]


def one(df: pd.DataFrame) -> dict[str, pd.DataFrame]:
    return {"input": df}


Case = tuple[str, dict[str, Any], Callable[[], dict[str, Any]], Callable[[dict[str, Any]], Any]]


def case(
    type_name: str,
    name: str,
    params: dict[str, Any],
    inputs: Callable[[], dict[str, Any]],
    expected: Callable[[dict[str, Any]], Any],
) -> Any:
    return pytest.param(type_name, params, inputs, expected, id=f"{type_name}-{name}")


def _window_expected(df: pd.DataFrame) -> pd.DataFrame:
    ordered = df.sort_values("ordered_at", kind="stable")
    grouped = ordered.groupby("region", sort=False, dropna=False)
    return df.assign(
        rn=grouped.cumcount() + 1,
        rk=grouped["ordered_at"].rank(method="min"),
        prev=grouped["amount"].shift(1),
        nxt=grouped["amount"].shift(-1),
        running=grouped["qty"].cumsum(),
        top=grouped["amount"].cummax(),
        avg2=grouped["qty"].rolling(2, min_periods=1).mean().droplevel(0),
    )


def sales() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "region": pd.Series(["EU", "US", None, "EU", "US", "EU", "APAC"], dtype="str"),
            "kind": pd.Series(["a", "b", "a", "a", "c", "b", "a"], dtype="str"),
            "amount": [10.0, None, 7.5, 2.0, 3.0, None, 1.0],
            "units": [1, 2, 3, 1, 5, 2, 2],
        }
    )


def _flat(table: pd.DataFrame) -> pd.DataFrame:
    """A pivot's columns as the node names them ('_'-joined levels), its index as columns."""
    names = ["_".join(map(str, c)) if isinstance(c, tuple) else str(c) for c in table.columns]
    return table.set_axis(names, axis=1).reset_index()


def _body_sum(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.groupby("region").agg(total=("qty", "sum")).reset_index()


CASES = [
    # --- foundation nodes ---
    case(
        "StaticData",
        "records",
        {"rows": [{"a": 1, "b": "x"}, {"a": None, "b": None}]},
        dict,
        lambda i: pd.DataFrame.from_records([{"a": 1, "b": "x"}, {"a": None, "b": None}]),
    ),
    case("StaticData", "empty", {"rows": []}, dict, lambda i: pd.DataFrame.from_records([])),
    case(
        "SelectColumns",
        "tz-and-str",
        {"columns": ["ordered_at", "region"]},
        lambda: one(orders()),
        lambda i: i["input"][["ordered_at", "region"]],
    ),
    case(
        "SortData",
        "nulls-last",
        {"by": ["region", "amount"], "ascending": [True, False]},
        lambda: one(orders()),
        lambda i: i["input"].sort_values(
            ["region", "amount"], ascending=[True, False], kind="stable", ignore_index=True
        ),
    ),
    case(
        "SortData",
        "empty",
        {"by": "amount"},
        lambda: one(empty()),
        lambda i: i["input"].sort_values("amount", kind="stable", ignore_index=True),
    ),
    case(
        "GroupAggregate",
        "sum-count",
        {"by": "region", "agg": {"t": ["amount", "sum"], "n": ["order_id", "count"]}},
        lambda: one(orders()),
        lambda i: i["input"].groupby("region").agg(t=("amount", "sum"), n=("order_id", "count")).reset_index(),
    ),
    case(
        "GroupAggregate",
        "sorted-keys-missing-kept",
        {"by": ["region", "qty"], "agg": {"t": ["amount", "sum"]}, "dropna": False},
        lambda: one(orders()),
        lambda i: i["input"].groupby(["region", "qty"], dropna=False).agg(t=("amount", "sum")).reset_index(),
    ),
    case(
        "GroupAggregate",
        "global-no-by",
        {
            "agg": {
                "t": ["amount", "sum"],
                "n": ["order_id", "count"],
                "first": ["region", "first"],
                "latest": ["ordered_at", "max"],
                "avg": ["qty", "mean"],
            }
        },
        lambda: one(orders()),
        lambda i: (
            i["input"]
            .groupby(lambda _: 0)
            .agg(
                t=("amount", "sum"),
                n=("order_id", "count"),
                first=("region", "first"),
                latest=("ordered_at", "max"),
                avg=("qty", "mean"),
            )
            .reset_index(drop=True)
        ),
    ),
    case(
        "GroupAggregate",
        "global-empty-by-list",
        {
            "by": [],
            "agg": {
                "t": ["amount", "sum"],
                "n": ["qty", "count"],
                "size": ["qty", "size"],
                "avg": ["qty", "mean"],
                "low": ["ordered_at", "min"],
            },
        },
        lambda: one(empty()),
        lambda i: pd.DataFrame(
            {
                "t": [i["input"]["amount"].sum()],
                "n": [i["input"]["qty"].count()],
                "size": [i["input"]["qty"].size],
                "avg": [i["input"]["qty"].mean()],
                "low": pd.Series([pd.NaT], dtype=i["input"]["ordered_at"].dtype),
            }
        ),
    ),
    case("Limit", "head", {"n": 3}, lambda: one(orders()), lambda i: i["input"].head(3)),
    case("Limit", "offset", {"n": 2, "offset": 3}, lambda: one(orders()), lambda i: i["input"].iloc[3:5]),
    case("Limit", "past-the-end", {"n": 10, "offset": 5}, lambda: one(orders()), lambda i: i["input"].iloc[5:15]),
    case("Limit", "zero-and-empty", {"n": 0}, lambda: one(empty()), lambda i: i["input"].head(0)),
    case(
        "JoinMerge",
        "left",
        {"how": "left", "on": "region"},
        lambda: {
            "left": orders(),
            "right": pd.DataFrame({"region": pd.Series(["EU", "US"], dtype="str"), "target": [10, 8]}),
        },
        lambda i: pd.merge(i["left"], i["right"], how="left", on="region"),
    ),
    # --- sampling, renaming, types ---
    case(
        "SampleRows",
        "n-seeded",
        {"n": 3, "random_state": 7},
        lambda: one(orders()),
        lambda i: i["input"].sample(n=3, random_state=7),
    ),
    case(
        "SampleRows",
        "frac-replace",
        {"frac": 1.5, "replace": True, "random_state": 1, "ignore_index": True},
        lambda: one(orders()),
        lambda i: i["input"].sample(frac=1.5, replace=True, random_state=1, ignore_index=True),
    ),
    case(
        "SampleRows",
        "weighted",
        {"n": 2, "weights": "amount", "random_state": 11},
        lambda: one(orders()),
        lambda i: i["input"].sample(n=2, weights="amount", random_state=11),
    ),
    case(
        "SampleRows",
        "after-filter-replace",
        {"n": 8, "replace": True, "random_state": 5},
        lambda: one(orders().iloc[[5, 1, 3]]),
        lambda i: i["input"].sample(n=8, replace=True, random_state=5),
    ),
    case(
        "SampleRows",
        "empty",
        {"frac": 0.5, "random_state": 1},
        lambda: one(empty()),
        lambda i: i["input"].sample(frac=0.5, random_state=1),
    ),
    case(
        "RenameColumns",
        "tz-column",
        {"columns": {"ordered_at": "at", "mixed": "m"}},
        lambda: one(orders()),
        lambda i: i["input"].rename(columns={"ordered_at": "at", "mixed": "m"}),
    ),
    case(
        "RenameColumns",
        "ignore-missing",
        {"columns": {"nope": "x"}, "errors": "ignore"},
        lambda: one(empty()),
        lambda i: i["input"].rename(columns={"nope": "x"}),
    ),
    case(
        "ChangeDataType",
        "nullable-int-and-str",
        {"dtype": {"amount": "Float64", "qty": "str", "order_id": "Int32"}},
        lambda: one(orders()),
        lambda i: i["input"].astype({"amount": "Float64", "qty": "str", "order_id": "Int32"}),
    ),
    case(
        "ChangeDataType",
        "tz-convert",
        {"dtype": {"ordered_at": "datetime64[ns, UTC]"}},
        lambda: one(orders()),
        lambda i: i["input"].astype({"ordered_at": "datetime64[ns, UTC]"}),
    ),
    case(
        "ChangeDataType",
        "coerce-mixed",
        {"dtype": {"mixed": "float64"}, "errors": "coerce"},
        lambda: one(orders()),
        lambda i: i["input"].assign(mixed=pd.to_numeric(i["input"]["mixed"], errors="coerce").astype("float64")),
    ),
    case(
        "ChangeDataType",
        "numbers-bools-text",
        {"dtype": {"order_id": "float64", "qty": "str", "amount": "bool", "paid": "int", "region": "str"}},
        lambda: one(orders().assign(paid=[True, False, True, True, False, True])),
        lambda i: i["input"].astype(
            {"order_id": "float64", "qty": "str", "amount": "bool", "paid": "int", "region": "str"}
        ),
    ),
    case(
        "ChangeDataType",
        "bool-to-str-int-to-bool",
        {"dtype": {"paid": "str", "qty": "bool", "amount": "float64"}, "errors": "ignore"},
        lambda: one(orders().assign(paid=[True, False, True, True, False, True], qty=[0, 2, 0, 1, -5, 2])),
        lambda i: i["input"].astype({"paid": "str", "qty": "bool", "amount": "float64"}),
    ),
    case(
        "ChangeDataType",
        "coerce-cannot-fail",
        {
            "dtype": {"qty": "float64", "region": "str", "ordered_at": "datetime64[ns, Europe/Berlin]"},
            "errors": "coerce",
        },
        lambda: one(orders()),
        lambda i: i["input"].assign(
            qty=pd.to_numeric(i["input"]["qty"], errors="coerce").astype("float64"),
            region=i["input"]["region"].astype("str"),
            ordered_at=i["input"]["ordered_at"].dt.tz_convert("Europe/Berlin"),
        ),
    ),
    case(
        "ChangeDataType",
        "empty",
        {"dtype": {"qty": "float64"}},
        lambda: one(empty()),
        lambda i: i["input"].astype({"qty": "float64"}),
    ),
    case(
        "SplitColumn",
        "n-and-names",
        {"column": "tags", "pat": " ", "n": 1, "names": ["first", "rest"]},
        lambda: one(orders()),
        lambda i: i["input"].assign(
            first=i["input"]["tags"].str.split(" ", n=1, expand=True)[0],
            rest=i["input"]["tags"].str.split(" ", n=1, expand=True)[1],
        ),
    ),
    case(
        "SplitColumn",
        "all-parts-drop",
        {"column": "tags", "pat": " ", "drop": True},
        lambda: one(orders()),
        lambda i: pd.concat(
            [
                i["input"].drop(columns="tags"),
                i["input"]["tags"].str.split(" ", expand=True).rename(columns=lambda c: f"tags_{c}"),
            ],
            axis=1,
        ),
    ),
    case(
        "MapValues",
        "keep-unmapped",
        {"column": "region", "mapping": {"EU": "Europe"}},
        lambda: one(orders()),
        lambda i: i["input"].assign(region=i["input"]["region"].replace({"EU": "Europe"})),
    ),
    case(
        "MapValues",
        "default-numeric-keys",
        {"column": "qty", "mapping": {"1": "one", "2": "two"}, "default": "many", "output": "qty_text"},
        lambda: one(orders()),
        lambda i: i["input"].assign(qty_text=i["input"]["qty"].map(lambda v: {1: "one", 2: "two"}.get(v, "many"))),
    ),
    # --- missing values and duplicates ---
    case(
        "HandleMissingValues",
        "drop-subset",
        {"strategy": "drop", "subset": ["amount", "region"]},
        lambda: one(orders()),
        lambda i: i["input"].dropna(subset=["amount", "region"]),
    ),
    case(
        "HandleMissingValues",
        "drop-thresh",
        {"strategy": "drop", "thresh": 7},
        lambda: one(orders()),
        lambda i: i["input"].dropna(thresh=7),
    ),
    case(
        "HandleMissingValues",
        "fill-per-column",
        {"strategy": "fill", "value": {"amount": 0, "region": "??"}},
        lambda: one(orders()),
        lambda i: i["input"].fillna({"amount": 0, "region": "??"}),
    ),
    case(
        "HandleMissingValues",
        "ffill-subset",
        {"strategy": "ffill", "subset": ["amount", "ordered_at"]},
        lambda: one(orders()),
        lambda i: i["input"].assign(amount=i["input"]["amount"].ffill(), ordered_at=i["input"]["ordered_at"].ffill()),
    ),
    case(
        "HandleMissingValues",
        "bfill-limit",
        {"strategy": "bfill", "limit": 1},
        lambda: one(orders()),
        lambda i: i["input"].bfill(limit=1),
    ),
    case(
        "HandleMissingValues",
        "mean",
        {"strategy": "mean", "subset": ["amount"]},
        lambda: one(orders()),
        lambda i: i["input"].fillna({"amount": i["input"]["amount"].mean()}),
    ),
    case(
        "HandleMissingValues",
        "median-all-numeric",
        {"strategy": "median"},
        lambda: one(orders()),
        lambda i: i["input"].fillna(i["input"].median(numeric_only=True).to_dict()),
    ),
    case(
        "HandleMissingValues",
        "mode-str",
        {"strategy": "mode", "subset": ["region"]},
        lambda: one(orders()),
        lambda i: i["input"].fillna({"region": i["input"]["region"].mode().iloc[0]}),
    ),
    case(
        "HandleMissingValues",
        "mean-empty",
        {"strategy": "mean", "subset": ["amount"]},
        lambda: one(empty()),
        lambda i: i["input"],
    ),
    case(
        "Deduplicate",
        "subset-last",
        {"subset": ["region"], "keep": "last"},
        lambda: one(orders()),
        lambda i: i["input"].drop_duplicates(subset=["region"], keep="last"),
    ),
    case(
        "Deduplicate",
        "drop-all-dupes",
        {"subset": "amount", "keep": False, "ignore_index": True},
        lambda: one(orders()),
        lambda i: i["input"].drop_duplicates(subset="amount", keep=False, ignore_index=True),
    ),
    case(
        "Deduplicate", "empty", {}, lambda: one(empty().drop(columns="mixed")), lambda i: i["input"].drop_duplicates()
    ),
    # --- reshaping ---
    case(
        "PivotTable",
        "sum-fill",
        {"index": "region", "columns": "qty", "values": "amount", "aggfunc": "sum", "fill_value": 0},
        lambda: one(orders()),
        lambda i: (
            pd.pivot_table(i["input"], index="region", columns="qty", values="amount", aggfunc="sum", fill_value=0)
            .rename(columns=str)
            .rename_axis(columns=None)
            .reset_index()
        ),
    ),
    case(
        "PivotTable",
        "two-aggs",
        {"index": "region", "columns": "qty", "values": "amount", "aggfunc": ["sum", "count"]},
        lambda: one(orders()),
        lambda i: (lambda t: t.set_axis(["_".join(map(str, c)) for c in t.columns], axis=1).reset_index())(
            pd.pivot_table(i["input"], index="region", columns="qty", values="amount", aggfunc=["sum", "count"])
        ),
    ),
    case(
        "PivotTable",
        "declared-columns",
        {"index": "region", "columns": "qty", "values": "amount", "aggfunc": "sum", "columns_values": [5, 3, 2, 1, 9]},
        lambda: one(orders()),
        lambda i: (
            pd.pivot_table(i["input"], index="region", columns="qty", values="amount", aggfunc="sum")
            .reindex(columns=[5, 3, 2, 1, 9])
            .astype("float64")
            .rename(columns=str)
            .rename_axis(columns=None)
            .reset_index()
        ),
    ),
    case(
        "PivotTable",
        "declared-two-aggs-fill",
        {
            "index": "region",
            "columns": "qty",
            "values": ["order_id"],
            "aggfunc": ["count", "sum"],
            "fill_value": 0,
            "columns_values": [1, 2, 3, 5, 7],
        },
        lambda: one(orders()),
        lambda i: (lambda t: t.set_axis(["_".join(map(str, c)) for c in t.columns], axis=1).reset_index())(
            pd.pivot_table(
                i["input"], index="region", columns="qty", values=["order_id"], aggfunc=["count", "sum"], fill_value=0
            ).reindex(
                columns=pd.MultiIndex.from_product([["count", "sum"], ["order_id"], [1, 2, 3, 5, 7]]), fill_value=0
            )
        ),
    ),
    case(
        "PivotTable",
        "mean-two-values",
        {"index": "region", "columns": "kind", "values": ["amount", "units"], "aggfunc": "mean"},
        lambda: one(sales()),
        lambda i: _flat(pd.pivot_table(i["input"], index="region", columns="kind", values=["amount", "units"])),
    ),
    case(
        "PivotTable",
        "count-keep-null-keys-unsorted",
        {"index": "region", "columns": "kind", "values": "amount", "aggfunc": "count", "dropna": False, "sort": False},
        lambda: one(sales()),
        lambda i: _flat(
            pd.pivot_table(
                i["input"], index="region", columns="kind", values="amount", aggfunc="count", dropna=False, sort=False
            )
        ),
    ),
    case(
        "PivotTable",
        "max-two-keys-fill",
        {"index": ["region", "kind"], "columns": "units", "values": "amount", "aggfunc": "max", "fill_value": -1},
        lambda: one(sales()),
        lambda i: _flat(
            pd.pivot_table(
                i["input"], index=["region", "kind"], columns="units", values="amount", aggfunc="max", fill_value=-1
            )
        ),
    ),
    case(
        "PivotTable",
        "nunique-all-values",
        {"index": "kind", "columns": "region", "aggfunc": "nunique"},
        lambda: one(sales()),
        lambda i: _flat(pd.pivot_table(i["input"], index="kind", columns="region", aggfunc="nunique")),
    ),
    case(
        "PivotTable",
        "sum-empty",
        {"index": "region", "columns": "kind", "values": "units", "aggfunc": "sum"},
        lambda: one(sales().iloc[0:0]),
        lambda i: _flat(pd.pivot_table(i["input"], index="region", columns="kind", values="units", aggfunc="sum")),
    ),
    case(
        "Melt",
        "ids-and-values",
        {"id_vars": ["order_id"], "value_vars": ["amount", "qty"], "var_name": "measure"},
        lambda: one(orders()),
        lambda i: i["input"].melt(id_vars=["order_id"], value_vars=["amount", "qty"], var_name="measure"),
    ),
    case(
        "Melt",
        "tz-values",
        {"id_vars": "order_id", "value_vars": "ordered_at"},
        lambda: one(orders()),
        lambda i: i["input"].melt(id_vars="order_id", value_vars="ordered_at"),
    ),
    case(
        "Melt",
        "empty",
        {"id_vars": "order_id", "value_vars": ["qty"]},
        lambda: one(empty()),
        lambda i: i["input"].melt(id_vars="order_id", value_vars=["qty"]),
    ),
    case(
        "WindowFunctions",
        "partitioned-tz-order",
        {
            "partition_by": "region",
            "order_by": "ordered_at",
            "functions": [
                {"output": "rn", "function": "row_number"},
                {"output": "rk", "function": "rank"},
                {"output": "prev", "function": "lag", "column": "amount"},
                {"output": "nxt", "function": "lead", "column": "amount"},
                {"output": "running", "function": "cumsum", "column": "qty"},
                {"output": "top", "function": "cummax", "column": "amount"},
                {"output": "avg2", "function": "rolling_mean", "column": "qty", "window": 2, "min_periods": 1},
            ],
        },
        lambda: one(orders()),
        lambda i: _window_expected(i["input"]),
    ),
    case(
        "WindowFunctions",
        "no-partition-dense",
        {
            "order_by": "amount",
            "ascending": False,
            "functions": [
                {"output": "d", "function": "dense_rank"},
                {"output": "s", "function": "rolling_sum", "column": "qty", "window": 3},
            ],
        },
        lambda: one(orders()),
        lambda i: i["input"].assign(
            d=i["input"]["amount"].rank(method="dense", ascending=False),
            s=i["input"].sort_values("amount", ascending=False, kind="stable")["qty"].rolling(3).sum(),
        ),
    ),
    case(
        "WindowFunctions",
        "empty",
        {"partition_by": "region", "order_by": "qty", "functions": [{"output": "rn", "function": "row_number"}]},
        lambda: one(empty()),
        lambda i: i["input"].assign(rn=pd.Series([], dtype="int64")),
    ),
    case(
        "UnionConcatenate",
        "outer",
        {},
        lambda: {"a": orders(), "b": pd.DataFrame({"region": ["XX"], "extra": [1]})},
        lambda i: pd.concat([i["a"], i["b"]], ignore_index=True),
    ),
    case(
        "UnionConcatenate",
        "inner-keep-index",
        {"join": "inner", "ignore_index": False},
        lambda: {"a": orders(), "b": orders().iloc[:2][["region", "qty"]], "c": empty()},
        lambda i: pd.concat([i["a"], i["b"], i["c"]], join="inner"),
    ),
    # --- control flow ---
    case(
        "ConditionalBranch",
        "params-true",
        {"condition": "params.limit > 3"},
        lambda: one(orders()),
        lambda i: {"true": i["input"], "false": SKIPPED},
    ),
    case(
        "ConditionalBranch",
        "any-rows-false",
        {"condition": "amount > 100"},
        lambda: one(orders()),
        lambda i: {"true": SKIPPED, "false": i["input"]},
    ),
    case(
        "ConditionalBranch",
        "all-rows-empty",
        {"condition": "amount > 100", "rows": "all"},
        lambda: one(empty()),
        lambda i: {"true": i["input"], "false": SKIPPED},
    ),
    case(
        "ConditionalBranch",
        "split-nulls-false",
        {"condition": "amount >= 10", "rows": "split"},
        lambda: one(orders()),
        lambda i: {"true": i["input"][i["input"]["amount"] >= 10], "false": i["input"][~(i["input"]["amount"] >= 10)]},
    ),
    case("Merge", "first-ran", {}, lambda: {"a": SKIPPED, "b": orders()}, lambda i: i["b"]),
    case(
        "Merge",
        "union",
        {"how": "union"},
        lambda: {"a": orders(), "b": SKIPPED, "c": empty()},
        lambda i: pd.concat([i["a"], i["c"]], ignore_index=True),
    ),
    case("Merge", "none-ran", {}, lambda: {"a": SKIPPED, "b": SKIPPED}, lambda i: SKIPPED),
    case(
        "TryCatch",
        "ok",
        {
            "body": [
                {"id": "f", "type": "HandleMissingValues", "params": {"strategy": "drop"}},
                {"id": "s", "type": "SelectColumns", "params": {"columns": ["order_id"]}},
            ]
        },
        lambda: one(orders()),
        lambda i: {"result": i["input"].dropna()[["order_id"]], "catch": SKIPPED},
    ),
    case(
        "TryCatch",
        "caught",
        {"body": [{"id": "cast", "type": "ChangeDataType", "params": {"dtype": {"mixed": "int64"}}}]},
        lambda: one(orders()),
        lambda i: {"result": SKIPPED, "catch": ["cast", "ValueError"]},
    ),
    case(
        "ForEach",
        "per-group",
        {
            "group_by": "region",
            "max_workers": 2,
            "body": [
                {"id": "sum", "type": "GroupAggregate", "params": {"by": "region", "agg": {"total": ["qty", "sum"]}}}
            ],
        },
        lambda: one(orders()),
        lambda i: {
            "result": pd.concat([_body_sum(g) for _, g in i["input"].groupby("region", sort=False)], ignore_index=True),
            "failed": SKIPPED,
        },
    ),
    case(
        "ForEach",
        "per-row-failures",
        {"body": [{"id": "cast", "type": "ChangeDataType", "params": {"dtype": {"mixed": "float64"}}}]},
        lambda: one(orders()),
        lambda i: {
            "result": pd.concat(
                [i["input"].iloc[[k]].astype({"mixed": "float64"}) for k in (0, 2, 3, 4, 5)], ignore_index=True
            ),
            "failed": [1],
        },
    ),
    case(
        "ForEach",
        "empty",
        {"group_by": "region", "body": [{"id": "s", "type": "SelectColumns", "params": {"columns": ["qty"]}}]},
        lambda: one(empty()),
        lambda i: {"result": i["input"][["qty"]], "failed": SKIPPED},
    ),
    case("DisplayResults", "passes-through", {"n": 3}, lambda: one(orders()), lambda i: i["input"]),
    case(
        "WebhookListener",
        "records",
        {"record_path": "data.items"},
        dict,
        lambda i: pd.json_normalize([{"id": 1, "who": {"name": "a"}}, {"id": 2, "who": {"name": None}}]),
    ),
]


def _assert_same(actual: Any, expected: Any) -> None:
    if expected is SKIPPED:
        assert actual is SKIPPED
    elif isinstance(expected, list):  # error rows / failed items
        assert isinstance(actual, pd.DataFrame)
        first = actual.iloc[0].tolist()
        assert first[: len(expected)] == expected or actual["row"].tolist() == expected
    else:
        pd.testing.assert_frame_equal(actual, expected)


@pytest.mark.parametrize(("type_name", "params", "inputs", "expected"), CASES)
def test_node_matches_pandas(type_name: str, params: dict[str, Any], inputs: Callable, expected: Callable) -> None:
    ctx = make_ctx(
        flow_params={
            "limit": 5,
            "event": {"data": {"items": [{"id": 1, "who": {"name": "a"}}, {"id": 2, "who": {"name": None}}]}},
        }
    )
    given = inputs()
    snapshot = {k: v.copy() for k, v in given.items() if isinstance(v, pd.DataFrame)}
    result = run_node(type_name, params, given, ctx)
    want = expected(inputs())
    if isinstance(result, NodeOutputs):
        assert set(result.values) == set(want)
        for name, value in want.items():
            _assert_same(result.values[name], value)
    else:
        _assert_same(result, want)
    for name, before in snapshot.items():  # nodes never modify their inputs
        pd.testing.assert_frame_equal(given[name], before)


def test_display_results_statistics_are_pandas_describe() -> None:
    """DisplayResults puts df.describe() into the materialisation metadata."""
    ctx = make_ctx()
    df = orders().drop(columns="mixed")
    run_node("DisplayResults", {"n": 2}, {"input": df}, ctx)
    stats = ctx.metadata["dp/statistics"]
    expected = df.describe(include="all")
    assert set(stats) == {str(i) for i in expected.index}
    assert stats["mean"]["qty"] == pytest.approx(expected.loc["mean", "qty"])
    # markdown metadata, so the UI renders the tables
    preview, table = ctx.metadata["dp/preview"], ctx.metadata["statistics"]
    assert isinstance(preview, dg.MarkdownMetadataValue) and isinstance(table, dg.MarkdownMetadataValue)
    assert "| order_id |" in preview.value and "mean" in table.value


def test_display_results_without_columns() -> None:
    ctx = make_ctx()
    run_node("DisplayResults", {}, {"input": pd.DataFrame()}, ctx)
    assert "dp/statistics" not in ctx.metadata


def test_foreach_failed_items_carry_error_and_input() -> None:
    """ForEach collects each failed item with its error and its rows, also in the metadata."""
    ctx = make_ctx()
    result = run_node(
        "ForEach",
        {"body": [{"id": "cast", "type": "ChangeDataType", "params": {"dtype": {"mixed": "float64"}}}]},
        {"input": orders()},
        ctx,
    )
    failed = result.values["failed"]
    assert failed[["row", "node", "error_type"]].values.tolist() == [[1, "cast", "ValueError"]]
    assert '"mixed":"two"' in failed.loc[0, "input"]
    assert ctx.metadata["items"] == 6 and ctx.metadata["items_failed"] == 1
    with pytest.raises(RuntimeError, match="1 of 6 items failed"):
        run_node(
            "ForEach",
            {
                "max_failed": 0,
                "body": [{"id": "cast", "type": "ChangeDataType", "params": {"dtype": {"mixed": "float64"}}}],
            },
            {"input": orders()},
        )


def test_webhook_listener_needs_an_event() -> None:
    with pytest.raises(ValueError, match="not started by an event"):
        run_node("WebhookListener", {}, {}, make_ctx(flow_params={"event": None}))
    out = run_node("WebhookListener", {"required": False, "columns": {"id": "integer"}}, {}, make_ctx())
    assert list(out.columns) == ["id"] and out.empty
    one_row = run_node("WebhookListener", {}, {}, make_ctx(flow_params={"event": {"a": 1, "b": {"c": "x"}}}))
    pd.testing.assert_frame_equal(one_row, pd.json_normalize([{"a": 1, "b": {"c": "x"}}]))


def test_webhook_listener_converts_its_declared_columns_as_file_input_does() -> None:
    """An event's records are outside data: the declared schema (what `dp validate` tells the nodes
    downstream) is applied, not just announced, and a value or column that does not fit fails the
    run naming it, not a node further on with a dtype error."""
    records = [
        {"order_id": 1, "region": "EU", "amount": 10, "paid": "yes", "at": "2026-01-02T10:00:00"},
        {"order_id": "2", "region": "US", "amount": None, "paid": False, "at": "2026-01-03"},
    ]
    columns = {"order_id": "integer", "region": "string", "amount": "float", "paid": "boolean", "at": "datetime"}
    ctx = make_ctx(flow_params={"event": {"orders": records}})
    out = run_node("WebhookListener", {"record_path": "orders", "columns": columns}, {}, ctx)
    expected = pd.json_normalize(records).assign(
        order_id=lambda d: pd.to_numeric(d["order_id"]).astype("Int64"),
        region=lambda d: d["region"].astype("str"),
        amount=lambda d: d["amount"].astype("float64"),
        paid=pd.array([True, False], dtype="boolean"),
        at=lambda d: pd.to_datetime(d["at"], format="ISO8601"),
    )
    pd.testing.assert_frame_equal(out, expected)

    empty = run_node(
        "WebhookListener", {"required": False, "columns": columns}, {}, make_ctx(flow_params={"event": None})
    )
    assert empty.empty and str(empty["order_id"].dtype) == "Int64" and str(empty["amount"].dtype) == "float64"

    bad = make_ctx(flow_params={"event": {"orders": [{"order_id": "x", "region": "EU", "amount": 1.0}]}})
    with pytest.raises(
        ValueError,
        match=r"flow 'flow', node 'node', event param 'event', column 'order_id': 'x' \(row 1\) is not a whole number",
    ):
        run_node("WebhookListener", {"record_path": "orders", "columns": {"order_id": "integer"}}, {}, bad)
    lacking = make_ctx(flow_params={"event": {"orders": [{"region": "EU"}]}})
    with pytest.raises(ValueError, match=r"no record has the declared column\(s\) amount \(the records have: region\)"):
        run_node("WebhookListener", {"record_path": "orders", "columns": {"amount": "float"}}, {}, lacking)
