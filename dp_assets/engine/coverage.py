"""Which node types the DuckDB engine runs, and what a reader of docs/nodes.md should know
about each (pure data: the docs are generated without importing DuckDB; a test holds it to
``forms.FORMS``)."""

from __future__ import annotations

ENGINES_INTRO = (
    "**Engines.** Every node type runs in pandas. With `policies.engine: duckdb` (on the flow, or "
    "`engine: duckdb` on a node) the types marked *DuckDB* run as DuckDB queries over Arrow: a chain "
    "of ephemeral nodes becomes one query and a stored node is written as Arrow straight from DuckDB, "
    "in pandas' row order (fetched unsorted and put in order without a sort where DuckDB's threads kept "
    "it nearly so). The engine gains most with `policies.ephemeral: intermediate`: at 10M rows the "
    "benchmark flow took 0.16x the pandas script's time so, and 0.95x with every node stored "
    "(docs/benchmarks.md, workload 2b). "
    "The answer is pandas' (same rows, columns, dtypes and values; "
    "tests/nodes/test_duckdb_parity.py), except that the rows are numbered 0, 1, 2... where pandas "
    "keeps a row's index label. Whatever has no faithful DuckDB form — a params choice, an "
    "expression (docs/expressions.md), a column dtype DuckDB reads by other rules (nullable "
    "`Int64`/`boolean`, categoricals, mixed object columns) — runs that node in pandas, with "
    "Arrow in between. Database sources (`TableReader`, `CustomSQLQuery`) read as they do in pandas: DuckDB's "
    "database scanners are extensions, which the engine never installs or loads (it has no network and no "
    "external access beyond the step's Parquet sources), so the DuckDB nodes after them take their frame as Arrow. "
    "A stored DuckDB node reports the metadata its pandas form reports (`rows_kept`, `filled`...), and its "
    "checks run as under pandas, on its output converted once (docs/flow-spec.md, Checks)."
)

DUCKDB_NOTES: dict[str, str] = {
    "FileInput": (
        "one Parquet file, read by DuckDB itself where a query needs it (the engine may read the step's "
        "own source files and nothing else), or by pyarrow where pandas reads a column by other rules "
        "(an integer or boolean with a missing value); a file whose pandas metadata gives `Int64`, "
        "`boolean` or categories, CSV, JSON, Excel, globs, `dtype`, declared `columns` and streams run in pandas"
    ),
    "FilterRows": "keeps the input's row order",
    "SelectColumns": "keeps the input's row order",
    "RenameColumns": "keeps the input's row order",
    "AddModifyColumn": "an expression that reads no column runs in pandas",
    "SortData": "stable sorts (`stable`, `mergesort`); the others run in pandas",
    "Limit": "takes rows in the input's order",
    "Deduplicate": "keeps the input's row order",
    "UnionConcatenate": "inputs stacked in order; columns of different dtypes run in pandas",
    "JoinMerge": (
        "inner, left, right, outer and cross joins on `on` or `left_on`/`right_on` keys, in pandas' row order "
        "(an outer join sorts by its keys, missing last); an outer join on `left_on`/`right_on`, key names both "
        "inputs have in another role, `indicator` and `validate` run in pandas"
    ),
    "GroupAggregate": (
        "rows in key order (`sort: true`) or in the order of each group's first row; an integer `prod` runs in pandas"
    ),
    "HandleMissingValues": (
        "`drop`, `ffill`/`bfill` (with `limit`), `fill` with a value of the column's kind, and `mean`/`median`/`mode` "
        "as a fill with pandas' own statistics (the columns they read are read from DuckDB in the input's row "
        "order), in the input's row order, with the `filled` counts in a stored node's metadata; a fill that "
        "pandas would turn into `object` runs in pandas"
    ),
    "ChangeDataType": (
        "the casts no value can fail: integers and booleans to `int64`, `float64`, `bool` and `str`; floats to "
        "`float64` and `bool`; text to `str`; a zoned time to another zone in the same or a finer unit; the "
        "others (text to numbers, narrower integers, floats to integers or text, nullable, Arrow and category "
        "dtypes) run in pandas"
    ),
    "PivotTable": (
        "DuckDB aggregates the rows into one per cell (GroupAggregate's form), pandas lays out those cells with "
        "the node's own code: same columns, names and dtypes; `size` runs in pandas"
    ),
    "SampleRows": (
        "pandas' own rows for a `random_state`, in pandas' order (the positions are drawn by pandas' `sample` over "
        "the row count and the `weights` column; DuckDB takes those rows); the input is counted first"
    ),
    "Melt": (
        "a block of rows per value column in `value_vars` order, each in the input's order; value columns "
        "of different types (other than integers with floats) run in pandas"
    ),
    "WindowFunctions": "keeps the input's row order; `rank` methods other than min and dense run in pandas",
}


# node types that are DuckDB whatever the policy says
DUCKDB_ONLY = {"SqlTransform": "Engines: DuckDB, whatever `policies.engine` says (its params are DuckDB SQL)."}


def engines_line(type_name: str) -> str:
    if type_name in DUCKDB_ONLY:
        return DUCKDB_ONLY[type_name]
    note = DUCKDB_NOTES.get(type_name)
    return f"Engines: pandas, DuckDB ({note})." if note else "Engines: pandas."
