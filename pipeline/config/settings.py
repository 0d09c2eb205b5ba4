"""The configuration tree of the pipeline (``configs/default.yaml`` is its documented instance).

Pure data with validation: each section belongs to one stage, and each stage takes only its
section. ``pipeline.config.loader.load_config(XreidCfg, path, env=os.environ)`` builds it at the edge.
Types and ranges are pydantic's (``Field``); the ``model_validator`` of a section holds only the
checks that span its fields, naming them bare (``models.config_base`` says where the section sits).
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import field
from typing import Annotated, Literal, Self

from pydantic import BeforeValidator, Field, SecretStr, field_validator, model_validator

from models.config_base import Section, config_dataclass
from pipeline.config.events import EventsCfg
from pipeline.config.ids import CAMERA_ID_RULE, is_camera_id
from pipeline.config.redact import redact_text

Modality = Literal["rgb", "ir"]
CameraModality = Literal["rgb", "ir", "auto"]   # auto: switches between rgb and ir (day/night cameras)

PosInt = Annotated[int, Field(gt=0)]
NonNegInt = Annotated[int, Field(ge=0)]
PosFloat = Annotated[float, Field(gt=0)]
NonNegFloat = Annotated[float, Field(ge=0)]
Unit = Annotated[float, Field(ge=0, le=1)]             # a share, probability or score
Fraction = Annotated[float, Field(gt=0, le=1)]         # a share that cannot be 0
Cosine = Annotated[float, Field(ge=-1, le=1)]          # a cosine similarity or correlation


@config_dataclass
class MotionCfg(Section):
    """Where a fixed camera sees motion (pipeline/detection/motion.py): HOG searches only there.

    Defaults measured on PETS09-S2L1 frames 1-400 (benchmarks/mot_vtest.py, docs/tracking.md).
    """

    enabled: bool = True           # hog only: search around moving regions (False: the whole frame)
    scale: Fraction = 0.5          # the background model runs on a copy this much smaller
    history: PosInt = 500          # MOG2: frames the background remembers
    var_threshold: PosFloat = 16.0  # MOG2: squared distance from the background that counts as motion
    detect_shadows: bool = True    # MOG2: shadows are found and not counted as motion (colour frames only)
    min_blob_area_px: NonNegInt = 240  # moving blobs smaller than this (source pixels) are noise
    dilate_px: PosInt = 14         # blobs closer than about this join (a person's parts, a small group)
    roi_margin: NonNegFloat = 0.4  # search this many blob heights around each blob (HOG window margin)
    min_region_px: PosInt = 40     # ... counting a blob at least this tall (a partly moving person)
    warmup_frames: NonNegInt = 5   # search whole frames until the background has seen this many
    full_frame_every: NonNegInt = 0  # also search the whole frame every n-th frame (0: never)
    min_foreground: Unit = 0.0     # drop boxes with a smaller share of moving pixels once warm (0: keep all)
    search_tracks: bool = True     # also search around the tracker's current tracks (people who stop walking)


@config_dataclass
class DenoiseCfg(Section):
    """Spatial denoising of a noisy (night, high-gain) frame before detection (pipeline/detection/conditioning.py).

    Runs only on frames whose estimated sensor noise is at least ``min_sigma`` gray levels, so a clean
    daylight frame passes unchanged. Defaults measured on PETS09 rendered as night NIR (docs/daynight.md).
    """

    method: Literal["none", "median", "gaussian", "bilateral", "nlmeans"] = "median"
    kernel_px: Annotated[int, Field(ge=3)] = 3  # median / gaussian / bilateral: filter size (odd)
    strength: PosFloat = 1.0       # nlmeans only: filter strength h as a multiple of the estimated noise sigma
    min_sigma: NonNegFloat = 3.0   # denoise frames with at least this much estimated noise (gray levels)
    hog_margin_scale: PosFloat = 1.0  # hog: margin -> score scale on denoised frames (people give lower margins there)

    @field_validator("kernel_px")
    @classmethod
    def _odd(cls, value: int) -> int:
        if value % 2 == 0:
            raise ValueError(f"must be odd, got {value}")
        return value


@config_dataclass
class HeatCfg(Section):
    """The offline thermal detector (``detector.kind: heat``): warm blobs shaped like people."""

    background_px: PosInt = 61      # local background = median over about this many pixels
    threshold_sigma: PosFloat = 4.0  # warm = above the local background by this many robust sigmas ...
    min_contrast: NonNegFloat = 10.0  # ... and by at least this many gray levels
    min_area_px: PosInt = 60        # blob size limits (pixels of the frame)
    max_area_fraction: Fraction = 0.2  # ... and as a fraction of the frame
    min_height_px: PosInt = 12
    min_aspect: PosFloat = 1.0      # blob height / width: people are taller than wide ...
    max_aspect: float = 5.0         # ... but not poles
    close_px: PosInt = 5            # gaps up to this size inside a person are closed before labelling
    join_gap: NonNegFloat = 0.25    # stacked blobs (head, torso, legs) this close, in blob heights, are one person
    min_part_px: PosInt = 8         # smaller blobs are noise, not parts of a person

    @model_validator(mode="after")
    def _aspect_band(self) -> Self:
        if self.max_aspect <= self.min_aspect:
            raise ValueError(f"max_aspect ({self.max_aspect}) must be > min_aspect ({self.min_aspect})")
        return self


@config_dataclass
class DetectorCfg(Section):
    """Person detector of one camera."""

    kind: Literal["hog", "yolo", "heat"] = "hog"   # heat: warm-blob detector for thermal frames (offline)
    weights: str = "yolo11n.pt"   # ultralytics weights name or path (yolo only)
    # yolo only: the model's class names that are people
    person_classes: Annotated[tuple[Annotated[str, Field(min_length=1)], ...], Field(min_length=1)] = ("person",)
    conf: Unit = 0.1               # detections below this score are dropped (= tracker.track_low_thresh: ByteTrack
                                   # uses low-score boxes to keep tracks through occlusion)
    device: str = "cpu"
    imgsz: PosInt = 640            # yolo inference size
    nms_iou: Unit = 0.4            # boxes overlapping a better one by more than this IoU are dropped
    hog_upscale: PosFloat = 1.6    # hog only: frame scale before detection (its window needs people >= ~96 px)
    hog_win_stride: PosInt = 8     # hog only: sliding-window step in pixels (smaller: slower, more recall)
    hog_scale: Annotated[float, Field(gt=1)] = 1.08  # hog only: image pyramid step (1.05: ~1.5x slower, no better
                                                     # on PETS09)
    hog_box_shrink: tuple[Fraction, Fraction] = (0.515, 0.735)  # hog only: person width/height as a fraction of
                                                                 # the window (fitted on PETS09 ground truth)
    hog_margin_scale: PosFloat = 1.33  # hog only: SVM margin m -> score 1 - exp(-m / this) (tracker's score scale)
    motion: MotionCfg = field(default_factory=MotionCfg)     # hog only: search where the camera sees motion
    heat: HeatCfg = field(default_factory=HeatCfg)           # heat only: thermal blob limits
    denoise: DenoiseCfg = field(default_factory=DenoiseCfg)  # hog only: clean noisy (night) frames first


@config_dataclass
class RelinkCfg(Section):
    """Fragment relinking inside one camera (pipeline/tracking/relink.py).

    A track the tracker starts while another was lost shortly before, close to where that one was
    heading, of similar size and colours, continues the lost one's id.
    """

    enabled: bool = True
    max_gap_frames: PosInt = 80    # a lost track can be continued this many frames after it was last seen
    gate: PosFloat = 1.0           # max distance from the lost track's predicted centre, in its box heights ...
    gate_per_frame: NonNegFloat = 0.05  # ... growing by this much per frame of the gap
    min_similarity: Unit = 0.8     # cosine similarity of colour histograms, at least
    size_tolerance: Unit = 0.35    # box heights may differ by this fraction at most
    appearance_momentum: Unit = 0.9  # running appearance = momentum * old + (1 - momentum) * new
    velocity_frames: Annotated[int, Field(ge=2)] = 8  # the lost track's velocity is measured over its last this many


@config_dataclass
class TrackerCfg(Section):
    """Multi-object tracker of one camera (ultralytics ByteTrack or BoT-SORT)."""

    kind: Literal["bytetrack", "botsort"] = "bytetrack"
    track_high_thresh: Unit = 0.5
    track_low_thresh: Unit = 0.1
    new_track_thresh: Unit = 0.6
    track_buffer: PosInt = 30
    match_thresh: Unit = 0.8
    fuse_score: bool = True
    # botsort only: camera-motion compensation ("none" for fixed cameras) and its re-ID gates
    # (its own re-ID encoder stays off: identities across cameras are X-ReID's job)
    gmc_method: Literal["none", "sparseOptFlow", "orb", "sift", "ecc"] = "none"
    proximity_thresh: Unit = 0.5
    appearance_thresh: Unit = 0.8
    relink: RelinkCfg = field(default_factory=RelinkCfg)  # lost-and-found tracks keep their id

    @model_validator(mode="after")
    def _thresholds_ordered(self) -> Self:
        if self.track_low_thresh > self.track_high_thresh:
            raise ValueError(f"track_low_thresh ({self.track_low_thresh}) must be <= "
                             f"track_high_thresh ({self.track_high_thresh})")
        return self


@config_dataclass
class ClipCfg(Section):
    """How tracks are cut into clips of T crops."""

    seq_len: PosInt = 8            # T crops per clip; the re-ID model's sequence length
    segment_seconds: PosFloat = 10.0  # long tracks emit a clip this often
    max_candidates: PosInt = 32    # crops kept per open track (bounded memory)
    min_track_frames: PosInt = 5   # shorter tracks never become clips
    crop_height: PosInt = 256      # crops are resized to this height before JPEG encoding
    jpeg_quality: Annotated[int, Field(ge=1, le=100)] = 90
    max_open_tracks: PosInt = 64   # tracks buffered at once per camera; further new tracks are dropped (counted)

    @model_validator(mode="after")
    def _enough_candidates(self) -> Self:
        if self.max_candidates < self.seq_len:
            raise ValueError(f"max_candidates ({self.max_candidates}) must be >= seq_len ({self.seq_len})")
        return self


_EMPTY_TOKENS = frozenset({"", "null", "~", "none"})  # what someone who meant "no token" writes


def is_loopback_host(host: str) -> bool:
    """True for addresses only this machine can reach (``localhost``, 127.0.0.0/8, ``::1``)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a hostname other than localhost may resolve anywhere


