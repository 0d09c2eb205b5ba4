"""Identities: "where else was this person seen?" — list, one person's timeline, thumbnails."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request, Response

from pipeline.api.deps import MAX_OFFSET, PageParams, TimeRange, page_params, snapshot, time_range
from pipeline.api.images import contact_sheet
from pipeline.api.queries import Snapshot
from pipeline.api.schemas import Identity, IdentityDetail, MergeEvent, Page, TimelineEntry, to_iso
from pipeline.store.tracks import TrackFilter

router = APIRouter(tags=["identities"])

IdentityId = Annotated[int, Path(ge=0, le=MAX_OFFSET, description="the identity's id")]
JPEG = {200: {"content": {"image/jpeg": {}}, "description": "JPEG image"}, 404: {"description": "unknown id"}}


@router.get("/identities", response_model=Page[Identity])
def list_identities(
    request: Request,
    page: Annotated[PageParams, Depends(page_params)],
    span: Annotated[TimeRange, Depends(time_range)],
    camera: Annotated[str | None, Query(min_length=1, max_length=256, description="seen on this camera")] = None,
    modality: Annotated[Literal["rgb", "ir"] | None, Query(description="seen in this modality")] = None,
) -> Page[Identity]:
    """Identities most recently seen first; filters keep those with a matching track."""
    with snapshot(request) as snap:
        rows, total = snap.identities(TrackFilter(camera, modality, span.t_from, span.t_to), page.limit, page.offset)
        thumbs = snap.thumbnail_modalities([r["identity_id"] for r in rows])
    items = [Identity.from_row(r, thumbs.get(r["identity_id"], set())) for r in rows]
    request.state.audit_count = len(items)
    return Page[Identity](items=items, total=total, limit=page.limit, offset=page.offset,
                          next_offset=page.next_offset(total))


@router.get("/identities/{identity_id}", response_model=IdentityDetail,
            responses={404: {"description": "unknown identity"}})
def get_identity(request: Request, identity_id: IdentityId) -> IdentityDetail:
    """One person: every track across cameras and modalities as a timeline (oldest first), with the
    link evidence of each track and the merges that formed the identity. An id that was merged
    into another answers with the identity it lives on as."""
    with snapshot(request) as snap:
        root, row = _identity(snap, identity_id)
        tracks = snap.identity_tracks(root)
        merges = snap.merges(root)
        thumbs = snap.thumbnail_modalities([root]).get(root, set())
    base = Identity.from_row(row, thumbs)
    return IdentityDetail(**base.model_dump(), merged_ids=row["merged_ids"],
                          timeline=[TimelineEntry.from_row(t) for t in tracks],
                          merges=[MergeEvent(winner=m["winner"], loser=m["loser"], score=m["score"], at=to_iso(m["ts"]),
                                             evidence_track_uid=m["evidence_track_uid"]) for m in merges])


def _identity(snap: Snapshot, identity_id: int) -> tuple[int, dict]:
    root = snap.resolve(identity_id)
    row = snap.identity(root) if root is not None else None
    if root is None or row is None:
        raise HTTPException(404, f"no identity {identity_id}")
    return root, row


@router.get("/identities/{identity_id}/thumbnail.jpg", response_class=Response, responses=JPEG)
def identity_thumbnail(
    request: Request, identity_id: IdentityId,
    modality: Annotated[Literal["rgb", "ir"] | None, Query(description="crop of this modality")] = None,
) -> Response:
    """The crop of the identity's longest-observed track (of ``modality`` when given)."""
    with snapshot(request) as snap:
        root, _ = _identity(snap, identity_id)
        crops = snap.identity_thumbnails(root, modality, limit=1)
    if not crops:
        raise HTTPException(404, f"identity {identity_id} has no {modality + ' ' if modality else ''}thumbnail")
    return Response(crops[0], media_type="image/jpeg", headers={"cache-control": "private, max-age=60"})


@router.get("/identities/{identity_id}/contact-sheet.jpg", response_class=Response, responses=JPEG)
def identity_contact_sheet(
    request: Request, identity_id: IdentityId,
    modality: Annotated[Literal["rgb", "ir"] | None, Query()] = None,
    max_tiles: Annotated[int, Query(ge=1, le=64)] = 24,
) -> Response:
    """A grid of the identity's track crops, longest-observed first."""
    with snapshot(request) as snap:
        root, _ = _identity(snap, identity_id)
        crops = snap.identity_thumbnails(root, modality, limit=max_tiles)
    if not crops:
        raise HTTPException(404, f"identity {identity_id} has no thumbnails")
    return Response(contact_sheet(crops), media_type="image/jpeg", headers={"cache-control": "private, max-age=60"})
