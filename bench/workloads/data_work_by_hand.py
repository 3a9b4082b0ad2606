"""Workload 2's anchors (``bench.workloads.data_work``): the operations of its flow as a pandas
user writes them. The script chains them as plain calls (:func:`by_hand`); the hand-written
Dagster anchor wraps each in an ``@asset`` (:func:`hand_written_assets`). Same code, same work."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def read_source(folder: Path, name: str) -> Any:
    import pandas as pd

    return pd.read_parquet(folder / f"{name}.parquet")


def join_customers(orders: Any, customers: Any) -> Any:
    return orders.merge(customers, how="inner", on="customer_id")


def join_products(with_customer: Any, products: Any) -> Any:
    return with_customer.merge(products, how="inner", on="product_id")


def keep_rows(df: Any) -> Any:
    return df[(df["quantity"] >= 2) & (df["segment"] != "consumer")]


def add_amount(df: Any) -> Any:
    return df.assign(amount=df["quantity"] * df["unit_price"])


def daily_totals(df: Any) -> Any:
    return (
        df.groupby(["region", "category", "day"])
        .agg(revenue=("amount", "sum"), orders=("order_id", "count"))
        .reset_index()
    )


def running_totals(daily: Any) -> Any:
    ordered = daily.sort_values("day", kind="stable")
    grouped = ordered.groupby(["region", "category"], sort=False, dropna=False)["revenue"]
    return daily.assign(running_revenue=grouped.cumsum(), previous_revenue=grouped.shift(1))


def pivot_by_region(daily: Any) -> Any:
    import pandas as pd

    pivot = pd.pivot_table(daily, index="day", columns="region", values="revenue", aggfunc="sum")
    pivot.columns = [str(c) for c in pivot.columns]
    return pivot.reset_index()


def write_result(folder: Path, out_prefix: str, name: str, df: Any) -> None:
    df.to_parquet(folder / "out" / f"{out_prefix}_{name}.parquet", index=False)


def by_hand(folder: Path, out_prefix: str) -> None:
    """The same work as a pandas user writes it."""
    df = join_customers(read_source(folder, "orders"), read_source(folder, "customers"))
    df = join_products(df, read_source(folder, "products"))
    daily = daily_totals(add_amount(keep_rows(df)))
    del df
    write_result(folder, out_prefix, "running", running_totals(daily))
    write_result(folder, out_prefix, "pivot", pivot_by_region(daily))


def hand_written_assets(folder: Path) -> list[Any]:
    """The same work as a Dagster user writes it: an ``@asset`` per operation, Dagster's default
    IO manager (a pickle per asset) between them."""
    import dagster as dg

    @dg.asset
    def orders() -> Any:
        return read_source(folder, "orders")

    @dg.asset
    def customers() -> Any:
        return read_source(folder, "customers")

    @dg.asset
    def products() -> Any:
        return read_source(folder, "products")

    @dg.asset
    def with_customer(orders: Any, customers: Any) -> Any:
        return join_customers(orders, customers)

    @dg.asset
    def with_product(with_customer: Any, products: Any) -> Any:
        return join_products(with_customer, products)

    @dg.asset
    def kept(with_product: Any) -> Any:
        return keep_rows(with_product)

    @dg.asset
    def priced(kept: Any) -> Any:
        return add_amount(kept)

    @dg.asset
    def daily(priced: Any) -> Any:
        return daily_totals(priced)

    @dg.asset
    def running(daily: Any) -> Any:
        return running_totals(daily)

    @dg.asset
    def by_region(daily: Any) -> Any:
        return pivot_by_region(daily)

    @dg.asset
    def write_running(running: Any) -> None:
        write_result(folder, "dagster", "running", running)

    @dg.asset
    def write_pivot(by_region: Any) -> None:
        write_result(folder, "dagster", "pivot", by_region)

    return [
        orders,
        customers,
        products,
        with_customer,
        with_product,
        kept,
        priced,
        daily,
        running,
        by_region,
        write_running,
        write_pivot,
    ]
