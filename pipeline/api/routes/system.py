"""Liveness, Prometheus metrics and the camera list."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from ..deps import snapshot
from ..queries import StoreUnavailable
from ..schemas import Camera, Health, StoreHealth, to_iso

router = APIRouter()


@router.get("/health", response_model=Health, tags=["system"])
def health(request: Request) -> Health:
    """Liveness; ``degraded`` (still 200) while the store cannot be read, with the reason."""
    reader = request.app.state.reader
    encoder = request.app.state.encoder
    model = encoder.model_id if encoder is not None else None
    try:
        with reader.snapshot() as snap:
            version = snap.schema_version
    except StoreUnavailable as e:
        return Health(status="degraded", store=StoreHealth(path=str(reader.path), readable=False, error=str(e)),
                      search_model=model)
    return Health(status="ok", store=StoreHealth(path=str(reader.path), readable=True, schema_version=version),
                  search_model=model)


@router.get("/metrics", tags=["system"], response_class=Response,
            responses={200: {"content": {"text/plain": {}}, "description": "Prometheus text format"}})
def metrics(request: Request) -> Response:
    """Prometheus exposition: request counts and latency, refusals, store size."""
    from ..metrics import CONTENT_TYPE
    return Response(request.app.state.metrics.render(), media_type=CONTENT_TYPE)


@router.get("/cameras", response_model=list[Camera], tags=["cameras"])
def cameras(request: Request) -> list[Camera]:
    """Every camera the store knows: tracks seen, time span, and status where it is recorded."""
    with snapshot(request) as snap:
        rows = snap.cameras()
    return [Camera(**{**r, "first_seen": to_iso(r["first_seen"]), "last_seen": to_iso(r["last_seen"]),
                      "status_at": to_iso(r["status_at"])}) for r in rows]
