"""Live-event latency: the matcher's decision (or ``EventHub.publish``) → receipt by MQTT and webhook receivers.

One process holds the three parts on loopback: an ``EventHub`` with an ``MqttSink`` (QoS 1, own
mosquitto started on a free port) and a ``WebhookSink`` (signed POSTs to an ``http.server``
receiver that checks each signature), and a paho subscriber. Every timestamp comes from the same
``perf_counter``, so latency = receipt time − the moment before ``hub.publish``. Two loads:

- ``matcher``: the figure the issue targets. A real ``MatcherStage`` over a SQLite store with an
  ``Announcer`` publishing to the hub is fed one clip embedding at a time (``--matcher-rate`` per
  second, new people and returning ones); latency = receipt − the moment ``Matcher.observe`` returned
  the decision, so it includes building the events, the store commit (event log included) and the sinks;
- ``steady``: events at a matcher's pace (``--rate`` per second) straight into ``hub.publish``;
- ``burst``: ``--burst`` events published back to back, which measures queueing in the sinks.

Also reported: the caller's cost of ``hub.publish`` (it only queues). Prints a table and writes
``bench-out/events_latency.json``. Target (issue 22): p99 < 1 s on 2 cores.

    .venv/bin/python benchmarks/events_latency.py
    .venv/bin/python benchmarks/events_latency.py --events 2000 --rate 100 --burst 1000 --matcher 1000
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import platform
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from pipeline.bus import STREAM_EMBEDDINGS, MemoryBus
from pipeline.bus.messages import Embedding, make_clip_id
from pipeline.config.settings import MatcherCfg, PairThresholds
from pipeline.events import Event, EventHub, MqttSink, WebhookSink, verify_signature
from pipeline.events.sink import publisher_backoff
from pipeline.events.webhook import SIGNATURE_HEADER
from pipeline.matcher.announce import Announcer
from pipeline.matcher.matcher import Matcher
from pipeline.matcher.stage import MatcherStage
from pipeline.store import event_log
from pipeline.store.base import Store

SECRET = "bench-secret-0123456789"
TARGET_P99_S = 1.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(predicate, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out after {timeout_s}s waiting for {what}")
        time.sleep(0.01)


def start_mosquitto(workdir: Path) -> tuple[subprocess.Popen, int]:
    exe = "/usr/sbin/mosquitto" if Path("/usr/sbin/mosquitto").exists() else shutil.which("mosquitto")
    if exe is None:
        raise SystemExit("mosquitto is not installed; run `bash scripts/system-deps.sh`")
    port = free_port()
    conf = workdir / "mosquitto.conf"
    conf.write_text(f"listener {port} 127.0.0.1\nuser {getpass.getuser()}\nallow_anonymous true\n"
                    "persistence false\nlog_type error\n", encoding="utf-8")
    proc = subprocess.Popen([exe, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def up() -> bool:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return True
        except OSError:
            return False

    wait_for(up, 10, "mosquitto")
    return proc, port


class Receipts:
    """event_id -> perf_counter at receipt, per channel; thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.mqtt: dict[str, float] = {}
        self.webhook: dict[str, float] = {}
        self.bad_signatures = 0

    def add(self, channel: str, event_id: str, t: float) -> None:
        with self._lock:
            getattr(self, channel).setdefault(event_id, t)   # first receipt counts (QoS 1 may repeat)

    def count(self, channel: str, ids: set[str]) -> int:
        with self._lock:
            return len(ids & getattr(self, channel).keys())


def start_receiver(receipts: Receipts) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's name
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            t = time.perf_counter()
            if verify_signature(body, SECRET, self.headers.get(SIGNATURE_HEADER)):
                receipts.add("webhook", json.loads(body)["event_id"], t)
            else:
                receipts.bad_signatures += 1
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def start_subscriber(port: int, receipts: Receipts) -> mqtt.Client:
    ready = threading.Event()
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="bench-sub", protocol=mqtt.MQTTv311)
    client.on_connect = lambda c, *a: c.subscribe("xreid/#", qos=1)
    client.on_subscribe = lambda *a: ready.set()
    client.on_message = lambda c, u, msg: receipts.add("mqtt", json.loads(msg.payload)["event_id"],
                                                       time.perf_counter())
    client.connect("127.0.0.1", port)
    client.loop_start()
    if not ready.wait(10):
        raise SystemExit("MQTT subscriber did not subscribe")
    return client


