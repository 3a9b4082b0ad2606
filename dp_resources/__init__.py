"""Dagster resources of the platform: flow store, files, databases, HTTP, sandbox, notifications."""
