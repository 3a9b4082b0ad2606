"""The preview routes: "run up to this node" on a draft, and a preview kept as a ``dp test`` case."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse

from dp_assets.spec.validation import ValidatedFlow, validate_spec
from dp_assets.store_api import FlowNotFound, FlowStoreAPI, join_layout, split_layout
from dp_auth.permissions import Action
from dp_designer.case_files import append_case
from dp_designer.flows_api import document_for, flow_id_of
from dp_designer.http import ApiError, read_body
from dp_designer.identity import check_flow
from dp_designer.previews import MAX_SAMPLE_ROWS, Preview, PreviewService, test_case


class PreviewBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    node: str = Field(min_length=1, max_length=64, description="Run the flow up to this node.")
    document: dict[str, Any] | None = Field(
        None, description="The flow as drawn; when absent the saved draft, else the published version."
    )
    sample_rows: int | None = Field(
        None, ge=1, le=MAX_SAMPLE_ROWS, description="Keep only this many first rows of each source; all when absent."
    )
    params: dict[str, Any] = Field(default_factory=dict, description="The flow's params for the preview.")


class TestCaseBody(PreviewBody):
    name: str = Field(pattern=r"^\S[^\n]*$", max_length=100, description="The case's name (`dp test --case`).")


TestCaseBody.__test__ = False  # type: ignore[attr-defined]  # not a pytest class


def _document(api: FlowStoreAPI, flow_id: str, body: PreviewBody) -> dict[str, Any]:
    if body.document is not None:
        return document_for(flow_id, body.document)
    draft = api.draft(flow_id)
    if draft is not None:
        return join_layout(draft.spec, draft.layout)
    try:
        return api.document(flow_id, api.info(flow_id).published_version)[1]
    except FlowNotFound:
        raise ApiError(404, f"no flow '{flow_id}': send the document to preview") from None


def _previewed(request: Request, flow_id: str, body: PreviewBody) -> tuple[ValidatedFlow, Preview]:
    api: FlowStoreAPI = request.app.state.store_api
    spec, _ = split_layout(_document(api, flow_id, body))
    validated = validate_spec(spec, api.catalog, check_compiles=False)  # invalid: a 422 naming the errors
    service: PreviewService = request.app.state.previews
    return validated, service.run(validated, body.node, body.params, body.sample_rows)


async def preview(request: Request) -> JSONResponse:
    """Run the flow up to a node (sinks and tools are stand-ins): its output and its sources'."""
    flow_id = flow_id_of(request)
    await run_in_threadpool(check_flow, request, Action.edit, flow_id)  # drafting reads the flow's data
    body = await read_body(request, PreviewBody)
    _, result = await run_in_threadpool(_previewed, request, flow_id, body)
    return JSONResponse(result.view())


def _spec_file(request: Request, flow_id: str) -> Path | None:
    """The flow's spec file, when it was imported from one under the flows folder."""
    service: PreviewService = request.app.state.previews
    api: FlowStoreAPI = request.app.state.store_api
    listing = next((item for item in api.list() if item.id == flow_id), None)
    if listing is None or listing.source is None or listing.source_removed or service.flows_root is None:
        return None
    path = Path(listing.source).resolve()
    return path if path.is_file() and path.is_relative_to(service.flows_root.resolve()) else None


async def preview_test_case(request: Request) -> JSONResponse:
    """The preview as a ``dp test`` case, appended to the test file beside the flow's spec file;
    a flow without a spec file gets the case in the answer only."""
    flow_id = flow_id_of(request)
    await run_in_threadpool(check_flow, request, Action.edit, flow_id)
    body = await read_body(request, TestCaseBody)

    def make() -> dict[str, Any]:
        validated, result = _previewed(request, flow_id, body)
        case = test_case(result, body.name, validated.raw, request.app.state.store_api.catalog)
        text = yaml.safe_dump({"flow": flow_id, "cases": [case]}, sort_keys=False, allow_unicode=True, width=120)
        spec_file = _spec_file(request, flow_id)
        written = append_case(spec_file, flow_id, case) if spec_file is not None else None
        return {
            "case": case,
            "yaml": text,
            "file": str(written) if written else None,
            "command": f"dp test {flow_id} --case {shlex.quote(body.name)}" if written else None,
            "note": None
            if written
            else f"flow '{flow_id}' has no spec file under the flows folder: keep this case in "
            "tests/NAME.yaml beside the spec file NAME.yaml when you export the flow",
        }

    answer = await run_in_threadpool(make)
    return JSONResponse(answer, status_code=201 if answer["file"] else 200)
