"""HTTP routes: thin adapters that parse a request, call the `SolveService`, format the answer.

Helpers shared by the route modules live here: finding the service and the request id,
noticing that a client hung up, and answering an admitted solve as JSON or as a stream.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from app.jobs import TrackedJob
from app.service import SolveService
from app.sse import SSEResponse


def service_of(request: Request) -> SolveService:
    service: SolveService = request.app.state.service
    return service


def request_id_of(request: Request) -> str:
    return str(request.scope.get("state", {}).get("request_id", "-"))


def wants_event_stream(request: Request) -> bool:
    return "text/event-stream" in request.headers.get("accept", "")


async def client_disconnected(request: Request) -> None:
    """Return once the client has closed the connection (the body was read already)."""
    while True:
        message = await request.receive()
        if message["type"] == "http.disconnect":
            return


async def answer(request: Request, record: TrackedJob, stream: bool) -> Response:
    """The admitted solve's events as SSE (cancelled if the client leaves), or its result."""
    service = service_of(request)
    if stream:
        events = service.events(record, after=-1, cancel_on_close=True)
        return SSEResponse(events, service.settings.sse_retry_ms)
    result = await service.wait(record, client_disconnected(request))
    return JSONResponse(result)
