"""Dagster instance plugins: the run, event-log and schedule storages and the compute-log
manager that ``dagster.yaml`` names, and the run-time Dagster names the IO manager needs
(``run_internals``). With the compile-time module ``dp_assets/dagster_internals.py`` this is one
of the two places allowed to use Dagster's private APIs (docs/upgrading-dagster.md)."""
