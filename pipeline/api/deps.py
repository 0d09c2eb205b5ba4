"""Request-scoped helpers shared by the routes: store snapshots, pagination, time ranges."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated

from fastapi import HTTPException, Query, Request

from pipeline.api.queries import Snapshot, StoreReader, StoreUnavailable
from pipeline.api.schemas import to_epoch

MAX_LIMIT = 500
MAX_OFFSET = 10**9  # far past any store; keeps SQLite integers in range


@contextmanager
def snapshot(request: Request) -> Iterator[Snapshot]:
    """A read view of the store; 503 with the reason while the store cannot be read."""
    reader: StoreReader = request.app.state.reader
    try:
        with reader.snapshot() as snap:
            yield snap
    except StoreUnavailable as e:
        raise HTTPException(503, f"store unavailable: {e}") from None


@dataclass(frozen=True)
class PageParams:
    limit: int
    offset: int

    def next_offset(self, total: int) -> int | None:
        return self.offset + self.limit if self.offset + self.limit < total else None


def page_params(
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT, description="items per page")] = 50,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET, description="items to skip")] = 0,
) -> PageParams:
    return PageParams(limit, offset)


@dataclass(frozen=True)
class TimeRange:
    t_from: float | None
    t_to: float | None


def time_range(
    since: Annotated[datetime | None, Query(description="ISO-8601; items seen at or after this time (UTC if no offset)")] = None,
    until: Annotated[datetime | None, Query(description="ISO-8601; items seen at or before this time (UTC if no offset)")] = None,
) -> TimeRange:
    try:
        t_from, t_to = to_epoch(since), to_epoch(until)
    except (OverflowError, ValueError, OSError) as e:
        raise HTTPException(422, f"time out of range: {e}") from None
    if t_from is not None and t_to is not None and t_to < t_from:
        raise HTTPException(422, "until is before since")
    return TimeRange(t_from, t_to)
