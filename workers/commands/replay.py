"""``xreid replay``: several video files through one embedded pipeline (detect, track, clip, store)."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any


def add_pipeline_args(p: argparse.ArgumentParser) -> None:
    """Flags shared by ``replay`` and ``demo``."""
    p.add_argument("--out", default="xreid-out", help="output folder (store, tracks.jsonl, summary.json); "
                                                      "default xreid-out/")
    p.add_argument("--config", default=None, help="pipeline YAML (default: configs/default.yaml when present)")
    p.add_argument("--detector", choices=("hog", "yolo", "heat"),
                   help="person detector (overrides detector.kind; heat: warm blobs, for thermal cameras)")
    p.add_argument("--weights", help="yolo weights name or path (overrides detector.weights)")
    p.add_argument("--conf", type=float, help="detector confidence threshold (overrides detector.conf)")
    p.add_argument("--stride", type=int, default=1, help="process every n-th frame (default 1)")
    p.add_argument("--realtime", action="store_true", help="pace files at their own frame rate")
    p.add_argument("--start-time", help="ISO 8601 time of the first frame of every file (default: each file's mtime)")
    p.add_argument("--annotate", action="store_true", help="write <camera>.annotated.mp4 with boxes and track ids")
    p.add_argument("--mot-out", action="store_true", help="write <camera>.mot.txt (MOTChallenge format)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.add_argument("--checkpoint", help="X-ReID checkpoint for the re-ID stage (overrides reid.checkpoint; "
                                        "none: an UNTRAINED tiny model, identities not meaningful)")
    p.add_argument("--device", help="re-ID device: auto, cpu, cuda (overrides reid.device)")
    p.add_argument("--no-identities", action="store_true",
                   help="stop after clips: no re-ID, matcher, identities.json or contact sheets")


EVENTS_FLUSH_S = 5.0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("replay", help="replay video files through the pipeline (embedded mode)",
                       description="Decode, detect, track and clip several video files at once, in one process. "
                                   "Writes the track store, tracks.jsonl and summary.json to --out.")
    p.add_argument("--camera", action="append", default=[], metavar="ID:MODALITY:PATH",
                   help="a camera: id, rgb|ir|auto (auto: day/night, decided per frame), video file or PNG/TIFF "
                        "sequence (repeat for several cameras); a camera of the same id "
                        "in the config's cameras list lends its detector settings; none: the config's cameras")
    p.add_argument("--max-frames", type=int, help="stop each file after N frames")
    p.add_argument("--store", metavar="PATH|URL",
                   help="write tracks and identities here instead of <out>/xreid.sqlite: a SQLite file or "
                        "postgresql://user@host:port/db, password from PGPASSWORD (default: store.url when set)")
    p.add_argument("--redis", nargs="?", const="", default=None, metavar="URL",
                   help="push clips into a running deployment's Redis instead of the embedded pipeline (its re-ID "
                        "workers and matcher do the rest); without URL: $XREID_REDIS_URL (keeps the password out "
                        "of `ps`). Publishing slows down while the deployment is behind (bus.backlog_high)")
    add_pipeline_args(p)
    p.set_defaults(func=run)


def parse_start_time(text: str | None) -> float | None:
    """ISO 8601 -> UTC epoch seconds (a time without zone is taken as UTC)."""
    from datetime import UTC, datetime

    from models.errors import ConfigError

    if text is None:
        return None
    try:
        dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ConfigError(f"--start-time must be ISO 8601 (e.g. 2024-05-01T12:00:00Z), got {text!r}") from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.timestamp()


def load_pipeline_config(args: argparse.Namespace) -> Any:
    """Config file + environment + the command line's detector flags."""
    from pipeline.config.loader import load_config
    from pipeline.config.settings import XreidCfg

    path = args.config
    if path is None and Path("configs/default.yaml").is_file():
        path = "configs/default.yaml"
    det: dict[str, Any] = {}
    if args.detector:
        det["kind"] = args.detector
    if args.weights:
        det["weights"] = args.weights
    if args.conf is not None:
        det["conf"] = args.conf

    return load_config(XreidCfg, path, env=os.environ, overrides={"detector": det} if det else None)


