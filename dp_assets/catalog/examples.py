"""One example node per node type: shown in docs/nodes.md and validated by the tests."""

from __future__ import annotations

from typing import Any

NODE_EXAMPLES: dict[str, dict[str, Any]] = {
    "StaticData": {"id": "regions", "type": "StaticData",
                   "params": {"rows": [{"region": "EU", "target": 10}, {"region": "US", "target": 8}]}},
    "FileInput": {"id": "orders", "type": "FileInput",
                  "params": {"path": "orders/*.csv", "parse_dates": ["ordered_at"],
                             "columns": {"order_id": "integer", "region": "string", "amount": "float"}}},
    "SelectColumns": {"id": "slim", "type": "SelectColumns", "inputs": ["orders"],
                      "params": {"columns": ["order_id", "amount"]}},
    "SortData": {"id": "ranked", "type": "SortData", "inputs": ["orders"],
                 "params": {"by": ["region", "amount"], "ascending": [True, False]}},
    "GroupAggregate": {"id": "by_region", "type": "GroupAggregate", "inputs": ["orders"],
                       "params": {"by": "region", "agg": {"total": ["amount", "sum"], "orders": ["order_id", "count"]}}},
    "JoinMerge": {"id": "with_targets", "type": "JoinMerge", "inputs": {"left": "by_region", "right": "regions"},
                  "params": {"how": "left", "on": "region"}},
    "FilterRows": {"id": "big_orders", "type": "FilterRows", "inputs": ["orders"],
                   "params": {"condition": "amount >= 100 and region in ['EU', 'US']"}},
    "AddModifyColumn": {"id": "banded", "type": "AddModifyColumn", "inputs": ["orders"],
                        "params": {"column": "band", "expression": "'high' if amount > 100 else 'low'"}},
    "FileWriter": {"id": "report", "type": "FileWriter", "inputs": ["with_targets"],
                   "params": {"path": "reports/by_region.parquet"}},
}