def make_events(n: int, tag: str) -> list[Event]:
    return [Event.make("track.started", "bench", 1_700_000_000.0 + i, camera_id="cam1", track_uid=f"{tag}-{i}",
                       modality="rgb", t_start=1_700_000_000.0 + i) for i in range(n)]


def run_load(hub: EventHub, receipts: Receipts, events: list[Event], rate: float | None,
             timeout_s: float) -> dict:
    """Publish ``events`` (paced at ``rate``/s, or back to back) and wait for both channels to get them all."""
    sent: dict[str, float] = {}
    call_s: list[float] = []
    t_start = time.perf_counter()
    for i, event in enumerate(events):
        if rate:
            delay = t_start + i / rate - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
        t0 = time.perf_counter()
        hub.publish(event)
        t1 = time.perf_counter()
        sent[event.event_id] = t0
        call_s.append(t1 - t0)
    ids = set(sent)
    wait_for(lambda: receipts.count("mqtt", ids) == len(ids) and receipts.count("webhook", ids) == len(ids),
             timeout_s, "every event on both channels")
    out = {"events": len(events), "rate_per_s": rate, "publish_call_us": _stats(np.array(call_s) * 1e6)}
    for channel in ("mqtt", "webhook"):
        got = getattr(receipts, channel)
        out[channel] = _stats(np.array([got[eid] - t for eid, t in sent.items()]) * 1000.0)
    return out


