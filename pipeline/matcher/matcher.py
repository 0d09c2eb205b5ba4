"""Link track embeddings into global identities across cameras and modalities (docs/design.md §4).

The matcher is pure in-memory logic, so the stage, restarts, calibration and tests share it:
``observe(embedding)`` folds one clip's vector into its track (running mean, re-normalised),
decides what the track is, and returns an ``Outcome`` listing every change for the store to
persist. A new track joins the best identity whose similarity passes the threshold of the
modality pair, that no constraint forbids and that leads every other such identity by ``min_gap``
(unset: the spread of the site's genuine scores), or founds a new identity. Precision first: a
track joins only once it has ``min_clips`` clips, and a track still alone in its identity decides
again at each later clip; a track that scores ``merge_margin`` above the threshold of a second,
compatible identity, with the same lead, merges the two.

Constraints:
    co-occurrence: one person is not on two tracks of one camera at the same time.
    transitions: when windows are configured, the gap between consecutive sightings on a
    camera pair must fall in its window.

Each model has its own gallery: vectors of different ``model_id``s never meet, and its own
thresholds: a ``Calibrator`` places them from the evidence the tracks give for free (tracks of one
camera that overlap in time are impostor pairs, later clips of a track genuine ones), unless
``matcher.thresholds`` sets them by hand. The evidence travels in the ``Outcome`` to the store.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np

from models.errors import ContractError
from pipeline.bus.messages import Embedding
from pipeline.config.settings import MatcherCfg
from pipeline.matcher.calibration import CROSS_PAIR, GENUINE, IMPOSTOR, Calibrator, Evidence, PairCalibration
from pipeline.matcher.gallery import Gallery, l2_normalise
from pipeline.matcher.unionfind import IdentityForest, Merge
from pipeline.store.identities import Link

log = logging.getLogger(__name__)

OVERLAP_HORIZON_S = 600.0   # impostor search looks back this far in a camera's tracks (by start time)


@dataclass(slots=True)
class TrackState:
    """What the matcher knows of one track (one camera's tracklet, under one model).

    Attributes:
        key: the track's number (gallery key and store id).
        mean: (D,) float32 running mean of its clips' vectors (not normalised).
        identity: the identity it was assigned; resolve it through the forest.
        segments: clip segments already folded in (redelivery is a no-op).
    """

    key: int
    model_id: str
    camera_id: str
    track_uid: str
    modality: str
    t_start: float
    t_end: float
    mean: np.ndarray
    n_clips: int
    identity: int
    segments: set[int] = field(default_factory=set)
    thumbnail: bytes = b""

    @property
    def vector(self) -> np.ndarray:
        return l2_normalise(self.mean)


@dataclass(frozen=True, slots=True)
class Outcome:
    """Everything ``observe`` changed, for the store to persist in one transaction."""

    clip_id: str
    duplicate: bool
    track: TrackState | None = None
    new_track: bool = False
    new_identity: int | None = None
    links: tuple[Link, ...] = ()
    merges: tuple[Merge, ...] = ()
    evidence: tuple[Evidence, ...] = ()
    calibration: tuple[PairCalibration, ...] = ()


@dataclass(frozen=True, slots=True)
class Candidate:
    identity: int
    track: int
    score: float
    threshold: float
    pair: str

    @property
    def margin(self) -> float:
        return self.score - self.threshold


@dataclass
class _Space:
    """One model's tracks and gallery."""

    gallery: Gallery
    tracks: dict[int, TrackState] = field(default_factory=dict)
    by_uid: dict[tuple[str, str], int] = field(default_factory=dict)
    by_camera: dict[str, list[int]] = field(default_factory=dict)   # track keys in creation order
    by_modality: dict[str, list[int]] = field(default_factory=dict)  # track keys in creation order


def pair_name(a: str, b: str) -> str:
    return "rgb_rgb" if a == b == "rgb" else "ir_ir" if a == b == "ir" else "rgb_ir"


class Matcher:
    """Tracks → identities, one gallery per model."""

    def __init__(self, cfg: MatcherCfg | None = None) -> None:
        self.cfg = cfg or MatcherCfg()
        self.forest = IdentityForest()
        self._spaces: dict[str, _Space] = {}
        self._members: dict[int, list[TrackState]] = {}   # identity root -> its tracks
        self._identity_model: dict[int, str] = {}
        self._uid_model: dict[tuple[str, str], str] = {}   # a track is embedded by one model only
        self._windows = {(w.from_camera, w.to_camera): w for w in self.cfg.transitions}
        self.calibrator = Calibrator(self.cfg)
        self._cohort_rng = np.random.default_rng(0)   # seeded: a replay draws the same cohorts
        self.next_track = 1
        self.next_identity = 1

    # ------------------------------------------------------------------ queries

    @property
    def model_ids(self) -> list[str]:
        return sorted(self._spaces)

    def track(self, key: int) -> TrackState | None:
        for space in self._spaces.values():
            if key in space.tracks:
                return space.tracks[key]
        return None

    def identity_of(self, key: int) -> int:
        t = self.track(key)
        if t is None:
            raise KeyError(key)
        return self.forest.find(t.identity)

    def identity_tracks(self, identity: int) -> list[TrackState]:
        return list(self._members.get(self.forest.find(identity), ()))

    def search(self, model_id: str, vector: np.ndarray, k: int = 10) -> list[tuple[int, float, int]]:
        """Nearest identities to ``vector``: ``(identity, best score, best track)``, best first."""
        space = self._spaces.get(model_id)
        if space is None:
            return []
        scores, keys = space.gallery.search(l2_normalise(np.asarray(vector, dtype=np.float32)), max(k * 4, self.cfg.top_k))
        best: dict[int, tuple[float, int]] = {}
        for s, key in zip(scores[0].tolist(), keys[0].tolist(), strict=True):
            if key < 0:
                continue
            ident = self.forest.find(space.tracks[key].identity)
            if ident not in best or s > best[ident][0]:
                best[ident] = (s, key)
        ranked = sorted(best.items(), key=lambda kv: -kv[1][0])[:k]
        return [(ident, score, key) for ident, (score, key) in ranked]

    # ------------------------------------------------------------------ the decision

    def observe(self, emb: Embedding) -> Outcome:
        """Fold one clip embedding into its track and link the track; see the module doc."""
        owner = self._uid_model.get((emb.camera_id, emb.track_uid), emb.model_id)
        if owner != emb.model_id:
            raise ContractError(f"track {emb.camera_id}/{emb.track_uid} is embedded by model {owner}, "
                                f"not {emb.model_id}")
        space = self._space(emb.model_id, emb.vector.size)
        key = space.by_uid.get((emb.camera_id, emb.track_uid))
        if key is not None:
            track = space.tracks[key]
            if emb.segment in track.segments:
                return Outcome(emb.clip_id, duplicate=True, track=track)
            if track.modality != emb.modality:
                raise ContractError(f"track {emb.camera_id}/{emb.track_uid} is {track.modality}, clip says {emb.modality}")
            return self._update(space, track, emb)
        return self._new_track(space, emb)

    def _new_track(self, space: _Space, emb: Embedding) -> Outcome:
        vec = emb.vector.astype(np.float32)
        track = TrackState(self.next_track, emb.model_id, emb.camera_id, emb.track_uid, emb.modality,
                           emb.t_start, emb.t_end, vec.copy(), 1, 0, {emb.segment}, emb.thumbnail)
        self.next_track += 1
        evidence = self._impostors(space, track, None, emb.t_end) + self._cohort(space, track, emb.t_end)
        self.calibrator.record(evidence)
        calibration = self.calibrator.track_added(emb.model_id)
        candidates = self._candidates(space, track, vec)
        waiting = track.n_clips < self.cfg.min_clips
        chosen, links = (None, []) if waiting else self._choose(track, candidates, emb.t_end)
        new_identity = None
        if chosen is None:
            new_identity = track.identity = self._found_identity(emb.model_id)
            best = candidates[0] if candidates else None
            links.append(Link(track.key, "new", new_identity, best.track if best else None,
                              best.score if best else None, best.threshold if best else None,
                              best.pair if best else None,
                              "no candidate" if best is None else
                              "best candidate below threshold" if best.margin < 0 else
                              f"joins only at {self.cfg.min_clips} clips" if waiting else
                              "every passing candidate blocked",
                              emb.t_end))
        else:
            track.identity = chosen.identity
            links.append(self._link(track, "join", chosen, "best passing candidate", emb.t_end))
        self._attach(space, track)
        merges = self._merge_with(track, candidates, emb.t_end) if chosen is not None else []
        return Outcome(emb.clip_id, False, track, True, new_identity, tuple(links), tuple(merges), tuple(evidence),
                       calibration)

    def _update(self, space: _Space, track: TrackState, emb: Embedding) -> Outcome:
        vec = emb.vector.astype(np.float32)
        score = float(track.vector @ vec)
        evidence = [Evidence(track.model_id, pair_name(track.modality, track.modality), GENUINE, score, track.key,
                             None, emb.t_end)]
        before = (track.t_start, track.t_end)
        track.mean = (track.mean * track.n_clips + vec) / (track.n_clips + 1)
        track.n_clips += 1
        track.segments.add(emb.segment)
        track.t_start, track.t_end = min(track.t_start, emb.t_start), max(track.t_end, emb.t_end)
        if not track.thumbnail:
            track.thumbnail = emb.thumbnail
        space.gallery.upsert([track.key], track.vector)
        evidence += self._impostors(space, track, before, emb.t_end)   # its longer span may overlap new ones
        self.calibrator.record(evidence)
        root = self.forest.find(track.identity)
        links = [Link(track.key, "update", root, track.key, score, None, None, f"clip segment {emb.segment}",
                      emb.t_end)]
        candidates = self._candidates(space, track, track.vector)
        merges = []
        if track.n_clips >= self.cfg.min_clips and len(self._members[root]) == 1:
            chosen, tried = self._choose(track, candidates, emb.t_end)   # alone so far: decide again
            links += tried
            if chosen is not None:
                links.append(self._link(track, "join", chosen, f"best passing candidate at {track.n_clips} clips",
                                        emb.t_end))
                merges.append(self._merge(root, chosen.identity, track.key, chosen.score, emb.t_end))
        merges += self._merge_with(track, candidates, emb.t_end)
        return Outcome(emb.clip_id, False, track, False, None, tuple(links), tuple(merges), tuple(evidence))

    def _choose(self, track: TrackState, candidates: list[Candidate], ts: float) -> tuple[Candidate | None, list[Link]]:
        """The identity ``track`` joins (None: none passes safely), with the candidates it passed over."""
        links: list[Link] = []
        for cand in candidates:
            if cand.margin < 0:
                break
            reason = self._forbids(self._members[cand.identity], [track])
            if reason:
                links.append(self._link(track, "blocked", cand, reason, ts))
                continue
            reason = self._ambiguous(track, cand, candidates)
            if reason:
                links.append(self._link(track, "blocked", cand, reason, ts))
                return None, links
            return cand, links
        return None, links

    def _cohort(self, space: _Space, track: TrackState, ts: float) -> list[Evidence]:
        """Scores of a new track against random tracks of the other modality: presumed rgb_ir impostors."""
        c = self.cfg.calibration
        if not c.enabled or c.cross_modal != "cohort":
            return []
        others = space.by_modality.get("ir" if track.modality == "rgb" else "rgb", [])
        if not others:
            return []
        picks = self._cohort_rng.choice(len(others), size=min(c.cohort_size, len(others)), replace=False)
        vec = track.vector
        return [Evidence(track.model_id, CROSS_PAIR, IMPOSTOR, float(space.tracks[others[i]].vector @ vec), track.key,
                         others[i], ts) for i in sorted(picks.tolist())]

    def _candidates(self, space: _Space, track: TrackState, vec: np.ndarray) -> list[Candidate]:
        """Best candidate track per identity, ranked by margin over its pair's threshold."""
        scores, keys = space.gallery.search(l2_normalise(vec), self.cfg.top_k)
        best: dict[int, Candidate] = {}
        for s, k in zip(scores[0].tolist(), keys[0].tolist(), strict=True):
            if k < 0 or k == track.key:
                continue
            other = space.tracks[k]
            pair = pair_name(track.modality, other.modality)
            cand = Candidate(self.forest.find(other.identity), k, float(s),
                             self.calibrator.threshold(track.model_id, pair), pair)
            if cand.identity not in best or cand.margin > best[cand.identity].margin:
                best[cand.identity] = cand
        return sorted(best.values(), key=lambda c: (-c.margin, c.identity))

    def _ambiguous(self, track: TrackState, cand: Candidate, candidates: list[Candidate], own: int | None = None) -> str:
        """Why ``cand`` is not a safe link for ``track`` although it passes ('' when it is).

        Precision first: a wrong join shows one person's timeline with another's crops, an abstention
        only leaves two identities that a later clip can still join. The candidate must lead every
        other identity ``track`` could join (``own``: its own, not a rival) by ``min_gap``: a lead smaller than the spread of one
        person's own clip scores says nothing about which of the two it is.
        """
        gap = self.min_gap(track.model_id, track.modality)
        if gap > 0:
            target = self.forest.find(cand.identity)
            for other in candidates:
                ident = self.forest.find(other.identity)   # merges may have run since the candidates were ranked
                if ident in (target, own) or self._forbids(self._members[ident], [track]):
                    continue
                if cand.score - other.score < gap:
                    return (f"ambiguous: identity {other.identity} scores {other.score:.3f}, "
                            f"within {gap:.3f} of {cand.score:.3f}")
                break
        return ""

    def min_gap(self, model_id: str, modality: str) -> float:
        """How far the best identity must lead the next: ``matcher.min_gap``, or when unset the spread
        (standard deviation) of the site's genuine scores for ``modality`` under ``model_id``: two
        identities closer than one person's own clips vary cannot be told apart."""
        if self.cfg.min_gap is not None:
            return self.cfg.min_gap
        scores = self.calibrator.scores(model_id, pair_name(modality, modality), GENUINE)
        return float(np.std(scores)) if len(scores) >= 2 else 0.0

    def _merge_with(self, track: TrackState, candidates: list[Candidate], ts: float) -> list[Merge]:
        """Merge other identities ``track`` matches strongly into its own, when compatible."""
        margin = self.cfg.merge_margin
        root = self.forest.find(track.identity)
        own = [c for c in candidates if c.identity == root]
        if track.n_clips == 1 and (not own or own[0].margin < margin):
            return []  # a new track merges only when it joined its identity with a margin as well
        merges = []
        for cand in candidates:
            root = self.forest.find(track.identity)
            other = self.forest.find(cand.identity)
            if cand.margin < margin:
                break
            if other == root or self._forbids(self._members[root], self._members[other]):
                continue
            if self._ambiguous(track, cand, candidates, own=root):
                continue
            merges.append(self._merge(root, other, track.key, cand.score, ts))
        return merges

    def _merge(self, a: int, b: int, track_key: int, score: float, ts: float) -> Merge:
        m = self.forest.merge(a, b, track_key, score, ts)
        self._members[m.winner].extend(self._members.pop(m.loser))
        log.info("merged identity %d into %d (track %d, score %.3f)", m.loser, m.winner, track_key, score)
        return m

    def _impostors(self, space: _Space, track: TrackState, before: tuple[float, float] | None,
                   ts: float) -> list[Evidence]:
        """Tracks of ``track``'s camera that overlap it in time now but not before: two people, scored once.

        Spans only grow, so a pair starts to overlap at exactly one event (the later track's first clip, or
        a later clip of either), and that event scores it. ``before``: the span before this clip (None: new).
        """
        out = []
        slack = self.cfg.overlap_slack_s
        vec = track.vector
        for k in reversed(space.by_camera.get(track.camera_id, ())):
            other = space.tracks[k]
            if other.t_start < track.t_start - OVERLAP_HORIZON_S:
                break
            if k == track.key or _overlap((track.t_start, track.t_end), other) <= slack:
                continue
            if before is None or _overlap(before, other) <= slack:
                out.append(Evidence(track.model_id, pair_name(track.modality, other.modality), IMPOSTOR,
                                    float(vec @ other.vector), track.key, k, ts))
        return out

    # ------------------------------------------------------------------ constraints

    def _forbids(self, a: Iterable[TrackState], b: Iterable[TrackState]) -> str:
        """Why tracks ``a`` and ``b`` cannot be one person ('' when they can)."""
        a, b = list(a), list(b)
        slack = self.cfg.overlap_slack_s
        for x in a:
            for y in b:
                if x.key == y.key:
                    continue
                if x.camera_id == y.camera_id and min(x.t_end, y.t_end) - max(x.t_start, y.t_start) > slack:
                    return f"co-occurrence: tracks {x.key} and {y.key} overlap on camera {x.camera_id}"
        if self._windows or self.cfg.transitions_strict:
            for y in b:
                reason = self._transition(sorted(a, key=lambda t: t.t_start), y)
                if reason:
                    return reason
        return ""

    def _transition(self, tracks: list[TrackState], new: TrackState) -> str:
        before = [t for t in tracks if t.t_end <= new.t_start]
        after = [t for t in tracks if t.t_start >= new.t_end]
        steps = []
        if before:
            steps.append((max(before, key=lambda t: t.t_end), new))
        if after:
            steps.append((new, min(after, key=lambda t: t.t_start)))
        for first, second in steps:
            if first.camera_id == second.camera_id:
                continue
            w = self._windows.get((first.camera_id, second.camera_id))
            gap = second.t_start - first.t_end
            if w is None:
                if self.cfg.transitions_strict:
                    return f"transition: no window {first.camera_id}->{second.camera_id}"
                continue
            if not w.min_s <= gap <= w.max_s:
                return (f"transition: {first.camera_id}->{second.camera_id} after {gap:.1f}s, "
                        f"window is {w.min_s:g}..{w.max_s:g}s")
        return ""

    # ------------------------------------------------------------------ state

    def _space(self, model_id: str, dim: int) -> _Space:
        space = self._spaces.get(model_id)
        if space is None:
            space = self._spaces[model_id] = _Space(Gallery(dim, self.cfg.gallery))
        elif space.gallery.dim != dim:
            raise ContractError(f"model {model_id} has {space.gallery.dim}-d vectors, got {dim}-d")
        return space

    def _found_identity(self, model_id: str) -> int:
        ident = self.next_identity
        self.next_identity += 1
        self.forest.add(ident)
        self._members[ident] = []
        self._identity_model[ident] = model_id
        return ident

    def _attach(self, space: _Space, track: TrackState) -> None:
        space.tracks[track.key] = track
        space.by_uid[(track.camera_id, track.track_uid)] = track.key
        space.by_camera.setdefault(track.camera_id, []).append(track.key)
        space.by_modality.setdefault(track.modality, []).append(track.key)
        self._uid_model[(track.camera_id, track.track_uid)] = track.model_id
        space.gallery.upsert([track.key], track.vector)
        self._members[self.forest.find(track.identity)].append(track)

    @staticmethod
    def _link(track: TrackState, kind: str, cand: Candidate, reason: str, ts: float) -> Link:
        return Link(track.key, kind, cand.identity, cand.track, cand.score, cand.threshold, cand.pair, reason, ts)

    # ------------------------------------------------------------------ rebuild

    def restore(self, identities: Iterable[tuple[int, str]], tracks: Iterable[TrackState],
                merges: Iterable[Merge], evidence: Iterable[Evidence] = ()) -> None:
        """Rebuild from stored state (identities as ``(id, model_id)``, merges and evidence in order).

        The thresholds are recomputed from the stored evidence.

        Galleries are bulk-built per model, which is also what an HNSW/IVF index wants.
        """
        if self._spaces or len(self.forest):
            raise ContractError("restore() needs a fresh Matcher")
        for ident, model_id in identities:
            self.forest.add(ident)
            self._identity_model[ident] = model_id
            self.next_identity = max(self.next_identity, ident + 1)
        for m in merges:
            self.forest.apply(m)
        self._members = {r: [] for r in self.forest.roots()}
        by_model: dict[str, list[TrackState]] = {}
        for t in tracks:
            by_model.setdefault(t.model_id, []).append(t)
            self._members[self.forest.find(t.identity)].append(t)
            self.next_track = max(self.next_track, t.key + 1)
        for model_id, ts in by_model.items():
            space = self._space(model_id, ts[0].mean.size)
            for t in ts:
                space.tracks[t.key] = t
                space.by_uid[(t.camera_id, t.track_uid)] = t.key
                space.by_camera.setdefault(t.camera_id, []).append(t.key)
                space.by_modality.setdefault(t.modality, []).append(t.key)
                self._uid_model[(t.camera_id, t.track_uid)] = model_id
            space.gallery.upsert(np.array([t.key for t in ts], dtype=np.int64), np.vstack([t.vector for t in ts]))
        self.calibrator.restore(evidence, {m: len(ts) for m, ts in by_model.items()})
        log.info("matcher restored: %d identities, %d tracks, %d merges, models %s",
                 len(self.forest), sum(len(v) for v in by_model.values()), len(self.forest.history), self.model_ids)


def _overlap(span: tuple[float, float], other: TrackState) -> float:
    return min(span[1], other.t_end) - max(span[0], other.t_start)
