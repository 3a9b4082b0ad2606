"""Throwaway PostgreSQL databases for tests (the session's, the deploy stacks', the bench's):
made by the benchmark harness's helper, so that both make them one way."""

from __future__ import annotations

from bench.harness import fresh_database

__all__ = ["fresh_database"]
