"""``GET /events/stream``: the live events as Server-Sent Events (docs/events.md)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import StreamingResponse

router = APIRouter(tags=["events"])

_ID = r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$"   # pipeline/events/event.py EVENT_ID_PATTERN


@router.get("/events/stream", response_class=StreamingResponse, responses={
    200: {"content": {"text/event-stream": {}},
          "description": "one SSE frame per event (id: event_id, event: kind, data: the event JSON); "
                         "`: keepalive` comments while idle; `stream.dropped` when this client fell behind"},
    422: {"description": "a malformed Last-Event-ID"},
})
async def stream(
    request: Request,
    last_event_id: Annotated[str | None, Header(alias="Last-Event-ID", pattern=_ID,
                                                description="resume after this event (browsers send it "
                                                            "when they reconnect)")] = None,
    after: Annotated[str | None, Query(pattern=_ID, description="resume after this event (for clients that "
                                                                "cannot set the header)")] = None,
) -> StreamingResponse:
    """Every event the matcher announces from now on, as it commits them (track, identity, camera,
    day/night and watchlist events). The stream never ends by itself; reconnect with ``Last-Event-ID``
    to get what was announced meanwhile (as far as the server's replay buffer reaches)."""
    sse = request.app.state.sse
    return StreamingResponse(sse.stream(last_event_id or after), media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