@config_dataclass
class ApiCfg(Section):
    """The query API and dashboard (``xreid serve``): a reader of the store file.

    ``token`` is the bearer token clients send (``Authorization: Bearer <token>``); set it with
    ``XREID_API__TOKEN`` rather than in a file. Binding anything but a loopback address without
    a token is refused, so the store is never exposed unauthenticated by accident. ``admin_token``
    (``XREID_API__ADMIN_TOKEN``) is sent the same way and also opens the routes that change the store
    (watchlists); unset, those routes answer 403.
    """

    host: Annotated[str, Field(min_length=1)] = "127.0.0.1"
    port: Annotated[int, Field(ge=1, le=65535)] = 8000
    token: SecretStr | None = None           # from XREID_API__TOKEN, taken literally
    admin_token: SecretStr | None = None     # erasure and the audit log (DELETE routes, GET /audit); from
                                             # XREID_API__ADMIN_TOKEN; None: those routes answer 403
    store_path: str | None = None            # None: the store section's url, else its path
    checkpoint: str | None = None            # re-ID checkpoint for image search; None: the committed tiny model
    max_upload_bytes: PosInt = 8 * 1024 * 1024  # per uploaded image
    max_upload_files: PosInt = 8             # images per search request
    max_image_pixels: PosInt = 40_000_000    # per image, read from its header before decoding (bombs: 413)
    max_request_pixels: PosInt = 80_000_000  # all images of one search together, also checked before decoding
    max_concurrent_decodes: PosInt = 2       # searches decoding/encoding images at once (bounds memory)
    decode_wait_s: Annotated[float, Field(ge=0, le=60)] = 2.0  # how long a search waits for a slot before 503
    cors_origins: list[str] = field(default_factory=list)  # empty: CORS off

    @field_validator("token", "admin_token")
    @classmethod
    def _not_blank(cls, token: SecretStr | None) -> SecretStr | None:
        if token is not None and token.get_secret_value().strip().lower() in _EMPTY_TOKENS:
            raise ValueError("is set but empty (blank, or a YAML null spelling such as null or ~); "
                             "unset it to serve without auth on loopback")
        return token

    @model_validator(mode="after")
    def _token_off_loopback(self) -> Self:
        if self.token is None and not is_loopback_host(self.host):
            raise ValueError(f"token is required to bind the non-loopback address {self.host!r} "
                             "(set XREID_API__TOKEN)")
        if self.admin_token is not None and self.token is not None and \
                self.admin_token.get_secret_value() == self.token.get_secret_value():
            raise ValueError("admin_token must differ from token (a reader must not be able to erase)")
        return self


