"""dp-platform: declarative flow specs compiled into a Dagster code location.

Importing this package is cheap and has no side effects; the code location is built by
``dp_assets.definitions.defs`` when Dagster loads it.
"""
