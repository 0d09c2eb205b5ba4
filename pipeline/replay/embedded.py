"""Embedded replay: several video files through one pipeline in one process.

Every camera gets a ``FileSource`` and a ``CameraProcessor``; frames are taken round-robin, so
cameras advance together. Clips go to the bus (``STREAM_CLIPS``); tracks go to the store, to
``tracks.jsonl`` and to ``summary.json`` in the output folder. Later stages plug in without
changing this loop: pass objects with ``poll()`` (do what is ready, never block) and ``drain()``
(finish everything) as ``downstream``, built on the same ``bus`` and ``store``::

    replay = Replay(cfg, cameras, options, bus=bus, store=store, downstream=[reid_stage, matcher_stage])

With ``reports_on_bus`` the cameras' reports (source status, day/night switches, ended tracks) go on
the bus as a camera worker's do, for a ``CameraStatusSink`` among the downstream stages to store and
announce (live events); without it the replay writes the switches to the store itself.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol

from models.errors import ConfigError, SourceError
from pipeline.bus import STREAM_CLIPS, Bus, create_bus
from pipeline.bus.messages import MODALITIES
from pipeline.camera.clipbuffer import TrackSummary
from pipeline.camera.modality_front import ModalityFront, detector_cfgs, initial_modality, open_file_source
from pipeline.camera.processor import CameraProcessor, FrameResult, make_run_id
from pipeline.camera.status import STREAM_CAMERA_STATUS, CameraStatusEvent, switch_to_bytes, track_ended_reports
from pipeline.config.ids import check_camera_id
from pipeline.config.loader import to_dict
from pipeline.config.settings import CameraCfg, DetectorCfg, XreidCfg
from pipeline.detection import Detector, create_detector
from pipeline.ingest.sources import FileSource
from pipeline.replay.annotate import AnnotatedWriter
from pipeline.runtime.out_dir import prepare_out_dir
from pipeline.store.base import Store
from pipeline.store.configured import open_store
from pipeline.store.modality_events import record_switch
from pipeline.store.tracks import TrackRow, upsert_track
from pipeline.tracking.mot import MotBox, MotWriter

log = logging.getLogger(__name__)

STORE_NAME = "xreid.sqlite"


class Downstream(Protocol):
    """A later stage run inside the replay loop (re-ID, matcher)."""

    def poll(self) -> int:
        """Handle whatever is ready without blocking; returns how many items were handled."""

    def drain(self) -> int:
        """Handle everything still pending (called once the cameras are done)."""


@dataclass(frozen=True)
class ReplayOptions:
    """Run-wide replay settings (per-camera ones live in ``CameraCfg``).

    Attributes:
        start_time: UTC epoch seconds of every file's first frame; ``None``: each file's mtime.
        max_frames: stop each file after this many source frames.
        annotate: write ``<camera>.annotated.mp4`` with boxes and track ids.
        mot_out: write ``<camera>.mot.txt`` (MOTChallenge format, 1-based frames).
        poll_every: camera rounds between two ``poll()`` calls of the downstream stages.
        store: where tracks go when the replay opens the store itself: a SQLite path or a
            ``postgresql://`` URL (``None``: ``<out_dir>/xreid.sqlite``).
    """

    out_dir: Path = Path("xreid-out")
    start_time: float | None = None
    max_frames: int | None = None
    annotate: bool = False
    mot_out: bool = False
    progress: bool = True
    poll_every: int = 4
    store: str | None = None

    def __post_init__(self) -> None:
        if self.max_frames is not None and self.max_frames < 1:
            raise ConfigError(f"--max-frames must be >= 1, got {self.max_frames}")
        if self.poll_every < 1:
            raise ConfigError(f"poll_every must be >= 1, got {self.poll_every}")


def parse_camera_spec(text: str, stride: int = 1, realtime: bool = False) -> CameraCfg:
    """``ID:MODALITY:PATH`` (the path may itself contain ``:``) -> ``CameraCfg``.

    Raises:
        ConfigError: a part is missing or the modality is not ``rgb``/``ir``.
    """
    parts = text.split(":", 2)
    if len(parts) != 3 or not all(parts):
        raise ConfigError(f"--camera must be ID:MODALITY:PATH (e.g. cam1:rgb:video.mp4), got {text!r}")
    cam_id, modality, path = parts
    check_camera_id(cam_id, f"--camera {text!r}: the id")
    if modality not in (*MODALITIES, "auto"):
        raise ConfigError(f"--camera {text!r}: unknown modality {modality!r} (valid: {', '.join(MODALITIES)}, auto)")
    return CameraCfg(id=cam_id, source=path, modality=modality, frame_stride=stride, realtime=realtime)  # type: ignore[arg-type]


def with_camera_settings(cameras: Sequence[CameraCfg], configured: Sequence[CameraCfg]) -> list[CameraCfg]:
    """Cameras given on the command line, with the per-camera sections of the config camera of the
    same id (its detector, e.g. its own confidence threshold; its tracker; its infrared detector, day/night,
    thermal and persistence settings); no cameras given: the config's."""
    if not cameras:
        return list(configured)
    by_id = {c.id: c for c in configured}
    out = []
    for c in cameras:
        conf = by_id.get(c.id)
        if conf is not None:
            c = replace(c, detector=c.detector or conf.detector, detector_ir=c.detector_ir or conf.detector_ir,
                        tracker=c.tracker or conf.tracker,
                        daynight=conf.daynight, thermal=conf.thermal, persistence=conf.persistence)
        out.append(c)
    return out