@config_dataclass
class DayNightCfg(Section):
    """How a ``modality: auto`` camera tells colour frames from near-infrared ones (pipeline/ingest/daynight.py).

    A frame is ``ir`` when it is both unsaturated and gray (channels move together), ``rgb`` when
    it is clearly saturated or its channels disagree, and undecided in between (hysteresis band).
    """

    ir_max_saturation: Unit = 0.08     # mean HSV saturation (0..1) at or below which a frame may be infrared
    ir_min_correlation: Cosine = 0.97  # ... and smallest inter-channel correlation at or above which
    rgb_min_saturation: Unit = 0.15    # a frame is colour at or above this saturation
    rgb_max_correlation: Cosine = 0.95  # ... or at or below this channel correlation
    min_dwell_s: NonNegFloat = 2.0     # a change must last this long before the camera switches
    min_dwell_frames: PosInt = 3       # ... and be seen in at least this many frames
    min_hold_s: NonNegFloat = 10.0     # after a switch, no other switch for this long
    max_lookahead_frames: PosInt = 50  # frames held back while a change is pending (memory bound)
    analysis_width: PosInt = 96        # frames are measured on a copy this wide

    @model_validator(mode="after")
    def _hysteresis(self) -> Self:
        if self.ir_max_saturation >= self.rgb_min_saturation:
            raise ValueError("ir_max_saturation must be below rgb_min_saturation (hysteresis band)")
        if self.rgb_max_correlation >= self.ir_min_correlation:
            raise ValueError("rgb_max_correlation must be below ir_min_correlation (hysteresis band)")
        if self.max_lookahead_frames < self.min_dwell_frames:
            raise ValueError("max_lookahead_frames must be >= min_dwell_frames")
        return self


