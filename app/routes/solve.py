"""`POST /v1/solve/{task}`: solve one puzzle, answering JSON or, when asked, server-sent events.

Every refusal (unknown task or model, bad options or puzzle, full queue, draining) is raised by
`admit` before the response starts, so it keeps its own HTTP status; later failures of a stream
arrive in-band as `solve.failed`.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from app.routes import answer, request_id_of, service_of, wants_event_stream
from app.schemas import PROBLEM_RESPONSES, SolveRequest, SolveResult
from app.sse import MEDIA_TYPE

router = APIRouter(tags=["solve"])

_STREAM_DOC = {"description": "The result as JSON; when streaming, server-sent events: "
                              "solve.accepted, one solve.step per supervision step, then "
                              "solve.completed | solve.failed | solve.cancelled",
               "content": {MEDIA_TYPE: {}}}


@router.post("/v1/solve/{task}", response_model=SolveResult,
             responses={**PROBLEM_RESPONSES, 200: _STREAM_DOC})
async def solve(task: str, body: SolveRequest, request: Request) -> Response:
    """Solve a puzzle; `"stream": true` or `Accept: text/event-stream` streams every step."""
    service = service_of(request)
    stream = body.stream or wants_event_stream(request)
    record = service.admit(task, body, kind="solve", request_id=request_id_of(request),
                           keep_events=stream)
    return await answer(request, record, stream)
