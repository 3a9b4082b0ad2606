"""The Adaptive Card example's outside world: a T2A-style stub API, its data, the example's
PostgreSQL tables, and what the flow must produce, written in plain pandas.

Shared by the in-process example test (``test_adaptive_cards_example.py``) and the run on the
production stack with Celery workers (``tests/deploy/test_deploy_adaptive_cards.py``).
"""

from __future__ import annotations

import threading
from typing import Any

import pandas as pd
from examples_support import FLOWS, StubService

FLOW = "adaptive_card_pipeline"
SPEC = FLOWS / "adaptive_cards" / "card_pipeline.yaml"
TOKEN = "t2a-token-for-tests-0042"
TABLES = ("adaptive_cards", "material", "gscm", "card_users", "sales_orgs")
SNAPSHOTS = {
    "KR10": {
        "materials": [
            {"material": "M-100", "description": "Pump", "plant": "K1", "stock": 2, "unit_price": 13.0},
            {"material": "M-300", "description": "Gasket", "plant": "K1", "stock": 100, "unit_price": 0.4},
        ],
        "gscm": [
            {"material": "M-100", "open_orders": 8, "eta": "2024-06-10"},
            {"material": "M-300", "open_orders": 0, "eta": "2024-06-02"},
        ],
    },
    "JP20": {
        "materials": [{"material": "M-200", "description": "Valve", "plant": "J1", "stock": 1, "unit_price": 3.2}],
        "gscm": [{"material": "M-200", "open_orders": 4, "eta": "2024-06-05"}],
    },
    "DE30": {
        "materials": [{"material": "M-100", "description": "Pump", "plant": "P1", "stock": 40, "unit_price": 12.5}],
        "gscm": [{"material": "M-100", "open_orders": 10, "eta": "2024-06-01"}],
    },
    "US40": {
        "materials": [{"material": "M-400", "description": "Motor", "plant": "U1", "stock": 3, "unit_price": 99.0}],
        "gscm": [{"material": "M-400", "open_orders": 1, "eta": "2024-06-20"}],
    },
}
#: Organisations that answer in a first run (JP20 is down; BR50 is inactive in setup.sql).
ANSWERING = ["DE30", "KR10", "US40"]


class T2A:
    """T2A as a stub on loopback: KR10 answers after one 503, organisations in ``down`` answer 500."""

    def __init__(self) -> None:
        self.down = {"JP20"}
        self.lock = threading.Lock()
        self.calls: dict[str, int] = {}
        self.service = StubService(self.route)

    def route(self, request: Any) -> tuple[int, Any]:
        if request.headers.get("Authorization") != f"Bearer {TOKEN}":
            return 401, {"error": "bad token"}
        org = request.path.split("/")[3]
        with self.lock:
            self.calls[org] = self.calls.get(org, 0) + 1
            first = self.calls[org] == 1
        if org == "KR10" and first:
            return 503, {"error": "busy"}
        if org in self.down:
            return 500, {"error": "T2A backend error"}
        return 200, {"sales_org": org, **SNAPSHOTS[org]}


def create_tables(engine: Any) -> None:
    """The example's own ``data/setup.sql`` (tables and sample rows), after dropping its tables."""
    with engine.begin() as conn:
        conn.exec_driver_sql(f"DROP TABLE IF EXISTS {', '.join(TABLES)}")
        script = (FLOWS / "adaptive_cards" / "data" / "setup.sql").read_text()
        for statement in script.split(";"):
            if statement.strip() and not all(line.startswith("--") for line in statement.strip().splitlines()):
                conn.exec_driver_sql(statement)


def expected_material(orgs: list[str]) -> pd.DataFrame:
    columns = ("material", "description", "plant", "stock", "unit_price")
    rows = [{"sales_org": org, **{k: item[k] for k in columns}} for org in orgs for item in SNAPSHOTS[org]["materials"]]
    return pd.DataFrame(rows).sort_values(["sales_org", "material"], ignore_index=True)


def expected_gscm(orgs: list[str]) -> pd.DataFrame:
    rows = [{"sales_org": org, **item} for org in orgs for item in SNAPSHOTS[org]["gscm"]]
    return pd.DataFrame(rows).sort_values(["sales_org", "material"], ignore_index=True)


def expected_cards(users: pd.DataFrame, ok_orgs: list[str]) -> pd.DataFrame:
    """Cards of the users whose organisation answered, built in plain pandas."""
    rows = []
    for user in users.sort_values("user_id").itertuples():
        if user.sales_org not in ok_orgs:
            continue
        snap = SNAPSHOTS[user.sales_org]
        items = pd.DataFrame(snap["materials"]).merge(pd.DataFrame(snap["gscm"]), on="material", how="left")
        short = items[items["stock"] < items["open_orders"]]
        rows.append(
            {"user_id": user.user_id, "sales_org": user.sales_org, "items": len(items), "shortages": len(short)}
        )
    return pd.DataFrame(rows)