ThermalPalette = Literal["white_hot", "black_hot", "ironbow", "rainbow", "turbo", "hot", "inferno", "magma", "auto"]
Percentile = Annotated[float, Field(ge=0, le=100)]


@config_dataclass
class ThermalCfg(Section):
    """How a thermal camera encodes heat in its frames (pipeline/ingest/thermal.py).

    8-bit frames are a palette (``white_hot``/``black_hot`` gray, or a false-colour palette mapped
    back to intensity; ``auto`` picks the false-colour palette that fits); 16-bit frames are raw
    counts, mapped to 8 bits by automatic gain control or by a fixed temperature window.
    """

    palette: ThermalPalette = "white_hot"
    max_colour_distance: PosFloat = 40.0    # a pixel farther (RGB units) from every palette colour is off-palette
    max_off_palette_fraction: Unit = 0.05   # frames with more off-palette pixels than this are rejected
    agc_low_percentile: Percentile = 1.0    # 16-bit AGC: raw value mapped to 0 ...
    agc_high_percentile: Percentile = 99.0  # ... and to 255
    agc_smoothing: Fraction = 0.3           # weight of the newest frame in the running AGC range (1 = no smoothing)
    agc_min_span: PosInt = 64               # raw counts: a flat scene is not stretched into noise
    raw_scale: float = 0.01                 # radiometric: temperature (deg C) = raw * raw_scale + raw_offset
    raw_offset: float = -273.15
    window_c: tuple[float, float] | None = None  # fixed window [lo, hi] deg C instead of AGC

    @field_validator("raw_scale")
    @classmethod
    def _nonzero(cls, value: float) -> float:
        if value == 0:
            raise ValueError("must not be 0")
        return value

    @field_validator("window_c")
    @classmethod
    def _window_ordered(cls, window: tuple[float, float] | None) -> tuple[float, float] | None:
        if window is not None and not window[0] < window[1]:
            raise ValueError(f"must be [lo, hi] with lo < hi, got {list(window)}")
        return window

    @model_validator(mode="after")
    def _agc_ordered(self) -> Self:
        if self.agc_low_percentile >= self.agc_high_percentile:
            raise ValueError("agc_low_percentile must be below agc_high_percentile")
        return self


@config_dataclass
class PersistenceCfg(Section):
    """A track must move or persist like a person before it counts (pipeline/tracking/persistence.py).

    Warm static objects (radiators, parked engines, lamps) and fleeting reflections fool a thermal
    detector; they are told apart by behaviour: a person is seen in most frames and moves.
    """

    apply_to: Literal["none", "ir", "all"] = "ir"   # which frames' tracks are filtered
    min_hits: PosInt = 5           # frames a track must be seen in ...
    min_hit_ratio: Unit = 0.6      # ... out of the frames since it first appeared
    min_travel: NonNegFloat = 0.15  # and its centre must move this many box heights from where it appeared
    max_pending_s: PosFloat = 60.0  # a track unconfirmed this long is forgotten (memory bound)


@config_dataclass
class CameraCfg(Section):
    """One camera: where frames come from and how they are processed."""

    id: str
    source: str
    modality: CameraModality = "rgb"       # auto: a day/night camera, decided per frame (docs/daynight.md)
    detector: DetectorCfg | None = None   # None: the top-level detector section
    tracker: TrackerCfg | None = None     # None: the top-level tracker section (incl. relinking)
    frame_stride: PosInt = 1               # process every n-th frame
    realtime: bool = False                 # pace file replay at the file's frame rate
    loop: bool = False                     # replay a recorded file forever, as a live camera (soak, demos)
    detector_ir: DetectorCfg | None = None  # for infrared frames (ir, or auto at night); None: detector
    daynight: DayNightCfg = field(default_factory=DayNightCfg)      # auto cameras: colour vs infrared
    thermal: ThermalCfg = field(default_factory=ThermalCfg)         # ir cameras: how frames encode heat
    persistence: PersistenceCfg = field(default_factory=PersistenceCfg)  # tracks must move/persist like people

    @field_validator("id")
    @classmethod
    def _safe_id(cls, value: str) -> str:
        if not is_camera_id(value):
            raise ValueError(f"{CAMERA_ID_RULE}, got {value!r}")
        return value


