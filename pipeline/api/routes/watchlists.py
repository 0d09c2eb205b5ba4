"""``/watchlists``: standing questions ("tell me when this person shows up"), behind the admin token.

Entries are made from images of one person (encoded with the server's search encoder, as ``POST
/search`` does, one reference per image) or from a stored identity (its tracks' embeddings), and stored with their model and
threshold; the matcher compares each new or updated track with them and announces ``watchlist.hit``.
These routes and the erasure requests are the only ones that write the store: each opens it for one short
transaction beside the matcher (SQLite WAL lets them share the file; a PostgreSQL store takes any number
of writers, the matcher's lock only keeps out a second matcher).
"""

from __future__ import annotations

from pathlib import Path as PathLib
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, File, Form, HTTPException, Path, Request, Response, UploadFile
from starlette.concurrency import run_in_threadpool

from models.errors import StoreError
from pipeline.api.auth import require_admin
from pipeline.api.images import encode_uploads
from pipeline.api.schemas import WatchlistEntry, to_iso
from pipeline.store import watchlists
from pipeline.store.base import Store, is_postgres

router = APIRouter(tags=["watchlists"], dependencies=[Depends(require_admin)], responses={
    403: {"description": "no admin token configured, or the request does not carry it"},
    503: {"description": "the store does not exist yet or cannot be written now"},
})


def _open(request: Request) -> Store:
    reader = request.app.state.reader
    if not is_postgres(reader.location) and not PathLib(reader.location).is_file():
        raise HTTPException(503, f"store {reader.path} does not exist yet (has the replay or matcher run?)")
    try:   # migrated to this build's schema if older (watchlists need v7)
        return Store(reader.location, network=reader.network)
    except StoreError as e:
        raise HTTPException(503, f"store unavailable: {e}") from None


def _entry(e: watchlists.WatchEntry) -> WatchlistEntry:
    return WatchlistEntry(id=e.id, name=e.name, model_id=e.model_id, threshold=e.threshold, identity=e.identity_id,
                          created_at=to_iso(e.created_at), n_refs=e.n_refs, n_hits=e.n_hits)


def _list(request: Request) -> list[WatchlistEntry]:
    with _open(request) as store:
        return [_entry(e) for e in watchlists.list_entries(store)]


@router.get("/watchlists", response_model=list[WatchlistEntry])
async def list_watchlists(request: Request) -> list[WatchlistEntry]:
    """Every watchlist entry, oldest first."""
    return await run_in_threadpool(_list, request)


@router.post("/watchlists", response_model=WatchlistEntry, status_code=201, responses={
    404: {"description": "unknown identity"},
    409: {"description": "the identity has no embedded track yet, or the server has no image encoder"},
    413: {"description": "an image or the request is too large"},
    415: {"description": "an upload is not a JPEG, PNG, WebP or BMP image"},
    422: {"description": "neither or both of images and identity, too many images, a bad threshold"},
})
async def add_watchlist(
    request: Request,
    name: Annotated[str, Form(min_length=1, max_length=watchlists.MAX_NAME_CHARS, description="what hits are "
                                                                                             "called")],
    images: Annotated[list[UploadFile] | None, File(description="crops of one person, encoded as one clip")] = None,
    identity: Annotated[int | None, Form(ge=1, lt=2**63, description="make it from this stored identity")] = None,
    threshold: Annotated[float | None, Form(ge=-1, le=1, description="cosine a track needs (default "
                                                                    "events.watchlist_threshold)")] = None,
    modality: Annotated[Literal["rgb", "ir"], Form(description="modality of the uploaded images")] = "rgb",
) -> WatchlistEntry:
    """Add an entry from images of one person or from an identity; hits are announced from the matcher's next
    refresh (``events.watchlist_refresh_s``)."""
    cfg = request.app.state.cfg
    images = [f for f in images or [] if f is not None]
    if bool(images) == (identity is not None):
        raise HTTPException(422, "give either images or identity (exactly one)")
    thr = threshold if threshold is not None else request.app.state.events_cfg.watchlist_threshold
    if identity is not None:
        return await run_in_threadpool(_add_identity, request, name, identity, thr)
    if len(images) > cfg.max_upload_files:
        raise HTTPException(422, f"at most {cfg.max_upload_files} images per entry, got {len(images)}")
    encoder = request.app.state.encoder
    if encoder is None:
        raise HTTPException(409, "this server has no re-ID encoder (api.checkpoint): add an identity instead")
    vectors = await encode_uploads(request, images, encoder, modality, each=True)
    return await run_in_threadpool(_add_vectors, request, name, encoder.model_id, thr, vectors)


def _add_vectors(request: Request, name: str, model_id: str, threshold: float, vectors) -> WatchlistEntry:  # noqa: ANN001
    with _open(request) as store:
        try:
            entry_id = watchlists.add_entry(store, name, model_id, threshold, vectors)
        except StoreError as e:
            raise HTTPException(422, str(e)) from None
        return _entry(watchlists.get_entry(store, entry_id))  # type: ignore[arg-type]


def _add_identity(request: Request, name: str, identity: int, threshold: float) -> WatchlistEntry:
    with _open(request) as store:
        try:
            model_id, track_nos, vectors = watchlists.identity_references(store, identity)
        except StoreError as e:
            raise HTTPException(404 if "no identity" in str(e) else 409, str(e)) from None
        try:
            entry_id = watchlists.add_entry(store, name, model_id, threshold, vectors, identity_id=identity,
                                            track_nos=track_nos)
        except StoreError as e:
            raise HTTPException(422, str(e)) from None
        return _entry(watchlists.get_entry(store, entry_id))  # type: ignore[arg-type]


@router.delete("/watchlists/{entry_id}", status_code=204, response_class=Response,
               responses={404: {"description": "no such entry"}})
async def remove_watchlist(request: Request, entry_id: Annotated[int, Path(ge=1, lt=2**63)]) -> Response:
    """Delete an entry with its references and recorded hits."""
    def remove() -> bool:
        with _open(request) as store:
            return watchlists.remove_entry(store, entry_id)

    if not await run_in_threadpool(remove):
        raise HTTPException(404, f"no watchlist entry {entry_id}")
    return Response(status_code=204)
