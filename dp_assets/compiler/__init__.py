"""Turning validated flows into Dagster definitions."""