@config_dataclass
class StoreCfg(Section):
    """Where the track store lives, how a PostgreSQL store connects, and how many crops per track are kept.

    The store is a SQLite file (``path``, the embedded default) or, for deployments on several nodes,
    a PostgreSQL database: ``url`` (``XREID_STORE__URL``) takes a path or a
    ``postgresql://user@host:port/db`` URL and wins over ``path``. Give the password through
    ``PGPASSWORD`` (or inside ``XREID_STORE__URL``), never on a command line (docs/store.md).
    """

    path: str = "xreid-out/xreid.sqlite"   # the embedded SQLite store, used while url is unset
    url: SecretStr | None = None           # a path or postgresql://user@host:port/db (wins over path)
    keep_crops: NonNegInt = 16   # crops kept per track beside the store for `xreid adapt` / `reembed` (0: none)
    crops_dir: str | None = None  # where crops go; None: <stem>.crops beside a SQLite file, xreid-out/<db>.crops
                                  # for PostgreSQL (the replay: <--out>/<db>.crops)
    pool_size: Annotated[int, Field(ge=2)] = 4  # PostgreSQL: connections per process (API threads read in parallel)
    connect_timeout_s: Annotated[float, Field(ge=2)] = 5.0  # PostgreSQL: per connection attempt / pool checkout
    backoff_initial_s: PosFloat = 0.1  # PostgreSQL unreachable: retry delays double up to backoff_max_s (jitter)
    backoff_max_s: PosFloat = 5.0
    retry_timeout_s: NonNegFloat = 0.0  # give up an operation after this long unreachable; 0 = never (the
                                        # query CLI gives up after 10 s then)

    @field_validator("url")
    @classmethod
    def _path_or_postgres(cls, url: SecretStr | None) -> SecretStr | None:
        if url is None:
            return None
        text = url.get_secret_value().strip()
        if text.lower() in _EMPTY_TOKENS:
            raise ValueError("is set but empty (blank, or a YAML null spelling such as null or ~); unset it to use "
                             "store.path")
        if "://" in text and not text.startswith(("postgresql://", "postgres://")):
            raise ValueError(f"must be a file path or a postgresql:// URL, got a {text.split('://')[0]}:// URL")
        return url

    @property
    def location(self) -> str:
        """The store to open: ``url`` when set, else ``path``."""
        return self.url.get_secret_value() if self.url is not None else self.path


@config_dataclass
class BusCfg(Section):
    """Message bus: in-memory (embedded mode) or Redis Streams (distributed mode).

    ``url`` None or ``"memory"`` selects the in-process bus; ``redis://`` / ``rediss://`` URLs
    (with ``user:password@`` for ACL users) select Redis. Secrets in the URL are never logged.
    """

    url: SecretStr | None = None    # may carry user:password@; from XREID_BUS__URL, taken literally
    read_count: PosInt = 16         # XREADGROUP batch size
    block_ms: PosInt = 500          # how long one read waits for new entries
    claim_idle_ms: PosInt = 30_000  # pending entries idle this long are reclaimed by another consumer
    max_deliveries: PosInt = 5      # after this many hand-outs an entry is dead-lettered
    socket_timeout_s: PosFloat = 5.0   # per-command network timeout (reads block less than this)
    connect_timeout_s: PosFloat = 3.0
    backoff_initial_s: PosFloat = 0.1  # reconnect backoff: doubles up to backoff_max_s, with jitter
    backoff_max_s: PosFloat = 5.0
    retry_timeout_s: NonNegFloat = 0.0  # give up an operation after this long unreachable; 0 = never
    max_payload_bytes: PosInt = 32 * 1024 * 1024   # larger entries are refused on publish, dead-lettered on read
    dead_payload_max_bytes: PosInt = 1024 * 1024   # dead letters keep at most this much of the payload
    backlog_high: PosInt = 256      # clips lag+pending above this: cameras shed frames
    backlog_low: PosInt = 64        # ... until it falls below this
    trim_every_s: NonNegFloat = 10.0  # consumers delete entries every group has acked this often; 0 = never

    @field_validator("url")
    @classmethod
    def _known_scheme(cls, url: SecretStr | None) -> SecretStr | None:
        if url is not None and url.get_secret_value() != "memory" and \
                not url.get_secret_value().startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("must be 'memory' or a redis://, rediss:// or unix:// URL")
        return url

    @model_validator(mode="after")
    def _timing(self) -> Self:
        if self.block_ms / 1000.0 >= self.socket_timeout_s:
            raise ValueError(f"block_ms ({self.block_ms}) must be shorter than socket_timeout_s")
        if self.backlog_low > self.backlog_high:
            raise ValueError(f"backlog_low ({self.backlog_low}) must be <= backlog_high ({self.backlog_high})")
        return self


