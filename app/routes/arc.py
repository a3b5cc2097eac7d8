"""`POST /v1/solve/arc` and `POST /v1/jobs/arc`: answer an ARC task (demonstration pairs and
test inputs) with up to two voted attempts per test input.

Registered before the generic `/v1/solve/{task}` route, which it replaces for ARC. A job made
here is read, followed and cancelled through the generic `/v1/jobs/{id}` routes.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from app.arc_schemas import ArcResult, ArcSolveRequest
from app.arc_service import ArcService
from app.routes import answer, request_id_of, service_of, wants_event_stream
from app.schemas import PROBLEM_RESPONSES, JobObject
from app.sse import MEDIA_TYPE

router = APIRouter(tags=["arc"])
_RESPONSES = PROBLEM_RESPONSES
_STREAM_DOC = {"description": "The result as JSON; when streaming, server-sent events: "
                              "solve.accepted, arc.adapt (test-time adaptation progress, for a "
                              "task the model never saw), one arc.progress per version "
                              "answered, then solve.completed | solve.failed | solve.cancelled",
               "content": {MEDIA_TYPE: {}}}


@router.post("/v1/solve/arc", response_model=ArcResult, responses={**_RESPONSES, 200: _STREAM_DOC})
async def solve_arc(body: ArcSolveRequest, request: Request) -> Response:
    """Answer an ARC task; `"stream": true` or `Accept: text/event-stream` streams progress."""
    service = service_of(request)
    stream = body.stream or wants_event_stream(request)
    record = ArcService.of(service).admit(body, kind="solve",
                                          request_id=request_id_of(request), keep_events=stream)
    return await answer(request, record, stream)


@router.post("/v1/jobs/arc", status_code=202, response_model=JobObject, responses=_RESPONSES)
async def create_arc_job(body: ArcSolveRequest, request: Request) -> Response:
    """Queue an ARC task; poll `Location` or follow `{Location}/events`."""
    service = service_of(request)
    record = ArcService.of(service).admit(body, kind="job",
                                          request_id=request_id_of(request), keep_events=True)
    return JSONResponse(record.snapshot(), status_code=202,
                        headers={"Location": f"/v1/jobs/{record.id}"})
