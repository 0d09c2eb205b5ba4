"""Real far sides for the events tests: a mosquitto broker, an MQTT subscriber, webhook receivers.

``MosquittoBroker`` runs ``/usr/sbin/mosquitto`` on a free loopback port with a throwaway config
(anonymous on loopback only) and persistence saved on every change, so a SIGKILL-ed broker comes
back with its retained messages and its subscribers' sessions, as a production broker would.
"""

from __future__ import annotations

import getpass
import json
import shutil
import socket
import subprocess
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from pipeline.events.event import Event
from pipeline.events.webhook import EVENT_HEADER, SIGNATURE_HEADER, verify_signature
from pipeline.store.base import is_postgres
from tests.support.services import free_port, wait_until

# one valid payload of every kind
PAYLOADS = {
    "track.started": dict(camera_id="cam1", track_uid="cam1-17", modality="rgb", t_start=100.0),
    "track.ended": dict(camera_id="cam1", track_uid="cam1-17", modality="rgb", t_start=100.0, t_end=112.5,
                        identity=4),
    "identity.created": dict(identity=4, camera_id="cam1", track_uid="cam1-17", modality="rgb"),
    "identity.linked": dict(identity=4, camera_id="cam2", track_uid="cam2-3", modality="ir", score=0.71,
                            threshold=0.55, matched_track_uid="cam1-17"),
    "identity.merged": dict(winner=4, loser=9, evidence_track_uid="cam2-3", score=0.66),
    "modality.switch": dict(camera_id="cam2", from_modality="rgb", to_modality="ir", saturation=0.01,
                            correlation=0.98),
    "camera.status": dict(camera_id="cam2", state="reconnecting", reason="read timeout",
                          source="rtsp://***@10.0.0.7/stream", modality="auto"),
    "watchlist.hit": dict(watchlist_id=3, name="visitor A", identity=None, camera_id="cam2", track_uid="cam2-3",
                          modality="ir", model_id="xreid_mnv2@0a1b2c3d", score=0.62, threshold=0.5,
                          scores=[0.62, 0.58], crops_path="/tracks/cam2-3/thumbnail.jpg"),
}


def track_event(i: int, site: str = "lobby") -> Event:
    """The i-th of a run of distinct ``track.started`` events."""
    return Event.make("track.started", site, 1000.0 + i, camera_id="cam1", track_uid=f"cam1-{i}", modality="rgb",
                      t_start=1000.0 + i)


MOSQUITTO = "/usr/sbin/mosquitto"
MOSQUITTO_PASSWD = "/usr/bin/mosquitto_passwd"