@config_dataclass
class RtspCfg(Section):
    """Network camera sources (``rtsp://``, ``rtsps://``): timeouts and reconnect policy."""

    open_timeout_s: PosFloat = 10.0    # connecting and reading the stream header
    read_timeout_s: PosFloat = 5.0     # no frame for this long = the connection is dead
    backoff_initial_s: PosFloat = 0.5  # reconnect backoff: doubles up to backoff_max_s, with jitter
    backoff_max_s: PosFloat = 30.0
    max_reconnects: NonNegInt = 0      # consecutive failed reconnects before status "failed"; 0 = never give up
    transport: Literal["tcp", "udp"] = "tcp"
    max_lag_s: NonNegFloat = 2.0       # processing this far behind the live stream: skip buffered frames; 0 = never


@config_dataclass
class ReidCfg(Section):
    """Re-ID stage: dynamic batching of clips into the encoder."""

    checkpoint: str | None = None   # X-ReID checkpoint; None: the committed tiny model (models.weights)
    device: str = "auto"            # auto | cpu | cuda[:n]
    amp: bool = True                # autocast (bf16/fp16) on GPU
    max_batch: PosInt = 32          # clips per encoder call
    max_wait_ms: NonNegInt = 50     # after the first clip, wait at most this long to fill the batch
    idle_block_ms: PosInt = 200     # how long one step waits for a first clip
    min_crop_px: PosInt = 8         # crops smaller than this on a side are poison ("bad_shape")
    max_crop_px: PosInt = 4096      # ... and larger than this
    max_clip_frames: PosInt = 64    # clips of 1..this many crops are sampled to the model's T; longer are poison
    # training camera index of deployed cameras that were in training: "cam" or, for a day/night
    # camera, "cam:rgb" / "cam:ir" (pipeline/reid/camera_index.py); others get their modality's mean embedding
    camera_index: dict[str, NonNegInt] = field(default_factory=dict)

    @model_validator(mode="after")
    def _crop_band(self) -> Self:
        if self.min_crop_px > self.max_crop_px:
            raise ValueError(f"min_crop_px ({self.min_crop_px}) must be <= max_crop_px ({self.max_crop_px})")
        return self


@config_dataclass
class GalleryCfg(Section):
    """The faiss index of one model's gallery (see pipeline/matcher/gallery.py)."""

    kind: Literal["flat", "hnsw", "ivf"] = "flat"
    hnsw_m: PosInt = 16                 # graph degree: memory and build time grow with it
    hnsw_ef_construction: PosInt = 40   # build-time beam width
    hnsw_ef_search: PosInt = 64         # query-time beam width: recall vs latency
    ivf_nlist: NonNegInt = 0            # IVF cells; 0 = 4*sqrt(n) of the first bulk add
    ivf_nprobe: PosInt = 16             # IVF cells visited per query
    compact_ratio: PosFloat = 0.5       # rebuild once tombstones exceed this fraction of live tracks


@config_dataclass
class PairThresholds(Section):
    """Cosine similarity a track needs to join an identity, per modality pair (calibrated apart).

    ``None`` leaves the pair to site calibration (``matcher.calibration``); a number is a manual
    threshold and always wins.
    """

    rgb_rgb: Cosine | None = None
    ir_ir: Cosine | None = None
    rgb_ir: Cosine | None = None

    def get(self, pair: str) -> float | None:
        return getattr(self, pair)  # type: ignore[no-any-return]

    def for_pair(self, a: str, b: str) -> float | None:
        return self.rgb_rgb if a == b == "rgb" else self.ir_ir if a == b == "ir" else self.rgb_ir


PAIR_NAMES = ("rgb_rgb", "ir_ir", "rgb_ir")


@config_dataclass
class FallbackThresholds(Section):
    """What an uncalibrated pair uses. 1.0 abstains: without evidence of where a model's impostors score,
    no link is safe, and a wrong merge costs more than a missed link."""

    rgb_rgb: Cosine = 1.0           # until the cameras have shown min_impostor pairs of people at once
    ir_ir: Cosine = 1.0
    rgb_ir: Cosine = 1.0            # until the cross-modal cohort has min_cohort scores (or cross_modal: none)

    def get(self, pair: str) -> float:
        return getattr(self, pair)  # type: ignore[no-any-return]


