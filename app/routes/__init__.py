"""HTTP routes: thin adapters that parse a request, call the `SolveService`, format the answer.

Helpers shared by the route modules live here: finding the service and the request id, and
noticing that a client hung up.
"""

from __future__ import annotations

from starlette.requests import Request

from app.service import SolveService


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
