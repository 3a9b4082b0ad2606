"""The DuckDB form of SampleRows: pandas' own rows for a seed, taken by DuckDB.

DuckDB's ``USING SAMPLE`` draws other rows than ``DataFrame.sample`` for the same seed, so the
rows are chosen as pandas chooses them: which positions ``sample`` picks depends only on the
number of rows, the weights and the random state, so ``Series.sample`` over the positions
(with the weights column, the only column read into Python) gives the positions pandas would
pick, in its order. DuckDB then takes those rows: the input's rows numbered in their order and
joined to the picks. The input is counted first (one more pass over it when it is a query).
Whatever pandas refuses (``n`` above the rows without ``replace``, negative weights...) runs in
pandas, which reports it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .errors import NotSupported
from .relation import ROW_ORDER, Relation
from .sql_expressions import quote_identifier

R = ROW_ORDER
PICK = f"{ROW_ORDER}_pick"  # the position a pick takes (a reserved name: forms never emit it)


def sample_rows(params: Any, inputs: dict[str, Relation], flow_params: Mapping[str, Any], engine: Any) -> str:
    rel = inputs["input"]
    if PICK in rel.names:
        raise NotSupported(f"a column named {PICK}")
    if params.weights is not None and params.weights not in rel.kinds:
        raise NotSupported("weights that pandas reads by its own rules")
    positions = _positions(params, rel, engine)
    picks = engine.register_picks(positions)
    numbered = f"SELECT *, row_number() OVER (ORDER BY {R}) - 1 AS {PICK} FROM ({rel.sql})"
    return (
        f"SELECT rows.* EXCLUDE ({R}, {PICK}), picks.{R} FROM ({numbered}) AS rows "
        f"JOIN {picks} AS picks ON rows.{PICK} = picks.{PICK}"
    )


def _positions(params: Any, rel: Relation, engine: Any) -> Any:
    """The input positions pandas' ``sample`` picks, in its order."""
    import pandas as pd

    if params.weights is None:
        ((count,),) = engine.fetch_all(f"SELECT count(*) FROM ({rel.sql})")
        rows: Any = pd.RangeIndex(count).to_series()
        weights = None
    else:
        column = quote_identifier(params.weights)
        table = engine.fetch_arrow(f"SELECT {column} AS w FROM ({rel.sql}) ORDER BY {R}")
        rows = table.to_pandas()
        weights = "w"
    try:
        chosen = rows.sample(
            n=params.n, frac=params.frac, replace=params.replace, weights=weights, random_state=params.random_state
        )
    except (ValueError, TypeError) as err:  # pandas reports it when it runs the node
        raise NotSupported(f"pandas refuses the sample: {err}") from err
    return chosen.index.to_numpy()