def quiet_ffmpeg(verbose: int) -> None:
    """FFmpeg's decoder chatter would bury our one-line errors; keep it unless -v was given."""
    if verbose < 2:
        os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")
        os.environ.setdefault("OPENCV_LOG_LEVEL", "ERROR")


def run_pipeline(args: argparse.Namespace, cameras: list[Any], max_frames: int | None) -> dict[str, Any]:
    from models.errors import ConfigError
    from pipeline.replay.embedded import Replay, ReplayOptions, probe_cameras, with_camera_settings
    from pipeline.runtime.out_dir import prepare_out_dir

    if args.stride < 1:
        raise ConfigError(f"--stride must be >= 1, got {args.stride}")
    cfg = load_pipeline_config(args)
    cameras = with_camera_settings(cameras, cfg.cameras)
    # replay: --store, else store.url (XREID_STORE__URL); neither, or the demo (it scores its own run's
    # file): the run's own <out>/xreid.sqlite
    location = None
    if hasattr(args, "store"):
        location = args.store or (cfg.store.location if cfg.store.url is not None else None)
    options = ReplayOptions(out_dir=Path(args.out), start_time=parse_start_time(args.start_time),
                            max_frames=max_frames, annotate=args.annotate, mot_out=args.mot_out,
                            progress=not args.no_progress, store=location)
    if getattr(args, "redis", None) is not None:   # the deployment's matcher stores and announces the reports
        return Replay(cfg, cameras, options, bus=deployment_bus(args.redis, cfg), reports_on_bus=True).run()
    if args.no_identities:
        from pipeline.replay.embedded import STORE_NAME
        from workers.identity_chain import sweep_store

        swept = location or str(Path(args.out) / STORE_NAME)
        sweep_store(cfg, swept, args.out)   # retention at the start and the end of the replay
        summary = Replay(cfg, cameras, options).run()
        sweep_store(cfg, swept, args.out)
        return summary
    probe_cameras(cameras)  # a missing or broken file is reported before the re-ID model loads
    prepare_out_dir(args.out)  # ... and so is an unwritable --out (Replay checks it for the other paths)
    from pipeline.bus import create_bus
    from pipeline.events import create_hub
    from pipeline.replay.embedded import STORE_NAME
    from pipeline.store.configured import open_store
    from workers.identity_chain import align_clip_length, identity_stages, load_encoder, privacy_duty, write_identities

    encoder = load_encoder(args.checkpoint or cfg.reid.checkpoint, args.device or cfg.reid.device, cfg.reid.amp,
                           cfg.reid.camera_index)
    cfg = align_clip_length(cfg, encoder.seq_len)
    bus = create_bus(None, cfg.bus)  # in-process, trimming what every stage has acked
    hub = create_hub(cfg.events)     # MQTT and webhooks when configured; the store's event log always
    try:
        with open_store(location or str(Path(args.out) / STORE_NAME), cfg.store) as store:
            privacy = privacy_duty(cfg, store, bus, f"replay-{os.getpid()}", args.out)
            privacy.sweep.run()   # retention at the start (before the matcher loads the store) ...
            stages = identity_stages(cfg, encoder, bus, store, privacy, hub, args.out)
            replay = Replay(cfg, cameras, options, bus=bus, store=store, downstream=stages, reports_on_bus=True)
            try:
                summary = replay.run()
                privacy.sweep.run()   # ... and at the end, before the report is written
            finally:
                privacy.close()
            summary["retention"] = privacy.sweep.totals.as_dict()
            summary["identities"] = write_identities(store, args.out, replay.run_id, stages)
    finally:
        hub.close(timeout_s=EVENTS_FLUSH_S)   # give queued events a few seconds to leave, then stop
    summary["events"] = {**stages[1].announcer.snapshot(), **hub.snapshot()}
    (Path(args.out) / "summary.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    return summary


def deployment_bus(flag: str, cfg: Any) -> Any:
    """The deployment's Redis bus, throttled to the backlog its re-ID workers can absorb."""
    from pipeline.bus import GROUP_REID, STREAM_CLIPS, create_bus
    from pipeline.camera.backpressure import Backpressure, ThrottledBus
    from workers.lifecycle import resolve_redis_url

    bus = create_bus(resolve_redis_url(flag or None, os.environ, cfg.bus.url), cfg.bus, client_name="replay")
    bus.ensure_group(STREAM_CLIPS, GROUP_REID)
    return ThrottledBus(bus, Backpressure(bus, STREAM_CLIPS, GROUP_REID, cfg.bus.backlog_high, cfg.bus.backlog_low))


def print_summary(summary: dict[str, Any]) -> None:
    print(f"\nrun {summary['run_id']}: {summary['frames']} frames, {summary['detections']} detections, "
          f"{summary['tracks']} tracks, {summary['clips']} clips in {summary['wall_seconds']:.1f} s "
          f"({summary['fps'] or 0:.1f} frames/s)")
    print(f"{'camera':<10}{'modality':<9}{'frames':>7}{'dets':>7}{'tracks':>7}{'clips':>6}"
          f"{'decode fps':>11}{'detect fps':>11}{'track fps':>10}{'pipeline fps':>13}")
    for cam_id, c in summary["cameras"].items():
        fps = c["fps"]
        cells = [f"{fps.get(k) or 0:.1f}" for k in ("decode", "detect", "track", "pipeline")]
        print(f"{cam_id:<10}{c['modality']:<9}{c['frames']:>7}{c['detections']:>7}{c['tracks']:>7}{c['clips']:>6}"
              f"{cells[0]:>11}{cells[1]:>11}{cells[2]:>10}{cells[3]:>13}")
    ids = summary.get("identities")
    if ids:
        print(f"identities: {ids['identities']} ({ids['cross_modal']} seen in RGB and IR, {ids['multi_camera']} on "
              f"several cameras) from {ids['clips_embedded']} clips, model {ids['model_id']}")
    for cam_id, c in summary["cameras"].items():   # day/night cameras, thermal frames that could not be read
        if c.get("modality_switches"):
            print(f"{cam_id}: {c['modality_switches']} day/night switch(es), timeline in the store "
                  f"(GET /cameras/{cam_id}/modality)")
        if c.get("bad_frames"):
            print(f"{cam_id}: frames skipped as unreadable: {c['bad_frames']}")
    ev = summary.get("events")
    if ev:
        kinds = ", ".join(f"{k} {n}" for k, n in sorted(ev["announced"].items())) or "none"
        sinks = "; ".join(f"{name}: {c['published']} delivered, {c['dropped']} dropped, {c['failed']} failed"
                          for name, c in ev["sinks"].items())
        print(f"events: {kinds}" + (f" ({sinks})" if sinks else " (store event log only: no MQTT or webhooks)"))
    outs = summary["outputs"]
    print(f"store:   {outs['store']}\ntracks:  {outs['tracks']}\nsummary: {outs['summary']}")
    if ids:
        print(f"identities: {Path(outs['summary']).parent / 'identities.json'} (contact sheets in identities/)")
    for cam_id, c in summary["cameras"].items():
        for kind, path in c.get("outputs", {}).items():
            print(f"{kind}: {path}  ({cam_id})")


def run(args: argparse.Namespace) -> int:
    quiet_ffmpeg(args.verbose)
    from models.errors import ConfigError
    from pipeline.replay.embedded import parse_camera_spec

    if args.max_frames is not None and args.max_frames < 1:
        raise ConfigError(f"--max-frames must be >= 1, got {args.max_frames}")
    cameras = [parse_camera_spec(spec, stride=max(args.stride, 1), realtime=args.realtime) for spec in args.camera]
    summary = run_pipeline(args, cameras, args.max_frames)
    print_summary(summary)
    sys.stdout.flush()
    return 0
