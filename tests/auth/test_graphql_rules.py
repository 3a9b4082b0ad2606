"""What a GraphQL request needs, read from the parsed document (dp_proxy/graphql_rules.py).

The hostile forms of the issue: a mutation under an alias, behind a fragment, in another
operation than the one ``operationName`` names, inside a batch; each counts as written plainly.
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dp_proxy.graphql_rules import BadGraphQL, Need, needs_of_body
from tests.fuzzing import fuzz_settings

LAUNCH = 'launchRun(executionParams: {selector: {repositoryLocationName: "dp_platform", repositoryName: "__repository__", jobName: "payroll"}}) { __typename }'


def _needs(query, variables=None, **extra):
    return needs_of_body({"query": query, "variables": variables, **extra})


def test_a_launch_needs_run_on_its_flow():
    assert _needs(f"mutation {{ {LAUNCH} }}") == [Need("launchRun", "run", frozenset({"payroll"}))]


@pytest.mark.parametrize(
    "query",
    [
        f"mutation {{ harmless: {LAUNCH} }}",
        f"mutation {{ ... on Mutation {{ {LAUNCH} }} }}",
        f"mutation {{ ...F }} fragment F on Mutation {{ {LAUNCH} }}",
        f"mutation {{ ...F }} fragment F on Mutation {{ ...G }} fragment G on Mutation {{ {LAUNCH} }}",
        f"query Look {{ version }} mutation Sneak {{ {LAUNCH} }}",
    ],
    ids=["alias", "inline-fragment", "fragment", "nested-fragments", "second-operation"],
)
def test_hidden_launches_count(query):
    assert Need("launchRun", "run", frozenset({"payroll"})) in _needs(query, operationName="Look")


def test_variables_batching_and_asset_selections():
    query = "mutation M($p: ExecutionParams!) { launchRun(executionParams: $p) { __typename } }"
    params = {"selector": {"jobName": "__ASSET_JOB", "assetSelection": [{"path": ["sales", "total"]}]}}
    batch = [{"query": "{ version }"}, {"query": query, "variables": {"p": params}}]
    assert needs_of_body(batch) == [Need("launchRun", "run", frozenset({"sales"}))]
    unnamed = {"selector": {"jobName": "__ASSET_JOB"}}
    assert needs_of_body({"query": query, "variables": {"p": unnamed}})[0].everywhere


def test_runs_are_named_by_id_and_other_mutations_need_admin_everywhere():
    assert _needs('mutation { terminateRun(runId: "abc") { __typename } }') == [
        Need("terminateRun", "run", run_ids=frozenset({"abc"}))
    ]
    assert _needs('mutation { deleteRun(runId: "abc") { __typename } }')[0].action == "edit"
    wipe = _needs("mutation { wipeAssets(assetPartitionRanges: []) { __typename } }")
    assert wipe == [Need("wipeAssets", "grant", everywhere=True)]
    assert _needs('subscription { pipelineRunLogs(runId: "r1") { __typename } }') == [
        Need("pipelineRunLogs", "view", run_ids=frozenset({"r1"}))
    ]
    assert _needs('subscription { capturedLogs(logKey: ["r2", "compute_logs", "s"]) { __typename } }')[0].run_ids == {
        "r2"
    }


def test_reads_of_data_name_their_flow_or_need_every_workspace():
    assert _needs('{ runsOrError(filter: {pipelineName: "sales"}) { __typename } }') == [
        Need("runsOrError", "view", frozenset({"sales"}))
    ]
    assert _needs("{ runsOrError { __typename } }")[0].everywhere
    both = _needs('{ runsOrError(filter: {pipelineName: "sales", runIds: ["x"]}) { __typename } }')[0]
    assert both.run_ids == frozenset() and both.everywhere  # run ids beside a job: not that job's alone
    assert _needs("{ assetNodes { id } }")[0].everywhere
    assert _needs("{ version workspaceOrError { __typename } __schema { types { name } } }") == []


def test_runs_read_below_a_definition_count_too():
    job = '{ pipelineOrError(params: {pipelineName: "payroll", repositoryName: "r", repositoryLocationName: "l"}) '
    assert _needs(job + "{ ... on Pipeline { name runs { runId } } } }") == [
        Need("pipelineOrError", "view", frozenset({"payroll"}))
    ]
    assert _needs(job + "{ ... on Pipeline { name } } }") == []
    nested = "{ workspaceOrError { ...W } } fragment W on Workspace { locationEntries { ...E } } fragment E on WorkspaceLocationEntry { %s }"
    assert _needs(nested % "id runs: name latestRun: id") == []  # aliases of harmless fields are harmless
    assert _needs(nested % "pipelines { runs { runId } }")[0].everywhere


@pytest.mark.parametrize(
    "body",
    [
        {"query": "mutation {"},
        {"query": 3},
        [],
        [{"query": "{ version }"}] * 21,
        {"query": "{ ...Missing }"},
        {"query": "{ version }", "variables": [1]},
        "mutation { wipeAssets }",
    ],
)
def test_what_cannot_be_judged_is_refused(body):
    with pytest.raises(BadGraphQL):
        needs_of_body(body)


MUTATIONS = st.sampled_from(
    ["launchRun", "terminateRun", "deleteRun", "wipeAssets", "reloadWorkspace", "launchMultipleRuns", "setSensorCursor"]
)


@fuzz_settings(200)
@given(
    mutation=MUTATIONS,
    alias=st.from_regex(r"[a-zA-Z_][a-zA-Z0-9_]{0,10}", fullmatch=True),
    wrap=st.sampled_from(["plain", "inline", "fragment", "second", "batch"]),
    name=st.from_regex(r"[A-Z][a-zA-Z]{0,8}", fullmatch=True),
)
def test_every_mutation_needs_more_than_a_login_however_written(mutation, alias, wrap, name):
    """Any mutation, however hidden, yields a need of at least ``run``: a viewer's request
    that carries one is never let through as a plain read."""
    field = f"{alias}: {mutation} {{ __typename }}"
    query = {
        "plain": f"mutation {name} {{ {field} }}",
        "inline": f"mutation {{ ... on Mutation {{ {field} }} }}",
        "fragment": f"mutation {{ ...{name} }} fragment {name} on Mutation {{ {field} }}",
        "second": f"query {name} {{ version }} mutation {{ {field} }}",
        "batch": f"mutation {{ {field} }}",
    }[wrap]
    body = [{"query": "{ version }"}, {"query": query}] if wrap == "batch" else {"query": query, "operationName": name}
    needs = needs_of_body(body)
    assert needs and all(n.action in ("run", "edit", "grant") for n in needs)
    assert all(n.flows or n.run_ids or n.everywhere for n in needs)


@fuzz_settings(300)
@given(text=st.text(max_size=300))
def test_any_text_is_judged_or_refused(text):
    try:
        needs = needs_of_body({"query": text})
    except BadGraphQL:
        return
    assert isinstance(needs, list)


def test_asset_events_and_step_stats_below_definitions_count_too():
    """Found by walking Dagster's schema: these read materialisation metadata (previews), run ids
    and states below fields that need only a login, and went through as definition reads."""
    schedule = (
        '{ scheduleOrError(scheduleSelector: {repositoryLocationName: "l", repositoryName: "r", scheduleName: "s"}) '
    )
    events = (
        "{ ... on Schedule { assetSelection { assets { assetEventHistory(limit: 5) { results { __typename } } } } } } }"
    )
    assert _needs(schedule + events)[0].everywhere
    job = '{ pipelineOrError(params: {pipelineName: "payroll", repositoryName: "r", repositoryLocationName: "l"}) '
    steps = '{ ... on Pipeline { solidHandle(handleID: "n") { stepStats(limit: 5) { __typename } } } } }'
    assert _needs(job + steps) == [Need("pipelineOrError", "view", frozenset({"payroll"}))]
    statuses = '{ partitionSetOrError(partitionSetName: "p") { ... on PartitionSet { partitionStatusesOrError { __typename } } } }'
    assert _needs(statuses)[0].everywhere


def _chain(operation: str, on: str, depth: int, last: str, root: str = "") -> str:
    spreads = " ".join(f"fragment F{i} on {on} {{ ...F{i + 1} }}" for i in range(depth))
    return f"{operation} {{ {root or '...F0'} }} {spreads} fragment F{depth} on {on} {{ {last} }}"


def test_a_chain_of_thousands_of_fragments_is_judged():
    """A document within the size and token limits can chain 3,000 fragments: the walk recursed
    once per fragment, and the RecursionError reached the client as a 500."""
    launch = _chain("mutation", "Mutation", 3000, LAUNCH)
    assert _needs(launch) == [Need("launchRun", "run", frozenset({"payroll"}))]
    reads = _chain("query", "Workspace", 3000, "pipelines { runs { runId } }", root="workspaceOrError { ...F0 }")
    assert _needs(reads)[0].everywhere


def test_a_fragment_spread_by_every_root_field_is_read_once(monkeypatch):
    """The work is bounded by the document's size: a fragment of many fields spread by many
    root fields was walked again for each of them (seconds of the proxy's event loop)."""
    from dp_proxy import graphql_rules

    visited = []
    walk = graphql_rules._selections

    def counted(selection_set):
        for selection in walk(selection_set):
            visited.append(selection)
            yield selection

    monkeypatch.setattr(graphql_rules, "_selections", counted)
    roots, fields = 300, 1000
    spread = " ".join(f"a{i}: workspaceOrError {{ ...F }}" for i in range(roots))
    assert _needs(f"{{ {spread} }} fragment F on Workspace {{ {'id ' * fields} }}") == []
    assert len(visited) <= 2 * (roots + fields)


def test_a_document_is_parsed_off_the_event_loop(monkeypatch):
    """graphql-core takes about 0.5 s to parse a 180 KB document; parsed on the proxy's event loop
    it stalled every other request and WebSocket meanwhile. A bad one is still a 400."""
    import asyncio
    import threading

    from dp_auth.permissions import LOCAL_ADMIN
    from dp_proxy import roles

    parsed_on: list[threading.Thread] = []

    def recording(body):
        parsed_on.append(threading.current_thread())
        return needs_of_body(body)

    monkeypatch.setattr(roles, "needs_of_body", recording)

    async def judge(body):
        judged = roles.ProxyRoles(access=None, client=None)  # type: ignore[arg-type]
        return threading.current_thread(), await judged.check_graphql(LOCAL_ADMIN, body)

    loop_thread, (refusal, needs) = asyncio.run(judge({"query": "{ version }"}))
    assert refusal is None and needs == []
    _, (bad, _) = asyncio.run(judge({"query": "{ version"}))
    assert bad is not None and bad.status == 400
    assert len(parsed_on) == 2 and loop_thread not in parsed_on