def run_matcher_load(hub: EventHub, receipts: Receipts, n: int, rate: float, workdir: Path,
                     timeout_s: float) -> dict:
    """Feed ``n`` clip embeddings through a real matcher stage, one per step at ``rate``/s; latency per event =
    receipt - the moment ``observe`` returned the decision it announces (events carry their track's uid)."""
    dim = 64
    cfg = MatcherCfg(thresholds=PairThresholds(0.7, 0.7, 0.5), min_clips=1, min_gap=0.0)
    rng = np.random.default_rng(0)
    people = rng.standard_normal((max(n // 4, 1), dim)).astype(np.float32)   # each comes back about 4 times
    with Store(workdir / "bench.sqlite") as store:
        bus = MemoryBus()
        announcer = Announcer(hub, site="bench")
        stage = MatcherStage(bus, store, Matcher(cfg), announcer=announcer)
        decided: dict[str, float] = {}
        observe = stage.matcher.observe

        def timed(emb: Embedding):  # noqa: ANN202 - the matcher's Outcome
            out = observe(emb)
            decided[emb.track_uid] = time.perf_counter()
            return out

        stage.matcher.observe = timed  # type: ignore[method-assign]  # a stopwatch on the decision
        t_start = time.perf_counter()
        for i in range(n):
            delay = t_start + i / rate - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            vec = people[i % len(people)] + 0.3 * rng.standard_normal(dim).astype(np.float32)
            vec /= np.linalg.norm(vec)
            uid = f"t{i}"
            bus.publish(STREAM_EMBEDDINGS, Embedding(make_clip_id(f"cam{i % 3}", uid, 0), f"cam{i % 3}", "rgb", uid,
                                                     0, 1000.0 + 20 * i, 1005.0 + 20 * i, vec, "bench@0").to_bytes())
            stage.step(block_ms=0)
        track_of = {r.event_id: json.loads(r.body)["payload"]["track_uid"] for r in event_log.after(store, 0, 10 * n)}
    ids = set(track_of)
    wait_for(lambda: receipts.count("mqtt", ids) == len(ids) and receipts.count("webhook", ids) == len(ids),
             timeout_s, "every matcher event on both channels")
    out = {"events": len(ids), "clips": n, "rate_per_s": rate,
           "kinds": dict(announcer.announced),
           "decision_to_sinks_ms": _stats(np.array(announcer.latencies_s) * 1000.0)}
    for channel in ("mqtt", "webhook"):
        got = getattr(receipts, channel)
        out[channel] = _stats(np.array([got[eid] - decided[uid] for eid, uid in track_of.items()]) * 1000.0)
    return out


def _stats(values: np.ndarray) -> dict[str, float]:
    return {"p50": float(np.percentile(values, 50)), "p99": float(np.percentile(values, 99)),
            "max": float(values.max()), "mean": float(values.mean())}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--events", type=int, default=1000, help="events of the steady load")
    p.add_argument("--rate", type=float, default=50.0, help="steady load, events per second")
    p.add_argument("--burst", type=int, default=500, help="events of the burst load (0: skip)")
    p.add_argument("--matcher", type=int, default=500, help="clips fed through the matcher stage (0: skip)")
    p.add_argument("--matcher-rate", type=float, default=20.0, help="matcher load, clips per second")
    p.add_argument("--out", default="bench-out/events_latency.json")
    args = p.parse_args()

    tmp = tempfile.TemporaryDirectory()
    proc, port = start_mosquitto(Path(tmp.name))
    receipts = Receipts()
    server = start_receiver(receipts)
    subscriber = start_subscriber(port, receipts)
    mqtt_sink = MqttSink(f"mqtt://127.0.0.1:{port}", backoff=publisher_backoff(0.05, 1.0))
    hook_sink = WebhookSink(f"http://127.0.0.1:{server.server_address[1]}/hook", SECRET, backoff=publisher_backoff(0.05, 1.0))
    hub = EventHub([mqtt_sink, hook_sink], site="bench")
    load0 = os.getloadavg()
    cpu0 = time.process_time()
    try:
        wait_for(lambda: mqtt_sink.counters.connected, 10, "the MQTT sink to connect")
        run_load(hub, receipts, make_events(50, "warm"), rate=None, timeout_s=30)   # connections, imports
        rows = {}
        if args.matcher:
            rows["matcher"] = run_matcher_load(hub, receipts, args.matcher, args.matcher_rate, Path(tmp.name),
                                               timeout_s=120)
        rows["steady"] = run_load(hub, receipts, make_events(args.events, "steady"), args.rate, timeout_s=120)
        if args.burst:
            rows["burst"] = run_load(hub, receipts, make_events(args.burst, "burst"), None, timeout_s=120)
    finally:
        hub.close(timeout_s=2.0)
        subscriber.loop_stop()
        subscriber.disconnect()
        server.shutdown()
        proc.terminate()
        proc.wait(timeout=10)
        tmp.cleanup()
    cpu_s = time.process_time() - cpu0

    print(f"events -> MQTT subscriber (QoS 1) and webhook receiver (signed POST), loopback, {os.cpu_count()} CPUs")
    print(f"{'load':<22} {'channel':<8} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8}")
    for name, row in rows.items():
        label = f"{name} ({row['events']} @ {row['rate_per_s']:g}/s)" if row["rate_per_s"] else \
            f"{name} ({row['events']} at once)"
        if name == "matcher":
            label = f"matcher ({row['clips']} clips @ {row['rate_per_s']:g}/s, {row['events']} events)"
            print(label)
            label = ""
        for channel in ("mqtt", "webhook"):
            s = row[channel]
            print(f"{label:<22} {channel:<8} {s['p50']:>8.1f} {s['p99']:>8.1f} {s['max']:>8.1f}")
        c = row.get("publish_call_us")
        if c:
            print(f"{'':<22} {'publish()':<8} {c['p50'] / 1000:>8.3f} {c['p99'] / 1000:>8.3f} {c['max'] / 1000:>8.3f}")
        else:
            d = row["decision_to_sinks_ms"]
            print(f"{'':<22} {'to sinks':<8} {d['p50']:>8.1f} {d['p99']:>8.1f} {d['max']:>8.1f}  (decision -> commit -> "
                  "hub.publish)")
    key = "matcher" if "matcher" in rows else "steady"
    worst = max(rows[key]["mqtt"]["p99"], rows[key]["webhook"]["p99"]) / 1000.0
    verdict = "meets" if worst < TARGET_P99_S else "MISSES"
    print(f"{key} p99 (worst channel) = {worst * 1000:.1f} ms ({verdict} the p99 < {TARGET_P99_S:g} s target)")
    if receipts.bad_signatures:
        print(f"WARNING: {receipts.bad_signatures} webhook bodies failed signature checks")
    meta = {"python": platform.python_version(), "machine": platform.machine(), "cpus": os.cpu_count(),
            "loadavg_before": load0, "loadavg_after": os.getloadavg(), "process_cpu_s": cpu_s,
            "paho_mqtt": mqtt.__version__ if hasattr(mqtt, "__version__") else "2.x",
            "sinks": {s.name: s.counters.snapshot() for s in hub.sinks}, "bad_signatures": receipts.bad_signatures}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"meta": meta, "rows": rows, f"{key}_p99_s": worst, "target_p99_s": TARGET_P99_S},
                              indent=2))


if __name__ == "__main__":
    main()
