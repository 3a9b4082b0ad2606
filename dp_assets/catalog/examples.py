"""One example node per node type: shown in docs/nodes.md and validated by the tests."""

from __future__ import annotations

from typing import Any

NODE_EXAMPLES: dict[str, dict[str, Any]] = {
    "StaticData": {
        "id": "regions",
        "type": "StaticData",
        "params": {"rows": [{"region": "EU", "target": 10}, {"region": "US", "target": 8}]},
    },
    "FileInput": {
        "id": "orders",
        "type": "FileInput",
        "params": {
            "path": "orders/*.csv",
            "parse_dates": ["ordered_at"],
            "columns": {"order_id": "integer", "region": "string", "amount": "float"},
        },
    },
    "FlowInput": {
        "id": "revenue",
        "type": "FlowInput",
        "params": {"flow": "sales_summary", "node": "revenue_by_region"},
    },
    "SelectColumns": {
        "id": "slim",
        "type": "SelectColumns",
        "inputs": ["orders"],
        "params": {"columns": ["order_id", "amount"]},
    },
    "SortData": {
        "id": "ranked",
        "type": "SortData",
        "inputs": ["orders"],
        "params": {"by": ["region", "amount"], "ascending": [True, False]},
    },
    "Limit": {"id": "top_10", "type": "Limit", "inputs": ["ranked"], "params": {"n": 10}},
    "GroupAggregate": {
        "id": "by_region",
        "type": "GroupAggregate",
        "inputs": ["orders"],
        "params": {"by": "region", "agg": {"total": ["amount", "sum"], "orders": ["order_id", "count"]}},
    },
    "JoinMerge": {
        "id": "with_targets",
        "type": "JoinMerge",
        "inputs": {"left": "by_region", "right": "regions"},
        "params": {"how": "left", "on": "region"},
    },
    "FilterRows": {
        "id": "big_orders",
        "type": "FilterRows",
        "inputs": ["orders"],
        "params": {"condition": "amount >= 100 and region in ['EU', 'US']"},
    },
    "AddModifyColumn": {
        "id": "banded",
        "type": "AddModifyColumn",
        "inputs": ["orders"],
        "params": {"column": "band", "expression": "'high' if amount > 100 else 'low'"},
    },
    "FileWriter": {
        "id": "report",
        "type": "FileWriter",
        "inputs": ["with_targets"],
        "params": {"path": "reports/by_region.parquet"},
    },
    "TableReader": {
        "id": "customers",
        "type": "TableReader",
        "params": {
            "table": "sales.customers",
            "connection": "warehouse",
            "columns": {"customer_id": "integer", "region": "string"},
            "where": [{"column": "region", "op": "in", "value": ["EU", "US"]}],
            "chunksize": 50000,
        },
    },
    "CustomSQLQuery": {
        "id": "recent",
        "type": "CustomSQLQuery",
        "params": {"sql": "SELECT order_id, amount FROM orders WHERE ordered_at >= :since", "connection": "warehouse"},
    },
    "ApiEndpoint": {
        "id": "tickets",
        "type": "ApiEndpoint",
        "params": {
            "url": "https://api.example.com/v1/tickets",
            "record_path": "data",
            "headers": {"Authorization": "Bearer ${env:DP_SECRET_TICKETS_TOKEN}"},
            "pagination": {"type": "cursor", "cursor_path": "meta.next_cursor"},
        },
    },
    "WebhookListener": {"id": "incoming", "type": "WebhookListener", "params": {"record_path": "orders"}},
    "SampleRows": {
        "id": "sample",
        "type": "SampleRows",
        "inputs": ["orders"],
        "params": {"frac": 0.1, "random_state": 42},
    },
    "RenameColumns": {
        "id": "renamed",
        "type": "RenameColumns",
        "inputs": ["orders"],
        "params": {"columns": {"amount": "amount_eur"}},
    },
    "ChangeDataType": {
        "id": "typed",
        "type": "ChangeDataType",
        "inputs": ["orders"],
        "params": {"dtype": {"order_id": "Int64", "amount": "float64"}, "errors": "coerce"},
    },
    "SplitColumn": {
        "id": "names",
        "type": "SplitColumn",
        "inputs": ["customers"],
        "params": {"column": "full_name", "pat": " ", "n": 1, "names": ["first", "last"]},
    },
    "MapValues": {
        "id": "regions_named",
        "type": "MapValues",
        "inputs": ["orders"],
        "params": {"column": "region", "mapping": {"EU": "Europe", "US": "United States"}, "default": "Other"},
    },
    "HandleMissingValues": {
        "id": "filled",
        "type": "HandleMissingValues",
        "inputs": ["orders"],
        "params": {"strategy": "median", "subset": ["amount"]},
    },
    "Deduplicate": {
        "id": "unique_orders",
        "type": "Deduplicate",
        "inputs": ["orders"],
        "params": {"subset": ["order_id"], "keep": "last"},
    },
    "PivotTable": {
        "id": "by_month",
        "type": "PivotTable",
        "inputs": ["orders"],
        "params": {"index": "region", "columns": "month", "values": "amount", "aggfunc": "sum", "fill_value": 0},
    },
    "Melt": {
        "id": "long",
        "type": "Melt",
        "inputs": ["by_month"],
        "params": {"id_vars": ["region"], "var_name": "month", "value_name": "amount"},
    },
    "WindowFunctions": {
        "id": "ranked_orders",
        "type": "WindowFunctions",
        "inputs": ["orders"],
        "params": {
            "partition_by": "region",
            "order_by": "ordered_at",
            "functions": [
                {"output": "order_no", "function": "row_number"},
                {"output": "previous_amount", "function": "lag", "column": "amount"},
                {"output": "avg_last_3", "function": "rolling_mean", "column": "amount", "window": 3},
            ],
        },
    },
    "SqlTransform": {
        "id": "top_customers",
        "type": "SqlTransform",
        "inputs": ["orders", "customers"],
        "params": {
            "query": "SELECT c.name, sum(o.amount) AS revenue FROM orders o JOIN customers c USING (customer_id) "
            "GROUP BY c.name ORDER BY revenue DESC LIMIT 10"
        },
    },
    "UnionConcatenate": {
        "id": "all_orders",
        "type": "UnionConcatenate",
        "inputs": ["orders", "recent"],
        "params": {"join": "outer"},
    },
    "RunPythonScript": {
        "id": "scored",
        "type": "RunPythonScript",
        "inputs": ["orders"],
        "params": {"code": "result = df.assign(score=df['amount'] * params['weight'])", "variables": {"weight": 0.5}},
    },
    "ApplyFunction": {
        "id": "bucketed",
        "type": "ApplyFunction",
        "inputs": ["orders"],
        "params": {
            "code": "def apply(value):\n    return 'big' if value > 100 else 'small'",
            "column": "amount",
            "output_column": "size",
        },
    },
    "TableWriter": {
        "id": "saved",
        "type": "TableWriter",
        "inputs": ["by_region"],
        "params": {
            "table": "reports.region_totals",
            "connection": "warehouse",
            "if_exists": "upsert",
            "keys": ["region"],
        },
    },
    "APIRequest": {
        "id": "pushed",
        "type": "APIRequest",
        "inputs": ["by_region"],
        "params": {
            "url": "https://crm.example.com/api/totals",
            "mode": "batch",
            "batch_size": 500,
            "body_key": "rows",
            "rate_limit": 5,
        },
    },
    "DisplayResults": {"id": "shown", "type": "DisplayResults", "inputs": ["by_region"], "params": {"n": 10}},
    "SendNotification": {
        "id": "tell_team",
        "type": "SendNotification",
        "inputs": ["by_region"],
        "params": {
            "channel": "webhook",
            "webhook": "sales_team",
            "message": "{flow_id}: {row_count} regions, first {region} = {total}",
        },
    },
    "ConditionalBranch": {
        "id": "has_orders",
        "type": "ConditionalBranch",
        "inputs": ["orders"],
        "params": {"condition": "amount > 0", "rows": "any"},
    },
    "Merge": {"id": "either", "type": "Merge", "inputs": ["has_orders.true", "fallback"], "params": {"how": "first"}},
    "TryCatch": {
        "id": "guarded",
        "type": "TryCatch",
        "inputs": ["orders"],
        "params": {
            "body": [
                {"id": "typed", "type": "ChangeDataType", "params": {"dtype": {"amount": "float64"}}},
                {
                    "id": "total",
                    "type": "GroupAggregate",
                    "params": {"by": "region", "agg": {"total": ["amount", "sum"]}},
                },
            ]
        },
    },
    "ForEach": {
        "id": "per_region",
        "type": "ForEach",
        "inputs": ["orders"],
        "params": {
            "group_by": "region",
            "max_workers": 4,
            "body": [{"id": "top", "type": "SortData", "params": {"by": "amount", "ascending": False}}],
        },
    },
    "HttpTool": {
        "id": "weather",
        "type": "HttpTool",
        "inputs": ["regions"],
        "params": {
            "url": "https://api.example.com/weather?city={{ row.region }}",
            "for_each_row": True,
            "auth": {"type": "bearer", "token": "${env:DP_SECRET_WEATHER_TOKEN}"},
            "timeout_seconds": 10,
        },
    },
    "ShellTool": {
        "id": "checksum",
        "type": "ShellTool",
        "params": {"argv": ["sha256sum", "exports/orders.csv"], "cwd": "jobs", "timeout_seconds": 30},
    },
    "PythonTool": {
        "id": "summary",
        "type": "PythonTool",
        "inputs": ["by_region"],
        "params": {"code": "result = {'regions': len(df), 'total': float(df['total'].sum())}"},
    },
    "McpTool": {
        "id": "ticket",
        "type": "McpTool",
        "inputs": ["summary"],
        "params": {
            "server": "helpdesk",
            "tool": "create_ticket",
            "arguments": {"title": "Daily totals", "body": "{{ input.total }}"},
        },
    },
    "LlmAgent": {
        "id": "analyst",
        "type": "LlmAgent",
        "inputs": ["by_region"],
        "params": {
            "system_prompt": "You are a sales analyst. Answer in two sentences.",
            "prompt": "Which region is behind target, and why might that be? Data: {{ input }}",
            "tools": [
                {
                    "name": "weather",
                    "type": "HttpTool",
                    "description": "Weather for a city.",
                    "params": {"url": "https://api.example.com/weather?city={{ args.city }}"},
                }
            ],
            "max_steps": 4,
            "max_tool_calls": 4,
            "max_tokens": 8000,
        },
    },
}
