"""Tracks: filtered, paginated listing, one track, its thumbnail."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request, Response

from pipeline.api.deps import MAX_OFFSET, PageParams, TimeRange, page_params, snapshot, time_range
from pipeline.api.schemas import Page, Track
from pipeline.store.tracks import TrackFilter

router = APIRouter(tags=["tracks"])

TrackUid = Annotated[str, Path(min_length=1, max_length=256, description="the track's uid")]
JPEG = {200: {"content": {"image/jpeg": {}}, "description": "JPEG image"}, 404: {"description": "unknown id"}}


@router.get("/tracks", response_model=Page[Track])
def list_tracks(
    request: Request,
    page: Annotated[PageParams, Depends(page_params)],
    span: Annotated[TimeRange, Depends(time_range)],
    camera: Annotated[str | None, Query(min_length=1, max_length=256, description="camera id")] = None,
    modality: Annotated[Literal["rgb", "ir"] | None, Query()] = None,
    identity: Annotated[int | None, Query(ge=0, le=MAX_OFFSET, description="identity id")] = None,
) -> Page[Track]:
    """Tracks newest first, filtered by camera, modality, identity and overlap with [since, until]."""
    f = TrackFilter(camera, modality, span.t_from, span.t_to, identity)
    with snapshot(request) as snap:
        rows, total = snap.tracks(f, page.limit, page.offset)
    request.state.audit_count = len(rows)
    return Page[Track](items=[Track.from_row(r) for r in rows], total=total, limit=page.limit,
                       offset=page.offset, next_offset=page.next_offset(total))


@router.get("/tracks/{track_uid}", response_model=Track, responses={404: {"description": "unknown track"}})
def get_track(request: Request, track_uid: TrackUid) -> Track:
    with snapshot(request) as snap:
        row = snap.track(track_uid)
    if row is None:
        raise HTTPException(404, f"no track {track_uid!r}")
    return Track.from_row(row)


@router.get("/tracks/{track_uid}/thumbnail.jpg", response_class=Response, responses=JPEG)
def track_thumbnail(request: Request, track_uid: TrackUid) -> Response:
    """The track's representative person crop."""
    with snapshot(request) as snap:
        exists = snap.track(track_uid) is not None
        data = snap.track_thumbnail(track_uid) if exists else None
    if not exists:
        raise HTTPException(404, f"no track {track_uid!r}")
    if data is None:
        raise HTTPException(404, f"track {track_uid!r} has no thumbnail")
    return Response(data, media_type="image/jpeg", headers={"cache-control": "private, max-age=300"})
