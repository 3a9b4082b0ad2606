"""Dagster instance plugins: the run, event-log and schedule storages and the compute-log
manager that ``dagster.yaml`` names. With the compile-time module
``dp_assets/dagster_internals.py`` this is one of the two places allowed to use Dagster's
private APIs (docs/upgrading-dagster.md)."""
