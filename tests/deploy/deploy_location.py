"""A tiny throwaway code location for the deployment tests (not the platform's own location).

It has one of everything a mutation can touch: a job, an asset, a partitioned asset with dynamic
partitions, a schedule and a sensor, so that the read-only viewer test (S5) can aim every
mutation at something real.
"""

import dagster as dg

things = dg.DynamicPartitionsDefinition(name="things")


@dg.asset
def canary() -> int:
    return 1


@dg.asset(partitions_def=things)
def per_thing() -> int:
    return 1


@dg.asset_check(asset=canary)
def canary_positive() -> dg.AssetCheckResult:
    return dg.AssetCheckResult(passed=True)


@dg.op
def hello() -> int:
    return 1


@dg.job(tags={"dp/flow": "hello"})
def hello_job() -> None:
    hello()


@dg.schedule(cron_schedule="0 0 * * *", job=hello_job)
def hello_schedule():
    return {}


@dg.sensor(job=hello_job, minimum_interval_seconds=3600)
def hello_sensor():
    return dg.SkipReason("test sensor")


defs = dg.Definitions(
    assets=[canary, per_thing],
    asset_checks=[canary_positive],
    jobs=[hello_job],
    schedules=[hello_schedule],
    sensors=[hello_sensor],
)