@config_dataclass
class CalibrationCfg(Section):
    """Per-model thresholds placed by the site's own evidence (pipeline/matcher/calibration.py).

    Impostor pairs are tracks of one camera that overlap in time (two people); genuine pairs are a
    later clip of a track against the track so far (one person). A pair's threshold is the score
    that at most ``target_fmr`` of the impostor pairs reach, within ``[floor, ceiling]``, once there
    are ``min_impostor`` and ``min_genuine`` samples; before that it is ``fallback``.

    ``rgb_ir`` has no free impostors, so with ``cross_modal: cohort`` each new track is also scored
    against up to ``cohort_size`` random tracks of the other modality (nearly all of them other
    people), and the threshold is the cohort's median plus z robust sigmas (1.4826 MAD), z being
    ``cohort_z`` or, where stricter, what the site's own auto-calibrated same-modality pairs imply.
    """

    enabled: bool = True
    target_fmr: Annotated[float, Field(gt=0, lt=1)] = 0.01  # share of impostor pairs allowed at or above the threshold
    min_impostor: PosInt = 100       # impostor samples before the calibrated value takes over (1/target_fmr: fewer
                                     # cannot show where a 1 % false-match rate lies)
    min_genuine: PosInt = 5          # genuine samples before the calibrated value takes over
    floor: Cosine = 0.3              # a calibrated threshold is never laxer than this (adapted and site-centred
                                     # models score one person at 0.4-0.6: docs/adapt.md "Site centre")
    ceiling: Cosine = 1.0            # nor stricter than this (1.0: a model that cannot tell people apart links nothing)
    recompute_every: PosInt = 1      # new tracks of a model between two recomputations (a sort of <= max_samples)
    max_samples: PosInt = 5000       # newest samples per model, pair and kind that count (the site drifts)
    fallback: FallbackThresholds = field(default_factory=FallbackThresholds)
    cross_modal: Literal["cohort", "none"] = "cohort"  # how rgb_ir is placed: cohort scores, or none (fallback)
    cohort_size: PosInt = 16         # random other-modality tracks a new track is scored against
    min_cohort: PosInt = 50          # cohort scores before the cohort threshold takes over from the fallback
    cohort_z: PosFloat = 3.0         # least robust sigmas above the cohort median (auto rgb_rgb/ir_ir may demand more)
    per_decision: bool = False       # target_fmr per decision (a new track against the whole gallery: 1:N), not per
                                     # pair; needed where hundreds of people pass (benchmarks/matcher_crowd.py)

    @model_validator(mode="after")
    def _sample_counts(self) -> Self:
        if self.floor > self.ceiling:
            raise ValueError(f"floor ({self.floor}) must be <= ceiling ({self.ceiling})")
        if self.max_samples < max(self.min_impostor, self.min_genuine):
            raise ValueError("max_samples must be >= min_impostor and min_genuine")
        if self.cross_modal == "cohort" and self.max_samples < self.min_cohort:
            raise ValueError("max_samples must be >= min_cohort (or cross_modal: none)")
        return self


@config_dataclass
class TransitionCfg(Section):
    """A person leaving ``from_camera`` appears on ``to_camera`` between ``min_s`` and ``max_s`` later."""

    from_camera: str
    to_camera: str
    min_s: float = 0.0
    max_s: float = 600.0

    @model_validator(mode="after")
    def _window(self) -> Self:
        if self.min_s > self.max_s:
            raise ValueError(f"min_s must be <= max_s ({self.from_camera}->{self.to_camera})")
        return self


@config_dataclass
class MatcherCfg(Section):
    """Linking tracks into identities (docs/design.md §4 Matcher)."""

    thresholds: PairThresholds = field(default_factory=PairThresholds)  # manual; unset pairs: calibration
    calibration: CalibrationCfg = field(default_factory=CalibrationCfg)
    top_k: PosInt = 20               # gallery tracks compared with each new track
    merge_margin: NonNegFloat = 0.1  # two identities merge when one track beats both thresholds by this
    min_gap: NonNegFloat | None = None  # a join or merge must lead the next identity by this (None: genuine
                                        # score spread)
    min_clips: PosInt = 2            # clips a track gathers before it may join an identity (then at each clip)
    overlap_slack_s: NonNegFloat = 0.2  # same-camera tracks overlapping less than this are not simultaneous
                                        # (box jitter)
    transitions: list[TransitionCfg] = field(default_factory=list)  # empty: no transition constraint
    transitions_strict: bool = False  # true: camera pairs without a window cannot be linked at all
    gallery: GalleryCfg = field(default_factory=GalleryCfg)
    max_batch: PosInt = 64           # embeddings per store transaction
    idle_block_ms: PosInt = 200


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*$")
_UNIT_S = {"": 1.0, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}


