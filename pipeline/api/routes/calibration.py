"""The matcher's thresholds per model and modality pair: manual, placed by site calibration, or the fallback."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request

from pipeline.api.deps import snapshot
from pipeline.api.schemas import PairCalibration, to_iso

router = APIRouter()


@router.get("/calibration", response_model=list[PairCalibration], tags=["identities"])
def calibration(request: Request, model_id: Annotated[str | None, Query(min_length=1, max_length=256)] = None
                ) -> list[PairCalibration]:
    """Per model and modality pair, the threshold the matcher links with, where it came from and the
    genuine and impostor evidence behind it; empty until the matcher has run (or on a store older than v5)."""
    with snapshot(request) as snap:
        rows = snap.calibration(model_id)
    return [PairCalibration(**{**r, "updated_at": to_iso(r["updated_at"]) if r["updated_at"] else None}) for r in rows]