def probe_cameras(cameras: Sequence[CameraCfg]) -> None:
    """Open and close every camera's file: bad input fails before anything slow is loaded.

    Raises:
        SourceError: naming the first file that is missing or not a decodable video.
    """
    for cam in cameras:
        open_file_source(cam, max_frames=1).close()   # a video file or an image sequence


@dataclass
class _Camera:
    cfg: CameraCfg
    source: FileSource
    proc: CameraProcessor
    front: ModalityFront | None = None      # thermal decoding, day/night switching (pipeline/camera/modality_front.py)
    decode_s: float = 0.0
    done: bool = False
    annotated: AnnotatedWriter | None = None
    mot: MotWriter | None = None
    progress: Any = None
    outputs: dict[str, str] = field(default_factory=dict)


class Replay:
    """Replays ``cameras`` through detection, tracking and clip buffering into ``options.out_dir``.

    Args:
        cfg: pipeline configuration (detector, tracker, clips sections are used).
        cameras: the files to replay; ids must be unique.
        bus: where clips go (default: a new in-process bus).
        store: the track store (default: ``options.store``, else ``<out_dir>/xreid.sqlite``; closed by ``run``).
        downstream: later stages polled from the loop.
        reports_on_bus: publish camera reports on ``bus`` for a status sink among ``downstream``.

    Raises:
        ConfigError, SourceError, WeightsNotFound: before any frame is processed, for bad input.
    """

    def __init__(self, cfg: XreidCfg, cameras: Sequence[CameraCfg], options: ReplayOptions, bus: Bus | None = None,
                 store: Store | None = None, downstream: Sequence[Downstream] = (), reports_on_bus: bool = False) -> None:
        if not cameras:
            raise ConfigError("nothing to replay: give at least one --camera ID:MODALITY:PATH")
        ids = [c.id for c in cameras]
        dupes = sorted({i for i in ids if ids.count(i) > 1})
        if dupes:
            raise ConfigError(f"camera ids must be unique, repeated: {', '.join(dupes)}")
        self.cfg = cfg
        self.options = options
        self.bus: Bus = bus if bus is not None else create_bus(None, cfg.bus)
        self.downstream = list(downstream)
        self.reports_on_bus = reports_on_bus
        self.run_id = make_run_id()
        self.out_dir = Path(options.out_dir)
        self._cams: list[_Camera] = []
        detectors: dict[DetectorCfg, Detector] = {}
        try:
            for cam in cameras:  # open every file first: bad input fails before any work
                source = open_file_source(cam, start_time=options.start_time, max_frames=options.max_frames)
                self._cams.append(_Camera(cam, source, None))  # type: ignore[arg-type]
            for c in self._cams:
                det_cfgs = detector_cfgs(c.cfg, cfg.detector)  # one per modality of the camera's frames
                mine: dict[DetectorCfg, Detector] = {}
                for det_cfg in det_cfgs.values():
                    if det_cfg in mine:
                        continue
                    if det_cfg not in detectors or getattr(detectors[det_cfg], "per_camera", False):
                        detectors[det_cfg] = create_detector(det_cfg)  # a background model belongs to one camera
                    mine[det_cfg] = detectors[det_cfg]
                first = initial_modality(c.cfg)
                c.proc = CameraProcessor(c.cfg.id, first, mine[det_cfgs[first]], c.cfg.tracker or cfg.tracker, cfg.clips,
                                         self.bus, STREAM_CLIPS, self.run_id)
                c.front = ModalityFront(c.cfg, c.proc, {m: mine[d] for m, d in det_cfgs.items()})
        except BaseException:
            for c in self._cams:
                c.source.close()
            raise
        prepare_out_dir(self.out_dir)
        self._owns_store = store is None
        self.store = store if store is not None else open_store(options.store or str(self.out_dir / STORE_NAME),
                                                                cfg.store)

    def run(self) -> dict[str, Any]:
        """Replay every file to its end; returns the summary (also written to ``summary.json``).

        Raises:
            SourceError: after finishing the other cameras, when a file turned out truncated or corrupt.
        """
        t0 = time.perf_counter()
        started = time.time()
        tracks_path = self.out_dir / "tracks.jsonl"
        try:
            with tracks_path.open("w", encoding="utf-8") as tracks_file:
                self._open_outputs()
                for c in self._cams:
                    self._report_status(c)
                rounds = 0
                while not all(c.done for c in self._cams):
                    for c in self._cams:
                        if not c.done:
                            self._step(c, tracks_file)
                    rounds += 1
                    if rounds % self.options.poll_every == 0:
                        for stage in self.downstream:
                            stage.poll()
                for c in self._cams:
                    assert c.front is not None
                    for result in c.front.drain():   # frames a day/night camera still held back
                        self._write(c, result)
                    c.proc.flush()
                    self._record(c, tracks_file)
                    self._report_status(c)
                for stage in self.downstream:
                    stage.drain()
        finally:
            self._close_outputs()
            if self._owns_store:
                self.store.close()
        summary = self._summary(started, time.perf_counter() - t0)
        (self.out_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
        failures = [f"camera {c.cfg.id}: {c.source.status.reason}" for c in self._cams
                    if c.source.status.state == "failed"]
        if failures:
            raise SourceError("; ".join(failures))
        return summary

    # -- loop -----------------------------------------------------------------------------------

    def _step(self, c: _Camera, tracks_file: Any) -> None:
        t = time.perf_counter()
        frame = c.source.read()
        c.decode_s += time.perf_counter() - t
        if frame is None:
            c.done = True
            if c.progress is not None:
                c.progress.close()
            return
        assert c.front is not None
        for result in c.front.feed(frame):   # none for a bad frame, several when a day/night camera decides
            self._write(c, result)
        self._record(c, tracks_file)
        if c.progress is not None:
            c.progress.update(1)

    def _write(self, c: _Camera, result: FrameResult) -> None:
        if c.mot is not None:   # tracker ids restart after a modality switch: keep MOT ids unique
            c.mot.write(_mot_boxes(result, id_offset=c.proc.modality_switches * _MOT_ID_STRIDE))
        if c.annotated is not None:
            c.annotated.write(result)

    def _record(self, c: _Camera, tracks_file: Any) -> None:
        if c.front is not None:
            for event in c.front.pop_switches():
                if self.reports_on_bus:
                    self.bus.publish(STREAM_CAMERA_STATUS, switch_to_bytes(event))
                else:
                    record_switch(self.store, event)
        summaries = c.proc.pop_summaries()
        for s in summaries:
            upsert_track(self.store, _row(s, keep_thumbnail=not self.cfg.retention.embeddings_only))
            if s.ended:
                tracks_file.write(json.dumps(_track_json(s), separators=(",", ":")) + "\n")
        if self.reports_on_bus:   # after the tracks' last clips: the matcher announces the end once they are matched
            for report in track_ended_reports(summaries):
                self.bus.publish(STREAM_CAMERA_STATUS, report.to_bytes())

    def _report_status(self, c: _Camera) -> None:
        """The file's source status (connected at the start, ended or failed at its end), as a camera worker reports it."""
        if not self.reports_on_bus:
            return
        st = c.source.status
        state = "ended" if c.done and st.state == "connected" else st.state
        self.bus.publish(STREAM_CAMERA_STATUS, CameraStatusEvent.make(
            c.cfg.id, state, st.reason, c.cfg.source, c.cfg.modality, time.time()).to_bytes())

    def _open_outputs(self) -> None:
        from tqdm import tqdm

        for i, c in enumerate(self._cams):
            if self.options.mot_out:
                c.mot = MotWriter(self.out_dir / f"{c.cfg.id}.mot.txt")
                c.outputs["mot"] = str(c.mot.path)
            if self.options.annotate:
                fps = (c.source.fps or 10.0) / c.cfg.frame_stride
                c.annotated = AnnotatedWriter(self.out_dir / f"{c.cfg.id}.annotated.mp4", fps, c.cfg.id, c.cfg.modality)
                c.outputs["annotated"] = str(c.annotated.path)
            if self.options.progress:
                c.progress = tqdm(total=c.source.expected_frames, desc=f"{c.cfg.id} ({c.source.name})", position=i,
                                  unit="frame", leave=True, dynamic_ncols=True)

    def _close_outputs(self) -> None:
        for c in self._cams:
            c.source.close()
            for out in (c.mot, c.annotated, c.progress):
                if out is not None:
                    out.close()

    def _summary(self, started: float, wall_s: float) -> dict[str, Any]:
        cams: dict[str, Any] = {}
        totals = {"frames": 0, "detections": 0, "tracks": 0, "clips": 0}
        for c in self._cams:
            st = c.proc.stats.as_dict()
            st["seconds"]["decode"] = c.decode_s
            st["fps"]["decode"] = st["frames"] / c.decode_s if c.decode_s > 0 else None
            busy = sum(st["seconds"].values())
            st["fps"]["pipeline"] = st["frames"] / busy if busy > 0 else None
            front = c.front
            st["modality_switches"] = c.proc.modality_switches if c.cfg.modality == "auto" else 0
            st["bad_frames"] = dict(front.bad_frames) if front is not None else {}
            st["behaviour_suppressed_boxes"] = front.behaviour.suppressed_boxes if front and front.behaviour else 0
            cams[c.cfg.id] = {"source": str(c.source.path), "modality": c.cfg.modality,
                              "detector": c.proc.detector.name, "status": c.source.status.state,
                              "reason": c.source.status.reason, "frame_stride": c.cfg.frame_stride, **st,
                              "outputs": c.outputs}
            for k in totals:
                totals[k] += st[k]
        return {
            "run_id": self.run_id,
            "started_at": started,
            "wall_seconds": wall_s,
            "fps": totals["frames"] / wall_s if wall_s > 0 else None,
            **totals,
            "cameras": cams,
            "outputs": {"store": self.store.path, "tracks": str(self.out_dir / "tracks.jsonl"),
                        "summary": str(self.out_dir / "summary.json")},
            "config": to_dict(self.cfg),
        }


_MOT_ID_STRIDE = 1_000_000


def _mot_boxes(result: FrameResult, id_offset: int = 0) -> list[MotBox]:
    tr = result.tracked
    scores = result.detections.scores
    return [MotBox(result.frame.index + 1, int(tid) + id_offset, tuple(float(v) for v in box), float(scores[di]))  # type: ignore[arg-type]
            for tid, box, di in zip(tr.track_ids.tolist(), tr.xyxy, tr.det_index.tolist(), strict=True)]


def _row(s: TrackSummary, keep_thumbnail: bool = True) -> TrackRow:
    """The store row of a track summary (``keep_thumbnail`` False: embeddings-only mode keeps no crop)."""
    return TrackRow(s.track_uid, s.camera_id, s.modality, s.t_start, s.t_end, s.n_frames, s.n_clips,
                    s.thumbnail if keep_thumbnail else None)


def _track_json(s: TrackSummary) -> dict[str, Any]:
    return {"track_uid": s.track_uid, "camera_id": s.camera_id, "modality": s.modality, "t_start": s.t_start,
            "t_end": s.t_end, "n_frames": s.n_frames, "n_clips": s.n_clips}
