"""One set of Hypothesis settings for every fuzz test: fixed and bounded in CI, long on demand.

CI runs each property with a fixed seed (``derandomize``) and a small number of examples, so a
run is repeatable and the suite's time is bounded. ``DP_FUZZ_EXAMPLES=N`` multiplies every
test's examples by N and draws fresh random inputs, for a long run (docs/security.md).
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

SLOW_CHECKS = [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much]


def long_run_factor() -> int:
    """How many times the CI budget a long fuzzing run spends (1: the CI run)."""
    try:
        return max(1, int(os.environ.get("DP_FUZZ_EXAMPLES", "1")))
    except ValueError:
        return 1


def fuzz_settings(max_examples: int, **overrides) -> settings:
    """Settings of a fuzz test whose CI budget is ``max_examples`` examples."""
    factor = long_run_factor()
    options = dict(
        derandomize=factor == 1,
        max_examples=max_examples * factor,
        deadline=None,
        suppress_health_check=SLOW_CHECKS,
        database=None,
    )
    options.update(overrides)
    return settings(**options)
