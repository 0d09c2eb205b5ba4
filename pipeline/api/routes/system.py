"""Liveness, Prometheus metrics and the camera list."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Path, Request, Response

from pipeline.api.deps import TimeRange, snapshot, time_range
from pipeline.api.queries import StoreUnavailable
from pipeline.api.schemas import Camera, Health, ModalitySpan, StoreHealth, to_iso

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
    from pipeline.api.metrics import CONTENT_TYPE
    return Response(request.app.state.metrics.render(), media_type=CONTENT_TYPE)


@router.get("/cameras", response_model=list[Camera], tags=["cameras"])
def cameras(request: Request) -> list[Camera]:
    """Every camera the store knows: tracks seen, time span, and status where it is recorded."""
    with snapshot(request) as snap:
        rows = snap.cameras()
    return [Camera(**{**r, "first_seen": to_iso(r["first_seen"]), "last_seen": to_iso(r["last_seen"]),
                      "status_at": to_iso(r["status_at"])}) for r in rows]


@router.get("/cameras/{camera_id}/modality", response_model=list[ModalitySpan], tags=["cameras"],
            responses={404: {"description": "unknown camera"}})
def camera_modality(request: Request, span: Annotated[TimeRange, Depends(time_range)],
                    camera_id: Annotated[str, Path(min_length=1, max_length=256)]) -> list[ModalitySpan]:
    """The camera's modality timeline: when its frames were colour and when infrared (day/night cameras
    switch at dusk and dawn; fixed cameras have one span), overlapping [since, until], oldest first."""
    with snapshot(request) as snap:
        spans = snap.modality_timeline(camera_id, span.t_from, span.t_to)
        known = bool(spans) or any(c["camera_id"] == camera_id for c in snap.cameras())
    if not known:
        raise HTTPException(404, f"no camera {camera_id!r}")
    return [ModalitySpan(**{**s, "t_start": to_iso(s["t_start"]), "t_end": to_iso(s["t_end"])}) for s in spans]