def parse_duration(value: object) -> float | None:
    """``"30d"``, ``"12h"``, ``"15m"``, ``"90s"``, ``"2w"`` or a number of seconds -> seconds; ``None``/``"forever"``
    -> None (keep forever).

    Raises:
        ValueError: naming the accepted forms (pydantic turns it into one config error naming the key).
    """
    if value is None or (isinstance(value, str) and value.strip().lower() in ("forever", "never", "none")):
        return None
    if isinstance(value, bool):
        raise ValueError(f"must be a duration such as 30d, 12h, 15m or 90s (or forever), got {value!r}")
    if isinstance(value, (int, float)):
        seconds = float(value)
    else:
        m = _DURATION.match(str(value))
        if m is None:
            raise ValueError(f"must be a duration such as 30d, 12h, 15m or 90s (or forever), "
                             f"got {redact_text(str(value))[:40]!r}")
        seconds = float(m[1]) * _UNIT_S[m[2]]
    if not 0 <= seconds < 1e11:
        raise ValueError(f"must be a duration between 0 and ~3000 years, got {value!r}")
    return seconds


Duration = Annotated[float | None, BeforeValidator(parse_duration)]


@config_dataclass
class CameraRetentionCfg(Section):
    """One camera's horizons; a key left out (or null) follows the ``retention`` section's."""

    crops: Duration = None
    embeddings: Duration = None
    tracks: Duration = None
    events: Duration = None


@config_dataclass
class RetentionCfg(Section):
    """How long personal data is kept (docs/privacy.md). Durations: ``30d``, ``12h``, ``15m``, ``90s``, ``2w``,
    a number of seconds, or ``forever``. Ages count from when the store last wrote the item.

    The matcher sweeps every ``sweep_every``; an embedded replay sweeps at its start and end.
    """

    crops: Duration = 30 * 86400.0         # crop files beside the store, track thumbnails, contact sheets, clips on the bus
    embeddings: Duration = 90 * 86400.0    # track vectors (the gallery), calibration scores, embeddings on the bus
    tracks: Duration = 90 * 86400.0        # tracks with their links and merges; identities left without tracks
    events: Duration = 90 * 86400.0        # day/night modality events and camera status rows, camera-status stream,
                                           # the live-event log (aged from when it was logged)
    watchlists: Duration = 90 * 86400.0    # watchlist entries with their reference vectors (aged from their creation)
                                           # and watchlist hits (from when they were recorded); no per-camera override
    dead_letters: Duration = 7 * 86400.0   # dead-letter streams (they hold clips)
    audit: Duration = 365 * 86400.0        # the query audit log and erasure tombstones
    sweep_every: Annotated[float, BeforeValidator(parse_duration), Field(gt=0)] = 3600.0
    embeddings_only: bool = False          # keep no crop after embedding (no crop files, no thumbnails)
    cameras: dict[str, CameraRetentionCfg] = field(default_factory=dict)   # per-camera overrides

    @field_validator("cameras")
    @classmethod
    def _camera_ids(cls, value: dict[str, CameraRetentionCfg]) -> dict[str, CameraRetentionCfg]:
        bad = [k for k in value if not is_camera_id(k)]
        if bad:
            raise ValueError(f"keys must be camera ids ({CAMERA_ID_RULE}), got {bad[0]!r}")
        return value

    def horizon(self, kind: str, camera_id: str | None = None) -> float | None:
        """Seconds ``kind`` is kept on ``camera_id`` (None: forever)."""
        own = self.cameras.get(camera_id) if camera_id is not None else None
        value = getattr(own, kind, None) if own is not None else None
        return value if value is not None else getattr(self, kind)  # type: ignore[no-any-return]


@config_dataclass
class XreidCfg(Section):
    """Root of the pipeline configuration."""

    detector: DetectorCfg = field(default_factory=DetectorCfg)
    api: ApiCfg = field(default_factory=ApiCfg)
    tracker: TrackerCfg = field(default_factory=TrackerCfg)
    clips: ClipCfg = field(default_factory=ClipCfg)
    store: StoreCfg = field(default_factory=StoreCfg)
    bus: BusCfg = field(default_factory=BusCfg)
    rtsp: RtspCfg = field(default_factory=RtspCfg)
    reid: ReidCfg = field(default_factory=ReidCfg)
    matcher: MatcherCfg = field(default_factory=MatcherCfg)
    events: EventsCfg = field(default_factory=EventsCfg)   # live events: MQTT, webhooks, the API's SSE stream
    cameras: list[CameraCfg] = field(default_factory=list)
    retention: RetentionCfg = field(default_factory=RetentionCfg)
