"""Site calibration (schema v5): the free evidence behind the thresholds, and each pair's threshold.

``calibration_scores`` keeps labelled scores the matcher gets for free (impostor pairs: two tracks of one
camera at once; genuine pairs: a later clip against its own track), per model and modality pair;
``calibration`` holds each pair's threshold as the matcher last computed it, for the CLI, the API and
the metrics. The matcher makes ``Evidence`` and ``PairCalibration`` and the store keeps them as they are.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from pipeline.store.base import Store
from pipeline.store.schema import V_CALIBRATION

PAIR_ORDER = "CASE pair WHEN 'rgb_rgb' THEN 0 WHEN 'ir_ir' THEN 1 ELSE 2 END"


@dataclass(frozen=True, slots=True)
class Evidence:
    """One free labelled score: ``kind`` genuine (``track_b`` None: a clip against its own track) or impostor.

    The matcher makes these and the store keeps them as they are (one class for both: a row is the fact)."""

    model_id: str
    pair: str
    kind: str
    score: float
    track_a: int
    track_b: int | None
    ts: float


@dataclass(frozen=True, slots=True)
class PairCalibration:
    """The threshold a model uses for one modality pair, where it came from, and the evidence behind it.

    Attributes:
        source: ``manual`` (configured), ``auto`` (placed by the evidence) or ``default`` (the fallback:
            too little evidence yet, calibration off, or a pair that cannot be calibrated on site).
        impostor_rate: share of the impostor samples at or above ``threshold`` (None without samples).
        genuine_rate: share of the genuine samples at or above ``threshold`` (None without samples).
        updated_at: time of the newest evidence when this was computed (source clock, epoch seconds).
    """

    model_id: str
    pair: str
    threshold: float
    source: str
    n_genuine: int
    n_impostor: int
    impostor_rate: float | None
    genuine_rate: float | None
    target_fmr: float
    updated_at: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


_THRESHOLD_COLUMNS = ("model_id", "pair", "threshold", "source", "n_genuine", "n_impostor", "impostor_rate",
                      "genuine_rate", "target_fmr", "updated_at")


def add_evidence(store: Store, rows: Sequence[Evidence]) -> None:
    store.execute_many("INSERT INTO calibration_scores (model_id, pair, kind, score, track_a, track_b, ts) "
                       "VALUES (?,?,?,?,?,?,?)",
                       [(e.model_id, e.pair, e.kind, e.score, e.track_a, e.track_b, e.ts) for e in rows])


def save_threshold(store: Store, c: PairCalibration, keep_samples: int | None = None) -> None:
    """Upsert a pair's threshold; with ``keep_samples``, prune that pair's evidence to the newest samples.

    Args:
        keep_samples: keep only this many newest samples per model, pair and kind once a kind has
            that many (the matcher counts only the newest); ``None`` keeps all.
    """
    store.execute(f"INSERT INTO calibration ({', '.join(_THRESHOLD_COLUMNS)}) VALUES (?,?,?,?,?,?,?,?,?,?) "
                  "ON CONFLICT(model_id, pair) DO UPDATE SET threshold = excluded.threshold, "
                  "source = excluded.source, n_genuine = excluded.n_genuine, n_impostor = excluded.n_impostor, "
                  "impostor_rate = excluded.impostor_rate, genuine_rate = excluded.genuine_rate, "
                  "target_fmr = excluded.target_fmr, updated_at = excluded.updated_at",
                  (c.model_id, c.pair, c.threshold, c.source, c.n_genuine, c.n_impostor, c.impostor_rate,
                   c.genuine_rate, c.target_fmr, c.updated_at))
    for kind, n in (("genuine", c.n_genuine), ("impostor", c.n_impostor)):
        if keep_samples is not None and n >= keep_samples:
            store.execute("DELETE FROM calibration_scores WHERE model_id = ? AND pair = ? AND kind = ? AND id <= "
                          "coalesce((SELECT id FROM calibration_scores WHERE model_id = ? AND pair = ? AND kind = ? "
                          "ORDER BY id DESC LIMIT 1 OFFSET ?), -1)",
                          (c.model_id, c.pair, kind, c.model_id, c.pair, kind, keep_samples))


def load_evidence(store: Store) -> list[Evidence]:
    """Every stored sample, oldest first (empty before schema v5)."""
    if store.schema_version < V_CALIBRATION:
        return []
    return [Evidence(str(m), str(p), str(k), float(s), int(a), None if b is None else int(b), float(ts))
            for m, p, k, s, a, b, ts in store.execute(
                "SELECT model_id, pair, kind, score, track_a, track_b, ts FROM calibration_scores ORDER BY id")]


def list_thresholds(store: Store, model_id: str | None = None) -> list[dict[str, Any]]:
    """Each model's thresholds per modality pair as the matcher last computed them (rgb_rgb, ir_ir, rgb_ir)."""
    if store.schema_version < V_CALIBRATION:
        return []
    where, params = (" WHERE model_id = ?", [model_id]) if model_id is not None else ("", [])
    return store.query(f"SELECT {', '.join(_THRESHOLD_COLUMNS)} FROM calibration{where} "
                       f"ORDER BY model_id, {PAIR_ORDER}", params)
