"""Response models of the API (they are the OpenAPI schema) and the time conversions they use.

Times leave the API as ISO-8601 in UTC (``2026-11-24T17:03:00.250000Z``); the store keeps epoch
seconds. Query parameters accept ISO-8601; a time without an offset is taken as UTC.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Generic, Literal, TypeVar

from pydantic import BaseModel, Field

T = TypeVar("T")


def to_iso(ts: float | None) -> datetime | None:
    return None if ts is None else datetime.fromtimestamp(float(ts), tz=UTC)


def to_epoch(dt: datetime | None) -> float | None:
    if dt is None:
        return None
    return (dt if dt.tzinfo is not None else dt.replace(tzinfo=UTC)).timestamp()


class Page(BaseModel, Generic[T]):
    """One page of a list; ask for the next with ``offset=next_offset`` (``null`` on the last page)."""

    items: list[T]
    total: int = Field(description="items matching the filters, over all pages")
    limit: int
    offset: int
    next_offset: int | None


class StoreHealth(BaseModel):
    path: str
    readable: bool
    schema_version: int | None = None
    error: str | None = None


class Health(BaseModel):
    status: Literal["ok", "degraded"] = Field(description="degraded: the store cannot be read yet")
    store: StoreHealth
    search_model: str | None = Field(description="model id of the image-search encoder; null: search by track only")


class Camera(BaseModel):
    camera_id: str
    modalities: list[str]
    n_tracks: int
    first_seen: datetime | None
    last_seen: datetime | None
    current_modality: str | None = Field(None, description="day/night cameras: the modality of the latest switch")
    status: str | None = Field(description="connected | reconnecting | ended | failed, when the store records it")
    reason: str | None = None
    status_at: datetime | None = None
    source: str | None = Field(None, description="where frames come from, credentials redacted")
    modality_switches: int = Field(0, description="day/night switches recorded (modality: auto cameras)")


class ModalitySpan(BaseModel):
    """A period in which a camera's frames were colour (rgb) or infrared (ir)."""

    camera_id: str
    modality: Literal["rgb", "ir"]
    t_start: datetime
    t_end: datetime | None = Field(description="None: the camera is still in this modality")
    switched_in: bool = Field(description="the span began with a day/night switch (false: the first recorded)")


class Track(BaseModel):
    track_uid: str
    camera_id: str
    modality: Literal["rgb", "ir"]
    t_start: datetime
    t_end: datetime
    duration_s: float
    n_frames: int
    n_clips: int
    identity_id: int | None
    thumbnail_url: str | None

    @classmethod
    def from_row(cls, r: dict[str, Any]) -> Track:
        return cls(track_uid=r["track_uid"], camera_id=r["camera_id"], modality=r["modality"],
                   t_start=to_iso(r["t_start"]), t_end=to_iso(r["t_end"]),
                   duration_s=round(float(r["t_end"]) - float(r["t_start"]), 3),
                   n_frames=r["n_frames"], n_clips=r["n_clips"], identity_id=r["identity_id"],
                   thumbnail_url=f"/tracks/{r['track_uid']}/thumbnail.jpg" if r["has_thumbnail"] else None)


class Thumbnails(BaseModel):
    """One representative crop per modality (RGB and thermal side by side on the dashboard)."""

    rgb: str | None
    ir: str | None


class Identity(BaseModel):
    identity_id: int
    n_tracks: int
    cameras: list[str]
    modalities: list[str]
    first_seen: datetime
    last_seen: datetime
    thumbnails: Thumbnails
    contact_sheet_url: str

    @classmethod
    def from_row(cls, r: dict[str, Any], thumb_modalities: set[str]) -> Identity:
        iid = r["identity_id"]
        urls = {m: (f"/identities/{iid}/thumbnail.jpg?modality={m}" if m in thumb_modalities else None)
                for m in ("rgb", "ir")}
        return cls(identity_id=iid, n_tracks=r["n_tracks"], cameras=r["cameras"], modalities=r["modalities"],
                   first_seen=to_iso(r["first_seen"]), last_seen=to_iso(r["last_seen"]),
                   thumbnails=Thumbnails(**urls), contact_sheet_url=f"/identities/{iid}/contact-sheet.jpg")


class TimelineEntry(Track):
    """A track of the person with the matcher's decision that put it in this identity."""

    link_kind: Literal["join", "new"] | None = Field(description="join: linked to an existing identity; new: founded it")
    link_score: float | None = Field(description="cosine similarity behind the decision")
    link_pair: str | None = Field(description="modality pair whose threshold applied (rgb-rgb, ir-ir, rgb-ir)")
    matched_track_uid: str | None = Field(description="the track it was matched with")

    @classmethod
    def from_row(cls, r: dict[str, Any]) -> TimelineEntry:
        return cls(**Track.from_row(r).model_dump(), link_kind=r["link_kind"], link_score=r["link_score"],
                   link_pair=r["link_pair"], matched_track_uid=r["matched_track_uid"])


class MergeEvent(BaseModel):
    winner: int
    loser: int
    score: float
    at: datetime
    evidence_track_uid: str | None


class IdentityDetail(Identity):
    merged_ids: list[int] = Field(description="identity ids merged into this one (they resolve here)")
    timeline: list[TimelineEntry] = Field(description="every track of the person, oldest first, across cameras "
                                                      "and modalities")
    merges: list[MergeEvent]


class SearchHit(BaseModel):
    identity_id: int
    score: float = Field(description="cosine similarity of the best-matching track of this identity")
    track_uid: str = Field(description="that best-matching track")
    camera_id: str
    modality: str
    n_tracks: int
    last_seen: datetime
    thumbnails: Thumbnails


class SearchResult(BaseModel):
    query: Literal["images", "track"]
    n_images: int
    track_uid: str | None
    modality: str
    model_id: str | None
    hits: list[SearchHit]


class PairCalibration(BaseModel):
    """The threshold one model uses for one modality pair, and the evidence behind it."""

    model_id: str
    pair: Literal["rgb_rgb", "ir_ir", "rgb_ir"]
    threshold: float = Field(description="cosine similarity a track needs to join an identity through this pair")
    source: Literal["manual", "auto", "default"] = Field(
        description="manual: matcher.thresholds; auto: placed at target_fmr of the site's own impostor pairs "
                    "(rgb_ir: robust sigmas above its cross-modal cohort); "
                    "default: the fallback (too little evidence yet, or calibration off)")
    n_genuine: int = Field(description="genuine samples: later clips of a track against the track so far")
    n_impostor: int = Field(description="impostor samples: tracks of one camera that overlap in time; for rgb_ir the "
                            "cohort: new tracks against random tracks of the other modality (presumed impostors)")
    impostor_rate: float | None = Field(description="share of impostor samples at or above the threshold")
    genuine_rate: float | None = Field(description="share of genuine samples at or above the threshold")
    target_fmr: float
    updated_at: datetime | None = Field(description="time of the newest evidence when this was computed")


class WatchlistEntry(BaseModel):
    """A watchlist entry: a track of ``model_id`` scoring ``threshold`` or more against one of its references
    is announced as a ``watchlist.hit`` event (once per track)."""

    id: int
    name: str
    model_id: str = Field(description="the model whose vectors the references are; tracks of other models never hit")
    threshold: float = Field(description="cosine similarity a track needs against its best reference")
    identity: int | None = Field(description="the identity it was made from (null: made from images)")
    created_at: datetime
    n_refs: int = Field(description="reference vectors: one per query image, or per track of the identity")
    n_hits: int = Field(description="tracks that hit it so far")