@dataclass
class MosquittoBroker:
    """A mosquitto this test owns: stop, SIGKILL and restart on the same port."""

    port: int
    workdir: Path
    users: dict[str, str] = field(default_factory=dict)   # non-empty: only these may connect
    proc: subprocess.Popen | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    def start(self) -> None:
        exe = MOSQUITTO if Path(MOSQUITTO).exists() else shutil.which("mosquitto")
        if exe is None:
            raise RuntimeError("mosquitto is not installed; run `bash scripts/system-deps.sh`")
        conf = self.workdir / "mosquitto.conf"
        auth = "allow_anonymous true\n"
        if self.users:
            pw = self.workdir / "passwd"
            pw.unlink(missing_ok=True)
            for user, password in self.users.items():
                subprocess.run([MOSQUITTO_PASSWD, "-b", *([] if pw.exists() else ["-c"]), str(pw), user, password],
                               check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            auth = f"allow_anonymous false\npassword_file {pw}\n"
        conf.write_text(
            f"listener {self.port} 127.0.0.1\n"
            f"user {getpass.getuser()}\n"   # as root, mosquitto would switch to 'mosquitto' and lose this folder
            f"{auth}"
            "persistence true\n"
            f"persistence_location {self.workdir}/\n"
            "autosave_on_changes true\n"
            "autosave_interval 1\n"
            f"log_dest file {self.workdir}/mosquitto.log\n"
            "log_type error\nlog_type warning\nlog_type notice\n", encoding="utf-8")
        self.proc = subprocess.Popen([exe, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_until(self._accepts, what=f"mosquitto on port {self.port}")

    def _accepts(self) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            raise RuntimeError(f"mosquitto exited with {self.proc.returncode}; see {self.workdir}/mosquitto.log")
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                return True
        except OSError:
            return False

    def kill(self) -> None:
        """SIGKILL: no goodbye to clients, nothing saved that autosave had not saved."""
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(timeout=10)
            self.proc = None

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(timeout=10)
            self.proc = None


@dataclass(frozen=True)
class Received:
    topic: str
    payload: bytes
    retain: bool

    @property
    def json(self) -> dict:
        return json.loads(self.payload)


class MqttCollector:
    """A paho subscriber that records everything under ``topic`` (QoS 1, a persistent session).

    ``clean_session=False`` with a fixed client id: while it is cut off, the broker queues its
    QoS 1 messages, as a real alerting consumer would configure itself.
    """

    def __init__(self, port: int, topic: str, client_id: str = "test-collector", clean: bool = False,
                 username: str | None = None, password: str | None = None) -> None:
        self.topic = topic
        self.messages: list[Received] = []
        self._lock = threading.Lock()
        self.subscribed = threading.Event()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=clean,
                                  protocol=mqtt.MQTTv311)
        self.client.reconnect_delay_set(min_delay=0.05, max_delay=0.2)
        if username is not None:
            self.client.username_pw_set(username, password)
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message
        self.client.on_subscribe = lambda *a: self.subscribed.set()
        self.client.connect("127.0.0.1", port, keepalive=10)
        self.client.loop_start()
        wait_until(self.subscribed.is_set, what="MQTT subscription")

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if not reason_code.is_failure:
            client.subscribe(self.topic, qos=1)

    def _on_message(self, client, userdata, msg) -> None:
        with self._lock:
            self.messages.append(Received(msg.topic, bytes(msg.payload), bool(msg.retain)))

    def snapshot(self) -> list[Received]:
        with self._lock:
            return list(self.messages)

    def event_ids(self) -> list[str]:
        return [m.json["event_id"] for m in self.snapshot()]

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@dataclass
class Hit:
    path: str
    headers: dict[str, str]
    body: bytes
    signature_ok: bool


class WebhookReceiver:
    """An HTTP endpoint on a free loopback port that checks every POST's signature.

    Args:
        secret: the shared HMAC key.
        statuses: answers to give, in order, to the first requests (then 200 for all).
    """

    def __init__(self, secret: str, statuses: list[int] | None = None) -> None:
        self.secret = secret
        self.hits: list[Hit] = []
        self.statuses = list(statuses or [])
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                ok = verify_signature(body, receiver.secret, self.headers.get(SIGNATURE_HEADER))
                with receiver._lock:
                    receiver.hits.append(Hit(self.path, dict(self.headers), body, ok))
                    status = receiver.statuses.pop(0) if receiver.statuses else 200
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.port = self.server.server_address[1]
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def url(self, path: str = "/hook") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def snapshot(self) -> list[Hit]:
        with self._lock:
            return list(self.hits)

    def kinds(self) -> list[str]:
        return [h.headers[EVENT_HEADER] for h in self.snapshot()]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@dataclass(frozen=True)
class SseFrame:
    id: str | None
    event: str
    data: str

    @property
    def json(self) -> dict:
        return json.loads(self.data)


class SseReader:
    """Reads ``GET /events/stream`` of a real server in a thread, parsing frames as a browser would."""

    def __init__(self, url: str, headers: dict[str, str] | None = None) -> None:
        import httpx

        self.frames: list[SseFrame] = []
        self.status: int | None = None
        self.comments = 0
        self._lock = threading.Lock()
        self._client = httpx.Client(timeout=httpx.Timeout(5.0, read=None))
        self._cm = self._client.stream("GET", url, headers=headers or {})
        self._resp = self._cm.__enter__()
        self.status = self._resp.status_code
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        fields: dict[str, str] = {}
        try:
            for line in self._resp.iter_lines():
                if line.startswith(":"):
                    self.comments += 1
                elif line == "":
                    if "data" in fields:
                        with self._lock:
                            self.frames.append(SseFrame(fields.get("id"), fields.get("event", "message"),
                                                        fields["data"]))
                    fields = {}
                else:
                    name, _, value = line.partition(":")
                    fields[name] = value[1:] if value.startswith(" ") else value
        except Exception:  # noqa: BLE001 - the server closed the stream, or close() did
            pass

    def snapshot(self) -> list[SseFrame]:
        with self._lock:
            return list(self.frames)

    def kinds(self) -> list[str]:
        return [f.event for f in self.snapshot()]

    def close(self) -> None:
        self._client.close()
        self._thread.join(5)


class ThreadedServer:
    """The API app under a real uvicorn on a free loopback port, in a thread of this process."""

    def __init__(self, app) -> None:  # noqa: ANN001 - a FastAPI app
        import uvicorn

        self.app = app
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning",
                                                    timeout_graceful_shutdown=2))
        self._thread = threading.Thread(target=self.server.run, daemon=True)
        self._thread.start()
        wait_until(lambda: self.server.started, timeout=20, what="uvicorn to start")
        loc = app.state.reader.location
        if is_postgres(loc) or Path(loc).is_file():   # the event log is positioned: what is logged from now on is new
            wait_until(lambda: app.state.event_tail is not None and app.state.event_tail.last_seq is not None,
                       what="the API to position itself in the event log")

    def stop(self) -> None:
        self.app.state.sse.close()   # the streams end, then the server
        self.server.should_exit = True
        self._thread.join(10)
