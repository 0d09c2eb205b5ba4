"""Site calibration: each model's thresholds placed by the evidence its own cameras give for free.

A re-ID model's similarity scale differs from model to model and from site to site (lighting,
camera height, clothing), so no fixed threshold suits them all; one that admits nearly every pair
merges people, and a wrong merge (one person's timeline with someone else's crops) is worse than
a missed link. The matcher sees two kinds of labelled pairs without anyone annotating anything:

* **impostor** pairs: two tracks of one camera that overlap in time are two people (the premise of
  the co-occurrence constraint);
* **genuine** pairs: a later clip of a track against the track so far is one person.

Both are scored in the geometry of the matcher's own decision (a vector against a track's running
mean). Per model and modality pair, the threshold is the lowest score that at most ``target_fmr``
of the impostor pairs reach, kept within ``[floor, ceiling]``. It takes over from the configured
fallback once ``min_impostor`` and ``min_genuine`` samples exist, and is recomputed from the newest
``max_samples`` every ``recompute_every`` new tracks, so it follows the site. A manual threshold
(``matcher.thresholds``) always wins.

Same-camera impostors are harder than cross-camera ones (same light, same angle), which errs on
the side of abstaining.

With ``per_decision``, ``target_fmr`` counts per decision instead of per pair. A new track is compared
with every track of its model's gallery, so with N of them the chance that its best stranger passes a
per-pair bar is about N times that bar's rate (a 1:N search: what biometrics calls the false positive
identification rate). The bar then also stands at least ``z`` robust sigmas above the impostor median,
with z the normal quantile of ``1 - (1 - target_fmr) ** (1 / N)``; the samples cannot show such a rare
tail, so it is extrapolated from their median and MAD. The same z is the least for the ``rgb_ir`` cohort.

``rgb_ir`` has no free impostors (one camera at one moment has one modality), so it is placed from
a **cohort** instead (``cross_modal: cohort``): each new track is also scored against a few random
tracks of the other modality. Nearly all of them are other people (about one in as many people as
the site has seen is the same one), so their median and robust sigma (1.4826 MAD, which a few
genuine scores barely move) estimate where cross-modal impostors lie. The threshold sits z sigmas
above that median, z being ``cohort_z`` or, where larger, what the site's own auto-calibrated
``rgb_rgb``/``ir_ir`` thresholds imply on their impostors; it takes over from the
fallback once ``min_cohort`` scores exist, source ``auto``. Cohort scores are kept as ``rgb_ir``
impostor evidence (``n_impostor`` of ``rgb_ir`` counts them), presumed rather than proven impostors.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable, Sequence
from statistics import NormalDist

import numpy as np

from pipeline.config.settings import PAIR_NAMES, MatcherCfg
from pipeline.store.calibration import Evidence, PairCalibration

GENUINE, IMPOSTOR = "genuine", "impostor"
AUTO_PAIRS = ("rgb_rgb", "ir_ir")   # the pairs a site can calibrate on its own
CROSS_PAIR = "rgb_ir"                # placed from cohort scores (stored as its impostor evidence)
MAD_SIGMA = 1.4826                   # MAD to the sigma of a normal distribution


def place_threshold(impostor: Sequence[float], target_fmr: float, floor: float, ceiling: float) -> float:
    """The lowest threshold that at most ``target_fmr`` of ``impostor`` scores reach, clipped to [floor, ceiling]."""
    scores = np.sort(np.asarray(impostor, dtype=np.float64))
    allowed = math.floor(target_fmr * scores.size)          # impostors that may pass
    bar = float(np.nextafter(scores[scores.size - allowed - 1], np.inf))  # just above the first that may not
    return float(min(max(bar, floor), ceiling))


def robust_location(scores: Sequence[float]) -> tuple[float, float]:
    """Median and 1.4826 MAD of ``scores``: a location and scale that a few outliers (genuine pairs) barely move."""
    x = np.asarray(scores, dtype=np.float64)
    med = float(np.median(x))
    return med, MAD_SIGMA * float(np.median(np.abs(x - med)))


def cohort_threshold(cohort: Sequence[float], z: float, floor: float, ceiling: float) -> float:
    """``median + z * sigma`` of the cohort (strictly above the median when sigma is 0), clipped to [floor, ceiling]."""
    med, sigma = robust_location(cohort)
    bar = med + z * sigma if sigma > 0 else float(np.nextafter(med, np.inf))
    return float(min(max(bar, floor), ceiling))


def decision_z(target_fmr: float, gallery: int) -> float:
    """Robust sigmas above the impostor median that keep one decision among ``gallery`` candidates at
    ``target_fmr``: the normal quantile of ``1 - (1 - target_fmr) ** (1 / gallery)``."""
    per_pair = -math.expm1(math.log1p(-target_fmr) / max(gallery, 1))
    return NormalDist().inv_cdf(1.0 - per_pair)


def _rate(scores: Sequence[float], threshold: float) -> float | None:
    return float(np.mean(np.asarray(scores) >= threshold)) if len(scores) else None


class Calibrator:
    """Collects evidence per model and answers the threshold of a (model, modality pair)."""

    def __init__(self, cfg: MatcherCfg) -> None:
        self.cfg = cfg
        self.ccfg = cfg.calibration
        self._scores: dict[tuple[str, str, str], deque[float]] = {}
        self._state: dict[tuple[str, str], PairCalibration] = {}
        self._tracks: dict[str, int] = {}
        self._latest: dict[str, float] = {}

    # -- answers ---------------------------------------------------------------------------------

    def threshold(self, model_id: str, pair: str) -> float:
        state = self._state.get((model_id, pair))
        return state.threshold if state is not None else self._compute(model_id, pair).threshold

    def state(self, model_id: str | None = None) -> list[PairCalibration]:
        """Every known model's pairs (sorted), as last computed."""
        models = sorted(self._tracks) if model_id is None else [model_id]
        return [self._state.get((m, p)) or self._compute(m, p) for m in models for p in PAIR_NAMES]

    def scores(self, model_id: str, pair: str, kind: str) -> Sequence[float]:
        """The samples of one kind that count now (the newest ``max_samples``), oldest first."""
        return self._scores.get((model_id, pair, kind), ())

    # -- evidence --------------------------------------------------------------------------------

    def record(self, samples: Iterable[Evidence]) -> None:
        for s in samples:
            key = (s.model_id, s.pair, s.kind)
            q = self._scores.get(key)
            if q is None:
                q = self._scores[key] = deque(maxlen=self.ccfg.max_samples)
            q.append(s.score)
            self._latest[s.model_id] = max(self._latest.get(s.model_id, s.ts), s.ts)

    def track_added(self, model_id: str) -> tuple[PairCalibration, ...]:
        """Count a new track of ``model_id``; returns the model's recomputed pairs when they are due."""
        n = self._tracks.get(model_id, 0) + 1
        self._tracks[model_id] = n
        if n == 1 or n % self.ccfg.recompute_every == 0:
            return self.recompute(model_id)
        return ()

    def recompute(self, model_id: str) -> tuple[PairCalibration, ...]:
        out = tuple(self._compute(model_id, pair) for pair in PAIR_NAMES)
        for s in out:
            self._state[(model_id, s.pair)] = s
        return out

    def restore(self, samples: Iterable[Evidence], tracks_per_model: dict[str, int]) -> None:
        """Rebuild from stored evidence (oldest first) and recompute every model's pairs from it."""
        self.record(samples)
        self._tracks.update(tracks_per_model)
        for model_id in sorted(set(self._tracks) | set(self._latest)):
            self._tracks.setdefault(model_id, 0)
            self.recompute(model_id)

    def _compute(self, model_id: str, pair: str) -> PairCalibration:
        c = self.ccfg
        genuine = list(self._scores.get((model_id, pair, GENUINE), ()))
        impostor = list(self._scores.get((model_id, pair, IMPOSTOR), ()))
        manual = self.cfg.thresholds.get(pair)
        if manual is not None:
            threshold, source = float(manual), "manual"
        elif c.enabled and pair in AUTO_PAIRS and len(impostor) >= c.min_impostor and len(genuine) >= c.min_genuine:
            threshold, source = place_threshold(impostor, c.target_fmr, c.floor, c.ceiling), "auto"
            if c.per_decision:
                threshold = max(threshold, cohort_threshold(impostor, self._decision_z(model_id), c.floor, c.ceiling))
        elif c.enabled and pair == CROSS_PAIR and c.cross_modal == "cohort" and len(impostor) >= c.min_cohort:
            threshold, source = cohort_threshold(impostor, self._site_z(model_id), c.floor, c.ceiling), "auto"
        else:
            threshold, source = c.fallback.get(pair), "default"
        return PairCalibration(model_id, pair, threshold, source, len(genuine), len(impostor),
                               _rate(impostor, threshold), _rate(genuine, threshold), c.target_fmr,
                               self._latest.get(model_id, 0.0))

    def _site_z(self, model_id: str) -> float:
        """The z of the cohort threshold: ``cohort_z``, or more where an auto same-modality threshold sits more robust
        sigmas above its own impostor median (the site demands that much separation)."""
        zs = []
        for pair in AUTO_PAIRS:
            same = self._compute(model_id, pair)
            if same.source != "auto":
                continue
            med, sigma = robust_location(self._scores[(model_id, pair, IMPOSTOR)])
            if sigma > 0:
                zs.append((same.threshold - med) / sigma)
        if self.ccfg.per_decision:
            zs.append(self._decision_z(model_id))
        return max([self.ccfg.cohort_z, *zs])   # cohort_z is the least: a few dozen impostors understate the tail

    def _decision_z(self, model_id: str) -> float:
        """``decision_z`` for a new track of ``model_id`` (the gallery it meets: the model's other tracks)."""
        return decision_z(self.ccfg.target_fmr, self._tracks.get(model_id, 0) - 1)
