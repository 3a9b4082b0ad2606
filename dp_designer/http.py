"""Request bodies and error answers: bad input is a 4xx with a message, never a 500."""

from __future__ import annotations

from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from starlette.requests import Request
from starlette.responses import JSONResponse

from dp_assets.spec.document import MAX_DEPTH as SPEC_MAX_DEPTH
from dp_sensors.webhook.bodies import Refused, check_json_content_type, parse_json_object, read_bounded_body

#: A flow document is at most a few MB (dp_assets.spec.document bounds it again when parsed).
MAX_BODY_BYTES = 4 * 1024 * 1024
BODY_TIMEOUT_SECONDS = 30.0
#: A flow document sits two levels down (``{"document": {...}}``) and may nest as deep as any
#: spec (``dp_assets.spec.document``, which bounds it again): the receiver's 32 refused flows
#: that ``dp publish`` took, so they could be opened in the designer but never saved from it.
MAX_BODY_DEPTH = SPEC_MAX_DEPTH + 2
#: The header the authenticating proxy names its user in; recorded as the author of a version
#: when roles are off (with roles on, the signed identity names the author: ``identity.py``).
USER_HEADER = "x-forwarded-user"

Body = TypeVar("Body", bound=BaseModel)


class ApiError(Exception):
    """An answer other than 2xx, with the message the client shows."""

    def __init__(self, status: int, message: str, **detail: Any):
        super().__init__(message)
        self.status, self.message, self.detail = status, message, detail


def error_response(status: int, message: str, **detail: Any) -> JSONResponse:
    return JSONResponse({"error": message, **detail}, status_code=status)


async def read_body(request: Request, model: type[Body]) -> Body:
    """The JSON body checked against ``model``; any problem is a 4xx naming it.

    A JSON media type is required, not only allowed: a page on another site can make the
    browser POST a body with no ``Content-Type`` (a ``Blob`` or bytes) without a CORS preflight,
    and the embedded designer takes every caller for the local admin. ``application/json`` is
    sent cross-site only after a preflight, which the designer never answers with CORS."""
    where = f"{request.method} {request.url.path}"
    try:
        content_type = request.headers.get("content-type")
        if content_type is None or not content_type.strip():
            raise Refused(415, f"the body for {where} must be JSON: send Content-Type: application/json")
        check_json_content_type(content_type, where)
        raw = await read_bounded_body(request, MAX_BODY_BYTES, BODY_TIMEOUT_SECONDS)
        data = parse_json_object(raw, where, MAX_BODY_DEPTH)
    except Refused as exc:
        raise ApiError(exc.status, exc.detail) from None
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'body'}: {e['msg']}" for e in exc.errors())
        raise ApiError(422, f"the body for {where} is not what it takes: {problems}") from None
