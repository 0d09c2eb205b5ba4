"""The distributed camera worker: one thread per camera, each ``source → CameraProcessor → bus``.

Cameras come from the ``cameras`` list of a pipeline YAML; ``rtsp://``/``rtsps://`` sources are
``RtspSource``s (reconnecting by themselves), anything else a video file. A camera that fails
never stops the others. Around the shared ``CameraProcessor`` this adds what a long-running
process needs:

* outages: when a live source starts reconnecting, open tracks are flushed as clips (the person
  was not seen during the gap) and the track-uid generation advances, so uids stay unique across
  reconnects as the run id keeps them unique across restarts;
* backpressure: frames are shed (live) or the file slowed (recorded) when the re-ID group falls
  behind; clips are never dropped;
* SIGTERM: every camera flushes its open tracks and publishes them, then the process exits 0;
* exit status: 0 also when every source has ended for good (end of file, ``max_frames``, an RTSP
  source that spent ``rtsp.max_reconnects``): the worker is *finished* and must not be restarted,
  since a restart replays its files and stores every track twice. 1 when a camera stopped on an
  error (bus unavailable, a crash, a source that could not be opened), which a restart may cure.
  Supervisors (``xreid up``, docker-compose ``restart: on-failure``, Kubernetes ``OnFailure``)
  restart on non-zero only (docs/distributed.md).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter, deque
from collections.abc import Iterator
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Histogram

from models.errors import BusError, SourceError, XreidError
from pipeline.bus import GROUP_REID, STREAM_CLIPS, Bus
from pipeline.camera.backpressure import Backpressure
from pipeline.camera.modality_front import ModalityFront, detector_cfgs, initial_modality, open_file_source
from pipeline.camera.processor import CameraProcessor, make_run_id
from pipeline.camera.status import STREAM_CAMERA_STATUS, CameraStatusEvent, switch_to_bytes
from pipeline.config.redact import redact_text, redact_url
from pipeline.config.settings import CameraCfg, XreidCfg
from pipeline.detection import create_detector
from pipeline.ingest.rtsp import RtspSource, is_rtsp_url
from pipeline.ingest.sources import FrameSource, SourceStatus
from pipeline.runtime.metrics import Health, MetricsServer, Sample, SnapshotCollector
from workers.lifecycle import Shutdown, bus_health, bus_samples

log = logging.getLogger(__name__)

STATES = ("connected", "reconnecting", "ended", "failed")
FRAME_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


@dataclass
class CameraState:
    """What one camera thread reports (read by metrics and health from other threads)."""

    cfg: CameraCfg
    source_name: str
    status: SourceStatus = field(default_factory=lambda: SourceStatus("reconnecting", "starting"))
    frames_read: int = 0
    drops: Counter[str] = field(default_factory=Counter)   # frames not processed, by reason
    lost_clips: Counter[str] = field(default_factory=Counter)  # open tracks whose clips could not be published
    generation: int = 0
    reconnects: int = 0
    modality: str | None = None      # the modality frames are processed in now (day/night cameras switch)
    modality_switches: int = 0
    modality_events: deque = field(default_factory=lambda: deque(maxlen=64))  # latest ModalitySwitch events
    error: str | None = None
    done: bool = False


class CameraRunner:
    """One camera: source, detector, tracker and clip buffer in a thread of its own.

    Args:
        cam: the camera's config; ``cfg`` supplies detector/tracker/clips/rtsp defaults.
        run_id: this process's run id (part of every track uid).
    """

    def __init__(self, cam: CameraCfg, cfg: XreidCfg, bus: Bus, backpressure: Backpressure, shutdown: Shutdown,
                 run_id: str, frame_latency: Histogram) -> None:
        self.cam, self.cfg, self.bus, self.bp, self.shutdown = cam, cfg, bus, backpressure, shutdown
        self.live = is_rtsp_url(cam.source) or cam.realtime
        self.state = CameraState(cam, redact_url(cam.source))
        self.run_id = run_id
        self._latency = frame_latency.labels(camera=cam.id)
        self.source = self._open_source()
        det_cfgs = detector_cfgs(cam, cfg.detector)  # one detector per modality of the camera's frames
        detectors = {d: create_detector(d) for d in set(det_cfgs.values())}
        first = initial_modality(cam)
        self.proc = CameraProcessor(cam.id, first, detectors[det_cfgs[first]], cam.tracker or cfg.tracker, cfg.clips, bus,
                                    STREAM_CLIPS, run_id)
        # thermal decoding and day/night switching in front of the processor (pipeline/camera/modality_front.py)
        self.front = ModalityFront(cam, self.proc, {m: detectors[d] for m, d in det_cfgs.items()})
        self.thread = threading.Thread(target=self._run, name=f"camera-{cam.id}", daemon=True)

    def _open_source(self) -> FrameSource:
        cam = self.cam
        if is_rtsp_url(cam.source):
            return RtspSource(cam.source, self.cfg.rtsp, stop_event=self.shutdown.stop, on_status=self._on_status)
        source = open_file_source(cam)  # a video file, or a PNG/TIFF sequence (16-bit thermal kept)
        self._on_status(source.status)
        return source

    def _note_modality(self) -> None:
        """Day/night switches and unreadable frames, for health and metrics."""
        for event in self.front.pop_switches():
            self.state.modality = event.to_modality
            self.state.modality_events.append(event)
            self.state.modality_switches += event.from_modality is not None
            # to the store's modality_events through the matcher, like the source status
            self.bus.publish(STREAM_CAMERA_STATUS, switch_to_bytes(event))
        for reason, n in self.front.bad_frames.items():   # bad_format, black, saturated
            if n:
                self.state.drops[reason] = n

    def _on_status(self, status: SourceStatus) -> None:
        status = SourceStatus(status.state, redact_text(status.reason))
        if status == self.state.status:
            return
        if status.state == "reconnecting" and self.state.status.state == "connected":
            self.state.reconnects += 1
        self.state.status = status
        # the store (and the API's /cameras) learn it through the matcher, the store's one writer
        event = CameraStatusEvent.make(self.cam.id, status.state, status.reason, self.cam.source,
                                       self.cam.modality, time.time())
        try:
            self.bus.publish(STREAM_CAMERA_STATUS, event.to_bytes())
        except BusError as e:
            log.warning("camera %s: status %s not published: %s", self.cam.id, status.state, e)

    def start(self) -> None:
        self.thread.start()

    def _new_generation(self) -> None:
        """After a flush the tracker restarts its ids: a new uid generation keeps uids unique."""
        self.state.generation += 1
        self.proc.run_id = f"{self.run_id}g{self.state.generation}"

    def _flush(self, why: str) -> None:
        open_tracks = len(self.proc.clips.open_track_ids)
        try:
            clips = self.front.flush()
            self._note_modality()
        except BusError as e:
            self.state.lost_clips[why] += open_tracks
            log.error("camera %s: clips of %d open tracks lost (%s): %s", self.cam.id, open_tracks, why, e)
        else:
            if clips:
                log.info("camera %s: flushed %d clips (%s)", self.cam.id, len(clips), why)
        self.proc.pop_summaries()
        self._new_generation()

    def _run(self) -> None:
        cam, st, proc = self.cam, self.state, self.proc
        stride = cam.frame_stride if is_rtsp_url(cam.source) else 1  # files apply the stride while decoding
        in_outage = False
        try:
            while not self.shutdown.stop.is_set():
                frame = self.source.read()
                if frame is None:
                    state = self.source.status.state
                    self._on_status(self.source.status)
                    if state in ("ended", "failed"):
                        break
                    if state == "reconnecting" and not in_outage:
                        in_outage = True
                        if proc.clips.open_track_ids:
                            self._flush("source outage")
                    continue
                in_outage = False
                st.frames_read += 1
                if isinstance(self.source, RtspSource) and self.source.skipped_behind:
                    st.drops["behind_live"] = self.source.skipped_behind  # processing slower than the stream
                if frame.index % stride:
                    st.drops["stride"] += 1
                    continue
                if not self.bp.admit(frame.index, self.live):
                    st.drops["backpressure"] += 1
                    continue
                t0 = time.perf_counter()
                self.front.feed(frame)  # may hold frames back while a day/night change is pending
                self._latency.observe(time.perf_counter() - t0)
                self._note_modality()
                proc.pop_summaries()  # tracks reach the store through the matcher; keep memory flat
        except BusError as e:
            st.error = f"bus unavailable: {e}"
            log.error("camera %s stopped: %s", cam.id, st.error)
        except XreidError as e:
            st.error = str(e)
            log.error("camera %s failed: %s", cam.id, redact_text(str(e)))
        except Exception as e:  # a bug in one camera must not take the other cameras down
            st.error = f"{type(e).__name__}: {e}"
            log.exception("camera %s crashed", cam.id)
        finally:
            self._flush("shutdown" if self.shutdown.stop.is_set() else "end of source")
            self.source.close()
            status = self.source.status
            if status.state in ("connected", "reconnecting"):  # a file source stays "connected" when closed early
                status = SourceStatus("ended", "stopped by shutdown" if self.shutdown.stop.is_set() else "stopped")
            self._on_status(status)
            if st.error and st.status.state != "failed":
                self._on_status(SourceStatus("failed", st.error))
            st.done = True


class CameraWorker:
    """Runs every camera of ``cfg.cameras`` until SIGTERM or until every source has ended.

    Raises:
        ConfigError: no cameras, duplicate ids; SourceError: a file camera cannot be opened.
    """

    def __init__(self, cfg: XreidCfg, bus: Bus, shutdown: Shutdown) -> None:
        from models.errors import ConfigError

        if not cfg.cameras:
            raise ConfigError("no cameras configured: the config needs a 'cameras:' list")
        ids = [c.id for c in cfg.cameras]
        dupes = sorted({i for i in ids if ids.count(i) > 1})
        if dupes:
            raise ConfigError(f"camera ids must be unique, repeated: {', '.join(dupes)}")
        self.cfg, self.bus, self.shutdown = cfg, bus, shutdown
        self.run_id = make_run_id()
        self.registry = CollectorRegistry()
        self.frame_latency = Histogram("xreid_camera_frame_seconds", "detect + track + clip time of one frame",
                                       ["camera"], buckets=FRAME_BUCKETS, registry=self.registry)
        self.registry.register(SnapshotCollector(self.samples))
        bus.ensure_group(STREAM_CLIPS, GROUP_REID)  # the backlog is measured against this group
        self.backpressure = Backpressure(bus, STREAM_CLIPS, GROUP_REID, cfg.bus.backlog_high, cfg.bus.backlog_low,
                                         stop_event=shutdown.stop)
        self.cameras: list[CameraRunner] = []
        self._failed_at_start: list[CameraState] = []
        for cam in cfg.cameras:
            try:
                self.cameras.append(CameraRunner(cam, cfg, bus, self.backpressure, shutdown, self.run_id,
                                                 self.frame_latency))
            except SourceError as e:  # one broken camera must not keep the others from running
                log.error("camera %s not started: %s", cam.id, redact_text(str(e)))
                failed = CameraState(cam, redact_url(cam.source), SourceStatus("failed", redact_text(str(e))))
                failed.error = failed.status.reason
                failed.done = True
                self._failed_at_start.append(failed)
        if not self.cameras:
            raise SourceError("no camera could be started: " + "; ".join(
                f"{s.cfg.id}: {s.status.reason}" for s in self._failed_at_start))

    @property
    def states(self) -> list[CameraState]:
        return [c.state for c in self.cameras] + list(self._failed_at_start)

    def samples(self) -> Iterator[Sample]:
        for c in self.cameras:
            cam, s, st = c.cam.id, c.proc.stats, c.state
            lab = {"camera": cam}
            yield Sample("xreid_frames_read_total", st.frames_read, "counter", lab, "frames received from the source")
            yield Sample("xreid_frames_total", s.frames, "counter", lab, "frames processed (detect + track)")
            yield Sample("xreid_detections_total", s.detections, "counter", lab, "person detections")
            yield Sample("xreid_tracks_total", s.tracks, "counter", lab, "tracks that ended after producing clips")
            yield Sample("xreid_clips_produced_total", s.clips, "counter", lab, "clips published to the bus")
            yield Sample("xreid_clip_bytes_total", s.clip_bytes, "counter", lab, "bytes of clips published")
            for m in ("rgb", "ir"):
                yield Sample("xreid_camera_modality", 1.0 if st.modality == m else 0.0, "gauge", {**lab, "modality": m},
                             "1 for the modality the camera's frames are in now (day/night cameras switch)")
            yield Sample("xreid_modality_switches_total", st.modality_switches, "counter", lab,
                         "day/night modality switches")
            for reason, n in sorted(st.drops.items()):
                yield Sample("xreid_frames_dropped_total", n, "counter", {**lab, "reason": reason},
                             "frames not processed, by reason (backpressure, stride)")
            yield Sample("xreid_tracks_dropped_total", c.proc.clips.stats.tracks_short, "counter",
                         {**lab, "reason": "short"}, "tracks that never became a clip, by reason")
            yield Sample("xreid_tracks_dropped_total", c.proc.clips.stats.tracks_dropped, "counter",
                         {**lab, "reason": "too_many_open"}, "tracks that never became a clip, by reason")
            for reason, n in sorted(st.lost_clips.items()):
                yield Sample("xreid_clips_lost_total", n, "counter", {**lab, "reason": reason},
                             "open tracks whose clips could not be published (bus down at shutdown)")
            yield Sample("xreid_source_reconnects_total", st.reconnects, "counter", lab, "source outages")
            for stage, secs in s.seconds.items():
                yield Sample("xreid_camera_stage_seconds_total", secs, "counter", {**lab, "stage": stage},
                             "time spent per stage")
        for st in self.states:
            for state in STATES:
                yield Sample("xreid_source_state", 1.0 if st.status.state == state else 0.0, "gauge",
                             {"camera": st.cfg.id, "state": state}, "1 for the camera's current source state")
        bp = self.backpressure
        yield Sample("xreid_backpressure_shedding", float(bp.shedding), "gauge", {}, "1 while frames are shed")
        yield Sample("xreid_backpressure_stride", bp.stride, "gauge", {}, "live cameras keep one frame in this many")
        yield Sample("xreid_clips_backlog", bp.backlog, "gauge", {}, "clips not yet acked by the reid group")
        yield Sample("xreid_backpressure_wait_seconds_total", bp.waited_s, "counter", {},
                     "time file cameras waited for the backlog to fall")
        yield from bus_samples(self.bus, "camera")

    def health(self) -> Health:
        states = self.states
        cams = {s.cfg.id: {"state": s.status.state, "reason": s.status.reason, "source": s.source_name,
                           "frames": s.frames_read, "modality": s.modality,
                           "modality_switches": s.modality_switches,
                           "frames_dropped": dict(s.drops)} for s in states}   # incl. black / saturated frames
        failed = sum(s.status.state == "failed" for s in states)
        bus = bus_health(self.bus)
        if failed == len(states):
            status = "failed"
        elif failed or any(s.status.state == "reconnecting" for s in states) or not bus["bus_reachable"]:
            status = "degraded"
        else:
            status = "ok"
        return Health(status, {"worker": "camera", "run_id": self.run_id, "cameras": cams, **bus,
                               "backpressure": {"shedding": self.backpressure.shedding,
                                                "backlog": self.backpressure.backlog}})

    def run(self, metrics: MetricsServer | None = None) -> int:
        """Run every camera; returns 0 after SIGTERM or when every source ended for good (finished: do not
        restart), 1 if a camera stopped on an error (a restart may help)."""
        for c in self.cameras:
            c.start()
        try:
            while not all(c.state.done for c in self.cameras):
                if self.shutdown.stop.wait(0.2):
                    break
            deadline = time.monotonic() + 9.0  # docs/design.md §7: flushed and gone within 10 s of SIGTERM
            for c in self.cameras:
                c.thread.join(timeout=max(0.1, deadline - time.monotonic()))
            stuck = [c.cam.id for c in self.cameras if c.thread.is_alive()]
            if stuck:
                log.error("cameras %s did not stop in time", ", ".join(stuck))
        finally:
            if metrics is not None:
                metrics.stop()
            self.bus.close()
        # an RTSP source that spent max_reconnects is "failed" without an error: it gave up for good, like
        # a file at its end; a restart would only replay the files of the other cameras
        errored = [s for s in self.states if s.error]
        for s in self.states:
            log.warning("camera %s %s%s: %d frames read, drops %s", s.cfg.id, s.status.state,
                        f" ({s.status.reason})" if s.status.reason else "", s.frames_read, dict(s.drops))
        if self.shutdown.stop.is_set():
            return 0
        if errored:
            log.error("cameras %s stopped on an error: exit 1 (a supervisor restarts the worker)",
                      ", ".join(s.cfg.id for s in errored))
            return 1
        log.warning("every camera finished for good: exit 0 (finished; a supervisor does not restart it)")
        return 0
