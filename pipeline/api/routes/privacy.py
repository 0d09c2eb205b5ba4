"""Admin routes: erase a person or a track, read the audit log and the erasure tombstones.

Every route here depends on ``require_admin``: the read token gets 403. An erasure is queued in the
store and executed by the running matcher (or, when none runs, by this process), exactly as
``xreid forget`` does (``pipeline/matcher/forget.py``); afterwards ``GET /identities/{id}`` answers 404.
On a PostgreSQL store the API only queues: its replicas run on other machines than the matcher and
cannot reach the crops it keeps, so the matcher executes the request (at once when it runs, else when
it starts) and the answer is 202 until then.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path as PathLib
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request, Response
from pydantic import BaseModel, Field

from models.errors import StoreError
from pipeline.api.auth import require_admin
from pipeline.api.deps import MAX_OFFSET, PageParams, TimeRange, page_params, snapshot, time_range
from pipeline.api.schemas import Page, to_iso
from pipeline.matcher.forget import Eraser, ForgetOutcome, UnknownTarget, request_forget
from pipeline.store.audit import AuditFilter
from pipeline.store.base import Store, is_postgres
from pipeline.store.crops import CropKeeper, crops_dir
from pipeline.store.erasure import Selector, list_erasures

router = APIRouter(tags=["privacy"])

FORGET_WAIT_S = 10.0   # how long a DELETE waits for the running matcher before answering 202
Admin = Annotated[str, Depends(require_admin)]


class ErasureOut(BaseModel):
    """A forget request: its state and, once executed, its tombstone's counts."""

    state: Literal["done", "already", "pending", "failed"] = Field(
        description="done: erased now; already: an earlier request erased it; pending: queued, the matcher has not "
                    "finished it yet (202)")
    erasure_id: int
    kind: str
    target: str = Field(description="the identity id, or for a track the hash of its uid (the uid is not kept)")
    requested_by: str
    requested_at: datetime
    executed_by: str | None
    done_at: datetime | None
    n_tracks: int
    n_identities: int
    n_crops: int = Field(description="tracks whose crop folders were deleted")
    n_files: int = Field(description="report files deleted or rewritten (contact sheets, identities.json, tracks.jsonl)")
    n_dead: int = Field(description="dead letters deleted from the bus")

    @classmethod
    def from_outcome(cls, o: ForgetOutcome) -> ErasureOut:
        e = o.erasure
        return cls(state=o.state, erasure_id=e.id, kind=e.kind, target=e.target, requested_by=e.requested_by,  # type: ignore[arg-type]
                   requested_at=to_iso(e.requested_at), executed_by=e.executed_by, done_at=to_iso(e.done_at),
                   n_tracks=e.n_tracks, n_identities=e.n_identities, n_crops=e.n_crops, n_files=e.n_files,
                   n_dead=e.n_dead)


class AuditEntryOut(BaseModel):
    at: datetime
    token_id: str = Field(description="SHA-256 prefix of the token used ('none': the server has no auth)")
    method: str
    route: str
    params: dict
    status: int
    result_count: int
    client: str | None


ERASE_RESPONSES = {202: {"description": "queued; the running matcher has not finished it within the wait"},
                   403: {"description": "not the admin token"}, 404: {"description": "unknown id, never erased"}}


def _forget(request: Request, response: Response, sel: Selector, admin: str) -> ErasureOut:
    reader = request.app.state.reader
    location = reader.location
    shared = is_postgres(location)
    if not shared and not PathLib(location).is_file():
        raise HTTPException(503, f"store {location} does not exist yet")
    client = request.client.host if request.client else "?"
    who = f"api:{admin}@{client}"
    try:
        with Store(location, network=reader.network) as store:
            make = None if shared else lambda: Eraser(store, CropKeeper(crops_dir(location)), None, who)
            outcome = request_forget(store, sel, who, make, wait_s=FORGET_WAIT_S)
    except UnknownTarget as e:
        raise HTTPException(404, str(e)) from None
    except StoreError as e:
        raise HTTPException(503, f"cannot erase: {e}") from None
    if outcome.state == "failed":
        raise HTTPException(500, f"erasure #{outcome.erasure.id} failed: {outcome.erasure.reason}")
    if outcome.state == "pending":
        response.status_code = 202
    request.state.audit_count = outcome.erasure.n_tracks
    return ErasureOut.from_outcome(outcome)


@router.delete("/identities/{identity_id}", response_model=ErasureOut, responses=ERASE_RESPONSES)
def delete_identity(request: Request, response: Response, admin: Admin,
                    identity_id: Annotated[int, Path(ge=0, le=MAX_OFFSET)]) -> ErasureOut:
    """Erase a person: every track of the identity (and of identities merged into it), their crops,
    embeddings, links, merges, gallery vectors, contact sheets and dead letters. Idempotent."""
    return _forget(request, response, Selector("identity", str(identity_id)), admin)


@router.delete("/tracks/{track_uid}", response_model=ErasureOut, responses=ERASE_RESPONSES)
def delete_track(request: Request, response: Response, admin: Admin,
                 track_uid: Annotated[str, Path(min_length=1, max_length=256)]) -> ErasureOut:
    """Erase one track everywhere (its identity stays when it has other tracks). Idempotent."""
    return _forget(request, response, Selector("track", track_uid), admin)


@router.get("/audit", response_model=Page[AuditEntryOut], responses={403: {"description": "not the admin token"}})
def audit_log(request: Request, _admin: Admin, page: Annotated[PageParams, Depends(page_params)],
              span: Annotated[TimeRange, Depends(time_range)],
              token_id: Annotated[str | None, Query(max_length=64, description="only this token id")] = None,
              route: Annotated[str | None, Query(max_length=256, description="only this route template")] = None,
              ) -> Page[AuditEntryOut]:
    """Who queried what, newest first: time, token id, route, parameters, status, result count, client."""
    try:
        entries, total = request.app.state.audit_log.entries(AuditFilter(span.t_from, span.t_to, token_id, route),
                                                             page.limit, page.offset)
    except (StoreError, OSError) as e:
        raise HTTPException(503, f"audit log unavailable: {e}") from None
    request.state.audit_count = len(entries)
    items = [AuditEntryOut(at=to_iso(e.ts), token_id=e.token_id, method=e.method, route=e.route,  # type: ignore[arg-type]
                           params=dict(e.params), status=e.status, result_count=e.result_count, client=e.client)
             for e in entries]
    return Page[AuditEntryOut](items=items, total=total, limit=page.limit, offset=page.offset,
                               next_offset=page.next_offset(total))


@router.get("/erasures", response_model=list[ErasureOut], responses={403: {"description": "not the admin token"}})
def erasures(request: Request, _admin: Admin,
             limit: Annotated[int, Query(ge=1, le=500)] = 100) -> list[ErasureOut]:
    """Forget requests and their tombstones, newest first."""
    with snapshot(request) as snap:
        rows = list_erasures(snap.store, limit)
    request.state.audit_count = len(rows)
    state = {"done": "done", "failed": "failed"}
    return [ErasureOut.from_outcome(ForgetOutcome(state.get(e.status, "pending"), e)) for e in rows]
