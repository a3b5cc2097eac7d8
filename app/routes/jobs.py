"""The jobs API: create a solve job (202), read it, follow its events (resumable), cancel it.

A job outlives the connection that made it: closing an events stream does not cancel it, only
`DELETE` does. Finished jobs stay readable for `TRM_JOB_TTL_S` seconds, within the job store's
caps (app/jobs.py). A job that could not be queued is refused (503), never answered with a 202.
"""

from __future__ import annotations

from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import JSONResponse, Response

from app.routes import request_id_of, service_of
from app.schemas import PROBLEM_RESPONSES, JobObject, JobRequest
from app.sse import MEDIA_TYPE, SSEResponse, parse_last_event_id

router = APIRouter(tags=["jobs"])


@router.post("/v1/jobs", status_code=202, response_model=JobObject,
             responses=PROBLEM_RESPONSES)
async def create_job(body: JobRequest, request: Request) -> Response:
    """Queue a solve; poll `Location` or follow `{Location}/events`."""
    service = service_of(request)
    record = service.admit(body.task, body, kind="job", request_id=request_id_of(request),
                           keep_events=True)
    await service.enqueued(record)
    return JSONResponse(record.snapshot(), status_code=202,
                        headers={"Location": f"/v1/jobs/{record.id}"})


@router.get("/v1/jobs/{job_id}", response_model=JobObject, responses=PROBLEM_RESPONSES)
async def get_job(job_id: str, request: Request) -> Response:
    return JSONResponse((await service_of(request).find_job(job_id)).snapshot())


@router.get("/v1/jobs/{job_id}/events", responses={**PROBLEM_RESPONSES,
                                                    200: {"content": {MEDIA_TYPE: {}}}})
async def job_events(job_id: str, request: Request,
                     last_event_id: str | None = Query(None, description="fallback for "
                                                       "clients that cannot send the header"),
                     last_event_id_header: str | None = Header(None, alias="Last-Event-ID"),
                     ) -> Response:
    """The job's events after `Last-Event-ID` (all of them without it), then live ones."""
    service = service_of(request)
    record = await service.find_job(job_id)
    after = parse_last_event_id(last_event_id_header, last_event_id)
    events = service.events(record, after=after, cancel_on_close=False)
    return SSEResponse(events, service.settings.sse_retry_ms)


@router.delete("/v1/jobs/{job_id}", status_code=204, responses=PROBLEM_RESPONSES)
async def cancel_job(job_id: str, request: Request) -> Response:
    """Cancel a queued or running job; 409 when it already finished."""
    await service_of(request).cancel_job(job_id)
    return Response(status_code=204)
