"""The proxy's GraphQL rules name fields of Dagster's own schema (a guard for Dagster upgrades).

A field renamed or added by a Dagster release would slip past a rule written by name: every
mutation must be sorted into a rule, every named data field must exist, and the query the proxy
sends to look a run's job up must validate against the schema the webserver serves.
"""

from __future__ import annotations

from dagster_graphql.schema import create_schema
from graphql import GraphQLInterfaceType, GraphQLObjectType, GraphQLUnionType, get_named_type, parse, validate

from dp_proxy.graphql_rules import DATA_FIELDS, EDIT_MUTATIONS, NESTED_DATA_FIELDS, RUN_MUTATIONS
from dp_proxy.roles import RUN_JOB

SCHEMA = create_schema().graphql_schema


def test_the_run_lookup_is_a_valid_query_of_dagsters_schema():
    assert validate(SCHEMA, parse(RUN_JOB)) == []


def test_the_named_mutations_and_data_fields_exist():
    mutations = set(SCHEMA.mutation_type.fields)
    assert mutations >= RUN_MUTATIONS | EDIT_MUTATIONS
    roots = set(SCHEMA.query_type.fields) | set(SCHEMA.subscription_type.fields)
    assert roots >= DATA_FIELDS, sorted(DATA_FIELDS - roots)
    every_field = {
        name
        for t in SCHEMA.type_map.values()
        if hasattr(t, "fields") and not t.name.startswith("__")
        for name in t.fields
    }
    assert every_field >= NESTED_DATA_FIELDS, sorted(NESTED_DATA_FIELDS - every_field)


def test_every_root_field_that_returns_runs_or_events_is_a_data_field():
    """A new query or subscription field returning runs, events or asset values is refused
    as data until it is sorted: this fails when Dagster adds one the rules do not name."""
    data_types = ("Run", "Runs", "RunOrError", "RunsOrError", "PipelineRun", "EventConnection", "CapturedLogs")
    roots = {**SCHEMA.query_type.fields, **SCHEMA.subscription_type.fields}
    returning_runs = {
        name
        for name, field in roots.items()
        if get_named_type(field.type).name.startswith(data_types) and "Config" not in get_named_type(field.type).name
    }  # RunConfigSchema is the config's schema: a definition
    assert returning_runs <= DATA_FIELDS, sorted(returning_runs - DATA_FIELDS)


#: Types that carry a run id but hold no run data a definitions read may not see: a run id an
#: author put in definition metadata, and the instance's concurrency slots (run id, step key).
NOT_DATA = {"PipelineRunMetadataEntry", "PendingConcurrencyStep", "ClaimedConcurrencySlot", "RunNotFoundError"}


def _members(named):
    if isinstance(named, GraphQLUnionType):
        return list(named.types)
    if isinstance(named, GraphQLInterfaceType):
        return list(SCHEMA.get_possible_types(named))
    return [named]


def test_every_run_or_event_below_a_definition_read_is_a_nested_data_field():
    """Walk Dagster's schema from every root field that needs only a login, stopping at the
    nested data fields: no type that carries a run id (runs, step stats, events, partition
    statuses) may be reached. Found missing by hand: ``assetEventHistory`` below a schedule's
    assets read materialisation metadata, ``stepStats`` and ``partitionStatusesOrError`` runs."""
    carries_runs = {
        name
        for name, t in SCHEMA.type_map.items()
        if isinstance(t, GraphQLObjectType) and {"runId", "failedRunId", "latestRunId"} & set(t.fields)
    } - NOT_DATA
    roots = {**SCHEMA.query_type.fields, **SCHEMA.subscription_type.fields}
    stack = [(get_named_type(f.type), name) for name, f in roots.items() if name not in DATA_FIELDS]
    seen: set[str] = set()
    reached: dict[str, str] = {}
    while stack:
        named, path = stack.pop()
        for t in _members(named):
            if not isinstance(t, GraphQLObjectType | GraphQLInterfaceType) or t.name in seen:
                continue
            seen.add(t.name)
            if t.name in carries_runs:
                reached[t.name] = path
            stack += [
                (get_named_type(f.type), f"{path} > {t.name}.{name}")
                for name, f in t.fields.items()
                if name not in NESTED_DATA_FIELDS
            ]
    assert reached == {}
