"""Flow specs of the production-stack tests, and what their outputs must be (plain Python).

The stack runs the platform's own code location (``dp_assets.definitions``) on a folder of these
specs. The CPU-bound work is a ``RunPythonScript`` node (user code in the sandbox) looping over
``rounds``: pure Python, so it holds one core for as long as it runs, and two workers can only
finish a fan-out sooner by running nodes at the same time. The last node appends the result to a
PostgreSQL table (``TableWriter``, ``if_exists: append``): a side effect that would show a
duplicate as extra rows.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

#: The connection name of the sink table (``DP_DB_SINK_URL`` in the stack's environment).
SINK = "sink"
SEED_ROWS = [{"k": 1}, {"k": 2}, {"k": 3}]
MODULUS = 1_000_003

BURN_CODE = """\
total = 0
salt = params['salt']
for i in range(params[params['rounds_param']]):
    total = (total + i * i + salt) % {modulus}
result = df.assign(total=total, salt=salt)
""".replace("{modulus}", str(MODULUS))


def burn_total(rounds: int, salt: int) -> int:
    """What a burn node computes, in closed form: the loop adds ``i * i + salt`` for each
    ``i < rounds`` modulo ``MODULUS``, that is (sum of squares + rounds * salt) mod ``MODULUS``.
    An independent reference that costs nothing for long loops (``burn_total_loop`` is the
    loop itself, for checking this one)."""
    squares = (rounds - 1) * rounds * (2 * rounds - 1) // 6
    return (squares + rounds * salt) % MODULUS


def burn_total_loop(rounds: int, salt: int) -> int:
    total = 0
    for i in range(rounds):
        total = (total + i * i + salt) % MODULUS
    return total


def burn_node(
    node_id: str, salt: int, *, rounds_param: str = "rounds", timeout_seconds: float | None = None
) -> dict[str, Any]:
    node: dict[str, Any] = {
        "id": node_id,
        "type": "RunPythonScript",
        "inputs": ["seed"],
        "params": {
            "code": BURN_CODE,
            "variables": {"salt": salt, "rounds_param": rounds_param},
            "limits": {"cpu_seconds": 120, "wall_seconds": 240, "memory_mb": 512},
        },
    }
    if timeout_seconds:
        node["timeout_seconds"] = timeout_seconds
    return node


def fan_out_spec(
    flow_id: str,
    width: int = 4,
    *,
    rounds: int = 1_000_000,
    long_rounds: int | None = None,
    long_timeout_seconds: float | None = None,
    steps: str = "node",
    policies: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """``seed`` -> ``burn_0`` .. ``burn_{width-1}`` (independent) -> ``combined`` -> ``sink``.

    ``burn_0`` loops ``long_rounds`` times (param ``long_rounds``), the others ``rounds``; the
    sink appends the combined rows to the table named by the run param ``table``.
    """
    burns = [
        burn_node(
            "burn_0",
            0,
            rounds_param="long_rounds",
            timeout_seconds=long_timeout_seconds,
        )
    ]
    burns += [burn_node(f"burn_{i}", i) for i in range(1, width)]
    return {
        "id": flow_id,
        "description": "CPU-bound fan-out for the production-stack tests (tests/deploy).",
        "params": {
            "rounds": {"type": "integer", "default": rounds},
            "long_rounds": {"type": "integer", "default": long_rounds or rounds},
            "table": {"type": "string", "default": f"{flow_id}_sink"},
        },
        "policies": {"steps": steps, **(policies or {})},
        "nodes": [
            {"id": "seed", "type": "StaticData", "params": {"rows": SEED_ROWS}},
            *burns,
            {
                "id": "combined",
                "type": "UnionConcatenate",
                "inputs": [b["id"] for b in burns],
            },
            {
                "id": "sink",
                "type": "TableWriter",
                "inputs": ["combined"],
                "params": {
                    "table": "{{ params.table }}",
                    "connection": SINK,
                    "if_exists": "append",
                },
            },
        ],
    }


def expected_combined(width: int, rounds: int, long_rounds: int | None = None) -> list[dict]:
    """The ``combined`` rows of :func:`fan_out_spec`, computed in plain Python."""
    rows = []
    for salt in range(width):
        total = burn_total(long_rounds or rounds if salt == 0 else rounds, salt)
        rows += [{"k": seed["k"], "total": total, "salt": salt} for seed in SEED_ROWS]
    return rows


def node_ids(width: int) -> set[str]:
    return {"seed", "combined", "sink", *(f"burn_{i}" for i in range(width))}


def step_key(flow_id: str, node_id: str) -> str:
    return f"{flow_id}__node__{node_id}"


def write_specs(folder: Path, specs: list[dict[str, Any]]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for spec in specs:
        (folder / f"{spec['id']}.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    return folder
