"""``POST /search``: image(s) of one person, or a track id → the nearest identities with scores."""

from __future__ import annotations

import logging
from typing import Annotated, Literal

import numpy as np
from fastapi import APIRouter, File, Form, HTTPException, Request, UploadFile
from starlette.concurrency import run_in_threadpool

from pipeline.api.deps import snapshot
from pipeline.api.images import encode_uploads
from pipeline.api.schemas import SearchHit, SearchResult, Thumbnails, to_iso
from pipeline.api.search import IdentityHit

log = logging.getLogger(__name__)

router = APIRouter(tags=["search"])


@router.post("/search", response_model=SearchResult, responses={
    404: {"description": "unknown track id"},
    409: {"description": "the track has no embedding yet, or the server has no image encoder"},
    413: {"description": "an image or the request is too large, in bytes or in pixels (read from the headers)"},
    415: {"description": "an upload is not a JPEG, PNG, WebP or BMP image"},
    422: {"description": "neither or both of images and track_id, too many images, empty or corrupt image"},
    503: {"description": "too many image searches decoding at once (Retry-After), or the store cannot be read"},
})
async def search(
    request: Request,
    images: Annotated[list[UploadFile] | None, File(description="crops of one person (JPEG, PNG, WebP, BMP); "
                                                                "several are encoded as one clip")] = None,
    track_id: Annotated[str | None, Form(min_length=1, max_length=256, description="search with this track's "
                                                                                    "embedding instead")] = None,
    modality: Annotated[Literal["rgb", "ir"], Form(description="modality of the uploaded images")] = "rgb",
    k: Annotated[int, Form(ge=1, le=50, description="identities to return")] = 5,
) -> SearchResult:
    """Nearest identities by X-ReID embedding, scored by cosine similarity of their best track.

    Give either ``images`` (multipart files, encoded with the same encoder as the re-ID workers)
    or ``track_id`` (uses the track's stored embedding; the track itself is left out of the results).
    """
    cfg = request.app.state.cfg
    metrics = request.app.state.metrics
    images = [f for f in images or [] if f is not None]
    # what was asked, for the audit log (never the images themselves)
    request.state.audit_params = {"track_id": track_id, "modality": modality, "k": k, "n_images": len(images)}
    if bool(images) == (track_id is not None):
        raise HTTPException(422, "give either images or track_id (exactly one)")
    if track_id is not None:
        return await run_in_threadpool(_search_track, request, track_id, k)
    if len(images) > cfg.max_upload_files:
        metrics.rejected_uploads.labels("too_many_files").inc()
        raise HTTPException(422, f"at most {cfg.max_upload_files} images per search, got {len(images)}")
    encoder = request.app.state.encoder
    if encoder is None:
        raise HTTPException(409, "this server has no re-ID checkpoint (api.checkpoint): search by track_id instead")
    vectors = await encode_uploads(request, images, encoder, modality,
                                   on_reject=lambda reason: metrics.rejected_uploads.labels(reason).inc())
    query = np.asarray(vectors, dtype=np.float32)[0]
    return await run_in_threadpool(_answer, request, query, encoder.model_id, k, None, "images", len(images),
                                   None, modality)


def _search_track(request: Request, track_uid: str, k: int) -> SearchResult:
    with snapshot(request) as snap:
        track = snap.track(track_uid)
        if track is None:
            raise HTTPException(404, f"no track {track_uid!r}")
        emb = snap.track_embedding(track_uid)
    if emb is None:
        raise HTTPException(409, f"track {track_uid!r} has no embedding yet")
    vector, model_id, track_no = emb
    return _answer(request, vector, model_id, k, track_no, "track", 0, track_uid, track["modality"])


def _answer(request: Request, query: np.ndarray, model_id: str, k: int, exclude: int | None,
            kind: Literal["images", "track"], n_images: int, track_uid: str | None, modality: str) -> SearchResult:
    with snapshot(request) as snap:
        hits: list[IdentityHit] = request.app.state.search_index.nearest(snap, model_id, query, k, exclude)
        summaries = snap.identities_by_root([h.identity_id for h in hits])
        thumbs = snap.thumbnail_modalities([h.identity_id for h in hits])
    out = []
    for h in hits:
        s = summaries.get(h.identity_id)
        if s is None:
            continue
        have = thumbs.get(h.identity_id, set())
        urls = {m: (f"/identities/{h.identity_id}/thumbnail.jpg?modality={m}" if m in have else None)
                for m in ("rgb", "ir")}
        out.append(SearchHit(identity_id=h.identity_id, score=round(h.score, 6), track_uid=h.track_uid,
                             camera_id=h.camera_id, modality=h.modality, n_tracks=s["n_tracks"],
                             last_seen=to_iso(s["last_seen"]), thumbnails=Thumbnails(**urls)))
    request.state.audit_count = len(out)
    return SearchResult(query=kind, n_images=n_images, track_uid=track_uid, modality=modality, model_id=model_id,
                        hits=out)
