"""What tests (and the benchmarks in ``bench/``) share for live processes and services.

- ``processes``: free ports, processes started in their own process group and stopped by it,
  waiting for a process to be ready (``wait_until``) or for a condition (``wait_for``).
- ``services``: the machine's PostgreSQL, Redis and RabbitMQ (skip on a laptop, fail under
  ``CI=true``) and a fresh PostgreSQL database per use.
- ``dagster_processes``: ``dagster-webserver``, ``dagster-daemon`` and ``dagster dev`` on a
  platform home in tmp.

Import as ``from tests.support.processes import ...`` (the repository root is on ``sys.path``:
``pythonpath`` in pyproject.toml, and ``python -m bench`` runs from the root). The benchmarks use
these helpers through ``bench/harness.py``; nothing here imports ``bench``.
"""
