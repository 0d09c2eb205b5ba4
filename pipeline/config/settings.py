"""The configuration tree of the pipeline (``configs/default.yaml`` is its documented instance).

Pure data with validation: each section belongs to one stage, and each stage takes only its
section. ``pipeline.config.loader.load_config(XreidCfg, path, env=os.environ)`` builds it at the edge.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import Literal

from models.errors import ConfigError
from pipeline.config.ids import check_camera_id
from pipeline.config.loader import secret

Modality = Literal["rgb", "ir"]
CameraModality = Literal["rgb", "ir", "auto"]   # auto: switches between rgb and ir (day/night cameras)


def _positive(name: str, value: float) -> None:
    if value <= 0:
        raise ConfigError(f"{name} must be > 0, got {value}")


def _unit(name: str, value: float) -> None:
    if not 0.0 <= value <= 1.0:
        raise ConfigError(f"{name} must be in [0, 1], got {value}")


@dataclass(frozen=True)
class MotionCfg:
    """Where a fixed camera sees motion (pipeline/detection/motion.py): HOG searches only there.

    Defaults measured on PETS09-S2L1 frames 1-400 (benchmarks/mot_vtest.py, docs/tracking.md).
    """

    enabled: bool = True           # hog only: search around moving regions (False: the whole frame)
    scale: float = 0.5             # the background model runs on a copy this much smaller
    history: int = 500             # MOG2: frames the background remembers
    var_threshold: float = 16.0    # MOG2: squared distance from the background that counts as motion
    detect_shadows: bool = True    # MOG2: shadows are found and not counted as motion (colour frames only)
    min_blob_area_px: int = 240    # moving blobs smaller than this (source pixels) are noise
    dilate_px: int = 14            # blobs closer than about this join (a person's parts, a small group)
    roi_margin: float = 0.4        # search this many blob heights around each blob (HOG window margin)
    min_region_px: int = 40        # ... counting a blob at least this tall (a partly moving person)
    warmup_frames: int = 5         # search whole frames until the background has seen this many
    full_frame_every: int = 0      # also search the whole frame every n-th frame (0: never)
    min_foreground: float = 0.0    # drop boxes with a smaller share of moving pixels once warm (0: keep all)
    search_tracks: bool = True     # also search around the tracker's current tracks (people who stop walking)

    def __post_init__(self) -> None:
        if not 0.0 < self.scale <= 1.0:
            raise ConfigError(f"detector.motion.scale must be in (0, 1], got {self.scale}")
        for name in ("history", "var_threshold", "dilate_px", "min_region_px"):
            _positive(f"detector.motion.{name}", getattr(self, name))
        for name in ("min_blob_area_px", "warmup_frames", "full_frame_every"):
            if getattr(self, name) < 0:
                raise ConfigError(f"detector.motion.{name} must be >= 0, got {getattr(self, name)}")
        if self.roi_margin < 0:
            raise ConfigError(f"detector.motion.roi_margin must be >= 0, got {self.roi_margin}")
        _unit("detector.motion.min_foreground", self.min_foreground)


@dataclass(frozen=True)
class DenoiseCfg:
    """Spatial denoising of a noisy (night, high-gain) frame before detection (pipeline/detection/conditioning.py).

    Runs only on frames whose estimated sensor noise is at least ``min_sigma`` gray levels, so a clean
    daylight frame passes unchanged. Defaults measured on PETS09 rendered as night NIR (docs/daynight.md).
    """

    method: Literal["none", "median", "gaussian", "bilateral", "nlmeans"] = "median"
    kernel_px: int = 3             # median / gaussian / bilateral: filter size (odd)
    strength: float = 1.0          # nlmeans only: filter strength h as a multiple of the estimated noise sigma
    min_sigma: float = 3.0         # denoise frames with at least this much estimated noise (gray levels)
    hog_margin_scale: float = 1.0  # hog: margin -> score scale on denoised frames (people give lower margins there)

    def __post_init__(self) -> None:
        if self.kernel_px < 3 or self.kernel_px % 2 == 0:
            raise ConfigError(f"detector.denoise.kernel_px must be an odd number >= 3, got {self.kernel_px}")
        _positive("detector.denoise.strength", self.strength)
        _positive("detector.denoise.hog_margin_scale", self.hog_margin_scale)
        if self.min_sigma < 0:
            raise ConfigError(f"detector.denoise.min_sigma must be >= 0, got {self.min_sigma}")


@dataclass(frozen=True)
class RelinkCfg:
    """Fragment relinking inside one camera (pipeline/tracking/relink.py).

    A track the tracker starts while another was lost shortly before, close to where that one was
    heading, of similar size and colours, continues the lost one's id.
    """

    enabled: bool = True
    max_gap_frames: int = 80       # a lost track can be continued this many frames after it was last seen
    gate: float = 1.0              # max distance from the lost track's predicted centre, in its box heights ...
    gate_per_frame: float = 0.05   # ... growing by this much per frame of the gap
    min_similarity: float = 0.8    # cosine similarity of colour histograms, at least
    size_tolerance: float = 0.35   # box heights may differ by this fraction at most
    appearance_momentum: float = 0.9  # running appearance = momentum * old + (1 - momentum) * new
    velocity_frames: int = 8       # the lost track's velocity is measured over its last this many frames

    def __post_init__(self) -> None:
        _positive("tracker.relink.max_gap_frames", self.max_gap_frames)
        _positive("tracker.relink.gate", self.gate)
        if self.gate_per_frame < 0:
            raise ConfigError(f"tracker.relink.gate_per_frame must be >= 0, got {self.gate_per_frame}")
        _unit("tracker.relink.min_similarity", self.min_similarity)
        _unit("tracker.relink.size_tolerance", self.size_tolerance)
        _unit("tracker.relink.appearance_momentum", self.appearance_momentum)
        if self.velocity_frames < 2:
            raise ConfigError(f"tracker.relink.velocity_frames must be >= 2, got {self.velocity_frames}")


@dataclass(frozen=True)
class DetectorCfg:
    """Person detector of one camera."""

    kind: Literal["hog", "yolo", "heat"] = "hog"   # heat: warm-blob detector for thermal frames (offline)
    weights: str = "yolo11n.pt"   # ultralytics weights name or path (yolo only)
    person_classes: tuple[str, ...] = ("person",)  # yolo only: the model's class names that are people
    conf: float = 0.1              # detections below this score are dropped (= tracker.track_low_thresh: ByteTrack
                                   # uses low-score boxes to keep tracks through occlusion)
    device: str = "cpu"
    imgsz: int = 640               # yolo inference size
    nms_iou: float = 0.4           # boxes overlapping a better one by more than this IoU are dropped
    hog_upscale: float = 1.6       # hog only: frame scale before detection (its window needs people >= ~96 px)
    hog_win_stride: int = 8        # hog only: sliding-window step in pixels (smaller: slower, more recall)
    hog_scale: float = 1.08        # hog only: image pyramid step (1.05: ~1.5x slower, no better on PETS09)
    hog_box_shrink: tuple[float, float] = (0.515, 0.735)  # hog only: person width/height as a fraction of the
                                                           # window (fitted on PETS09 ground truth)
    hog_margin_scale: float = 1.33  # hog only: SVM margin m -> score 1 - exp(-m / this) (tracker's score scale)
    motion: MotionCfg = field(default_factory=lambda: MotionCfg())  # hog only: search where the camera sees motion
    heat: HeatCfg = field(default_factory=lambda: HeatCfg())  # heat only: thermal blob limits
    denoise: DenoiseCfg = field(default_factory=lambda: DenoiseCfg())  # hog only: clean noisy (night) frames first

    def __post_init__(self) -> None:
        _unit("detector.conf", self.conf)
        _positive("detector.imgsz", self.imgsz)
        _unit("detector.nms_iou", self.nms_iou)
        _positive("detector.hog_upscale", self.hog_upscale)
        _positive("detector.hog_win_stride", self.hog_win_stride)
        if self.hog_scale <= 1.0:
            raise ConfigError(f"detector.hog_scale must be > 1, got {self.hog_scale}")
        if not all(0.0 < f <= 1.0 for f in self.hog_box_shrink):
            raise ConfigError(f"detector.hog_box_shrink values must be in (0, 1], got {list(self.hog_box_shrink)}")
        _positive("detector.hog_margin_scale", self.hog_margin_scale)
        if not self.person_classes or not all(isinstance(c, str) and c for c in self.person_classes):
            raise ConfigError(f"detector.person_classes must be a non-empty list of class names, "
                              f"got {list(self.person_classes)}")


@dataclass(frozen=True)
class TrackerCfg:
    """Multi-object tracker of one camera (ultralytics ByteTrack or BoT-SORT)."""

    kind: Literal["bytetrack", "botsort"] = "bytetrack"
    track_high_thresh: float = 0.5
    track_low_thresh: float = 0.1
    new_track_thresh: float = 0.6
    track_buffer: int = 30
    match_thresh: float = 0.8
    fuse_score: bool = True
    # botsort only: camera-motion compensation ("none" for fixed cameras) and its re-ID gates
    # (its own re-ID encoder stays off: identities across cameras are X-ReID's job)
    gmc_method: Literal["none", "sparseOptFlow", "orb", "sift", "ecc"] = "none"
    proximity_thresh: float = 0.5
    appearance_thresh: float = 0.8
    relink: RelinkCfg = field(default_factory=lambda: RelinkCfg())  # lost-and-found tracks keep their id

    def __post_init__(self) -> None:
        for name in ("track_high_thresh", "track_low_thresh", "new_track_thresh", "match_thresh",
                     "proximity_thresh", "appearance_thresh"):
            _unit(f"tracker.{name}", getattr(self, name))
        _positive("tracker.track_buffer", self.track_buffer)
        if self.track_low_thresh > self.track_high_thresh:
            raise ConfigError(f"tracker.track_low_thresh ({self.track_low_thresh}) must be <= "
                              f"tracker.track_high_thresh ({self.track_high_thresh})")


@dataclass(frozen=True)
class ClipCfg:
    """How tracks are cut into clips of T crops."""

    seq_len: int = 8               # T crops per clip; the re-ID model's sequence length
    segment_seconds: float = 10.0  # long tracks emit a clip this often
    max_candidates: int = 32       # crops kept per open track (bounded memory)
    min_track_frames: int = 5      # shorter tracks never become clips
    crop_height: int = 256         # crops are resized to this height before JPEG encoding
    jpeg_quality: int = 90
    max_open_tracks: int = 64      # tracks buffered at once per camera; further new tracks are dropped (counted)

    def __post_init__(self) -> None:
        for name in ("seq_len", "max_candidates", "min_track_frames", "crop_height", "max_open_tracks"):
            _positive(f"clips.{name}", getattr(self, name))
        _positive("clips.segment_seconds", self.segment_seconds)
        if self.max_candidates < self.seq_len:
            raise ConfigError(f"clips.max_candidates ({self.max_candidates}) must be >= clips.seq_len ({self.seq_len})")
        if not 1 <= self.jpeg_quality <= 100:
            raise ConfigError(f"clips.jpeg_quality must be in [1, 100], got {self.jpeg_quality}")


_EMPTY_TOKENS = frozenset({"", "null", "~", "none"})  # what someone who meant "no token" writes


def is_loopback_host(host: str) -> bool:
    """True for addresses only this machine can reach (``localhost``, 127.0.0.0/8, ``::1``)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a hostname other than localhost may resolve anywhere


@dataclass(frozen=True)
class ApiCfg:
    """The query API and dashboard (``xreid serve``): a reader of the store file.

    ``token`` is the bearer token clients send (``Authorization: Bearer <token>``); set it with
    ``XREID_API__TOKEN`` rather than in a file. Binding anything but a loopback address without
    a token is refused, so the store is never exposed unauthenticated by accident.
    """

    host: str = "127.0.0.1"
    port: int = 8000
    token: str | None = secret()              # from XREID_API__TOKEN, taken literally
    store_path: str | None = None            # None: the store section's path
    checkpoint: str | None = None            # re-ID checkpoint for image search; None: the committed tiny model
    max_upload_bytes: int = 8 * 1024 * 1024  # per uploaded image
    max_upload_files: int = 8                # images per search request
    max_image_pixels: int = 40_000_000       # per image, read from its header before decoding (bombs: 413)
    max_request_pixels: int = 80_000_000     # all images of one search together, also checked before decoding
    max_concurrent_decodes: int = 2          # searches decoding/encoding images at once (bounds memory)
    decode_wait_s: float = 2.0               # how long a search waits for a slot before 503 + Retry-After
    cors_origins: list[str] = field(default_factory=list)  # empty: CORS off

    def __post_init__(self) -> None:
        if not self.host:
            raise ConfigError("api.host must not be empty")
        if not 0 < self.port < 65536:
            raise ConfigError(f"api.port must be in 1..65535, got {self.port}")
        if self.token is not None and self.token.strip().lower() in _EMPTY_TOKENS:
            raise ConfigError("api.token is set but empty (blank, or a YAML null spelling such as null or ~); "
                              "unset it to serve without auth on loopback")
        if self.token is None and not is_loopback_host(self.host):
            raise ConfigError(f"api.token is required to bind the non-loopback address {self.host!r} "
                              "(set XREID_API__TOKEN)")
        _positive("api.max_upload_bytes", self.max_upload_bytes)
        _positive("api.max_upload_files", self.max_upload_files)
        for key in ("max_image_pixels", "max_request_pixels", "max_concurrent_decodes"):
            _positive(f"api.{key}", getattr(self, key))
        if not 0 <= self.decode_wait_s <= 60:
            raise ConfigError(f"api.decode_wait_s must be in 0..60, got {self.decode_wait_s}")


@dataclass(frozen=True)
class DayNightCfg:
    """How a ``modality: auto`` camera tells colour frames from near-infrared ones (pipeline/ingest/daynight.py).

    A frame is ``ir`` when it is both unsaturated and gray (channels move together), ``rgb`` when
    it is clearly saturated or its channels disagree, and undecided in between (hysteresis band).
    """

    ir_max_saturation: float = 0.08    # mean HSV saturation (0..1) at or below which a frame may be infrared
    ir_min_correlation: float = 0.97   # ... and smallest inter-channel correlation at or above which
    rgb_min_saturation: float = 0.15   # a frame is colour at or above this saturation
    rgb_max_correlation: float = 0.95  # ... or at or below this channel correlation
    min_dwell_s: float = 2.0           # a change must last this long before the camera switches
    min_dwell_frames: int = 3          # ... and be seen in at least this many frames
    min_hold_s: float = 10.0           # after a switch, no other switch for this long
    max_lookahead_frames: int = 50     # frames held back while a change is pending (memory bound)
    analysis_width: int = 96           # frames are measured on a copy this wide

    def __post_init__(self) -> None:
        for name in ("ir_max_saturation", "rgb_min_saturation"):
            _unit(f"daynight.{name}", getattr(self, name))
        for name in ("ir_min_correlation", "rgb_max_correlation"):
            if not -1.0 <= getattr(self, name) <= 1.0:
                raise ConfigError(f"daynight.{name} must be in [-1, 1], got {getattr(self, name)}")
        if self.ir_max_saturation >= self.rgb_min_saturation:
            raise ConfigError("daynight.ir_max_saturation must be below daynight.rgb_min_saturation (hysteresis band)")
        if self.rgb_max_correlation >= self.ir_min_correlation:
            raise ConfigError("daynight.rgb_max_correlation must be below daynight.ir_min_correlation (hysteresis band)")
        if self.min_dwell_s < 0 or self.min_hold_s < 0:
            raise ConfigError("daynight.min_dwell_s and daynight.min_hold_s must be >= 0")
        for name in ("min_dwell_frames", "max_lookahead_frames", "analysis_width"):
            _positive(f"daynight.{name}", getattr(self, name))
        if self.max_lookahead_frames < self.min_dwell_frames:
            raise ConfigError("daynight.max_lookahead_frames must be >= daynight.min_dwell_frames")


ThermalPalette = Literal["white_hot", "black_hot", "ironbow", "rainbow", "turbo", "hot", "inferno", "magma", "auto"]


@dataclass(frozen=True)
class ThermalCfg:
    """How a thermal camera encodes heat in its frames (pipeline/ingest/thermal.py).

    8-bit frames are a palette (``white_hot``/``black_hot`` gray, or a false-colour palette mapped
    back to intensity; ``auto`` picks the false-colour palette that fits); 16-bit frames are raw
    counts, mapped to 8 bits by automatic gain control or by a fixed temperature window.
    """

    palette: ThermalPalette = "white_hot"
    max_colour_distance: float = 40.0       # a pixel farther than this (RGB units) from every palette colour is off-palette
    max_off_palette_fraction: float = 0.05  # frames with more off-palette pixels than this are rejected
    agc_low_percentile: float = 1.0         # 16-bit AGC: raw value mapped to 0 ...
    agc_high_percentile: float = 99.0       # ... and to 255
    agc_smoothing: float = 0.3              # weight of the newest frame in the running AGC range (1 = no smoothing)
    agc_min_span: int = 64                  # raw counts: a flat scene is not stretched into noise
    raw_scale: float = 0.01                 # radiometric: temperature (deg C) = raw * raw_scale + raw_offset
    raw_offset: float = -273.15
    window_c: tuple[float, float] | None = None  # fixed window [lo, hi] deg C instead of AGC

    def __post_init__(self) -> None:
        _positive("thermal.max_colour_distance", self.max_colour_distance)
        _unit("thermal.max_off_palette_fraction", self.max_off_palette_fraction)
        if not 0.0 <= self.agc_low_percentile < self.agc_high_percentile <= 100.0:
            raise ConfigError("thermal.agc_low_percentile must be below thermal.agc_high_percentile, both in [0, 100]")
        if not 0.0 < self.agc_smoothing <= 1.0:
            raise ConfigError(f"thermal.agc_smoothing must be in (0, 1], got {self.agc_smoothing}")
        _positive("thermal.agc_min_span", self.agc_min_span)
        if self.raw_scale == 0:
            raise ConfigError("thermal.raw_scale must not be 0")
        if self.window_c is not None and not self.window_c[0] < self.window_c[1]:
            raise ConfigError(f"thermal.window_c must be [lo, hi] with lo < hi, got {list(self.window_c)}")


@dataclass(frozen=True)
class HeatCfg:
    """The offline thermal detector (``detector.kind: heat``): warm blobs shaped like people."""

    background_px: int = 61         # local background = median over about this many pixels
    threshold_sigma: float = 4.0    # warm = above the local background by this many robust sigmas ...
    min_contrast: float = 10.0      # ... and by at least this many gray levels
    min_area_px: int = 60           # blob size limits (pixels of the frame)
    max_area_fraction: float = 0.2  # ... and as a fraction of the frame
    min_height_px: int = 12
    min_aspect: float = 1.0         # blob height / width: people are taller than wide ...
    max_aspect: float = 5.0         # ... but not poles
    close_px: int = 5               # gaps up to this size inside a person are closed before labelling
    join_gap: float = 0.25          # stacked blobs (head, torso, legs) this close, in blob heights, are one person
    min_part_px: int = 8            # smaller blobs are noise, not parts of a person

    def __post_init__(self) -> None:
        for name in ("background_px", "threshold_sigma", "min_area_px", "min_height_px", "min_aspect", "close_px"):
            _positive(f"heat.{name}", getattr(self, name))
        if self.min_contrast < 0:
            raise ConfigError(f"heat.min_contrast must be >= 0, got {self.min_contrast}")
        if not 0.0 < self.max_area_fraction <= 1.0:
            raise ConfigError(f"heat.max_area_fraction must be in (0, 1], got {self.max_area_fraction}")
        if self.max_aspect <= self.min_aspect:
            raise ConfigError("heat.max_aspect must be > heat.min_aspect")
        if self.join_gap < 0 or self.min_part_px < 1:
            raise ConfigError("heat.join_gap must be >= 0 and heat.min_part_px >= 1")


@dataclass(frozen=True)
class PersistenceCfg:
    """A track must move or persist like a person before it counts (pipeline/tracking/persistence.py).

    Warm static objects (radiators, parked engines, lamps) and fleeting reflections fool a thermal
    detector; they are told apart by behaviour: a person is seen in most frames and moves.
    """

    apply_to: Literal["none", "ir", "all"] = "ir"   # which frames' tracks are filtered
    min_hits: int = 5              # frames a track must be seen in ...
    min_hit_ratio: float = 0.6     # ... out of the frames since it first appeared
    min_travel: float = 0.15       # and its centre must move this many box heights from where it appeared
    max_pending_s: float = 60.0    # a track unconfirmed this long is forgotten (memory bound)

    def __post_init__(self) -> None:
        _positive("persistence.min_hits", self.min_hits)
        _unit("persistence.min_hit_ratio", self.min_hit_ratio)
        if self.min_travel < 0:
            raise ConfigError(f"persistence.min_travel must be >= 0, got {self.min_travel}")
        _positive("persistence.max_pending_s", self.max_pending_s)


@dataclass(frozen=True)
class CameraCfg:
    """One camera: where frames come from and how they are processed."""

    id: str
    source: str
    modality: CameraModality = "rgb"       # auto: a day/night camera, decided per frame (docs/daynight.md)
    detector: DetectorCfg | None = None   # None: the top-level detector section
    tracker: TrackerCfg | None = None     # None: the top-level tracker section (incl. relinking)
    frame_stride: int = 1                  # process every n-th frame
    realtime: bool = False                 # pace file replay at the file's frame rate
    loop: bool = False                     # replay a recorded file forever, as a live camera (soak, demos)
    detector_ir: DetectorCfg | None = None  # for infrared frames (ir, or auto at night); None: detector
    daynight: DayNightCfg = field(default_factory=DayNightCfg)      # auto cameras: colour vs infrared
    thermal: ThermalCfg = field(default_factory=ThermalCfg)         # ir cameras: how frames encode heat
    persistence: PersistenceCfg = field(default_factory=PersistenceCfg)  # tracks must move/persist like people

    def __post_init__(self) -> None:
        check_camera_id(self.id, "camera id")
        _positive(f"cameras[{self.id}].frame_stride", self.frame_stride)


@dataclass(frozen=True)
class StoreCfg:
    path: str = "xreid-out/xreid.sqlite"
    keep_crops: int = 16   # crops kept per track beside the store for `xreid adapt` / `reembed` (0: none)

    def __post_init__(self) -> None:
        if self.keep_crops < 0:
            raise ConfigError(f"store.keep_crops must be >= 0, got {self.keep_crops}")


@dataclass(frozen=True)
class BusCfg:
    """Message bus: in-memory (embedded mode) or Redis Streams (distributed mode).

    ``url`` None or ``"memory"`` selects the in-process bus; ``redis://`` / ``rediss://`` URLs
    (with ``user:password@`` for ACL users) select Redis. Secrets in the URL are never logged.
    """

    url: str | None = secret()   # may carry user:password@; from XREID_BUS__URL, taken literally
    read_count: int = 16            # XREADGROUP batch size
    block_ms: int = 500             # how long one read waits for new entries
    claim_idle_ms: int = 30_000     # pending entries idle this long are reclaimed by another consumer
    max_deliveries: int = 5         # after this many hand-outs an entry is dead-lettered
    socket_timeout_s: float = 5.0   # per-command network timeout (reads block less than this)
    connect_timeout_s: float = 3.0
    backoff_initial_s: float = 0.1  # reconnect backoff: doubles up to backoff_max_s, with jitter
    backoff_max_s: float = 5.0
    retry_timeout_s: float = 0.0    # give up an operation after this long unreachable; 0 = never
    max_payload_bytes: int = 32 * 1024 * 1024   # larger entries are refused on publish, dead-lettered on read
    dead_payload_max_bytes: int = 1024 * 1024   # dead letters keep at most this much of the payload
    backlog_high: int = 256         # clips lag+pending above this: cameras shed frames
    backlog_low: int = 64           # ... until it falls below this
    trim_every_s: float = 10.0      # consumers delete entries every group has acked this often; 0 = never

    def __post_init__(self) -> None:
        if self.url is not None and self.url != "memory" and not self.url.startswith(("redis://", "rediss://", "unix://")):
            raise ConfigError("bus.url must be 'memory' or a redis://, rediss:// or unix:// URL")
        for name in ("read_count", "block_ms", "claim_idle_ms", "max_deliveries", "socket_timeout_s",
                     "connect_timeout_s", "backoff_initial_s", "backoff_max_s", "max_payload_bytes",
                     "dead_payload_max_bytes", "backlog_high", "backlog_low"):
            _positive(f"bus.{name}", getattr(self, name))
        if self.retry_timeout_s < 0 or self.trim_every_s < 0:
            raise ConfigError("bus.retry_timeout_s and bus.trim_every_s must be >= 0")
        if self.block_ms / 1000.0 >= self.socket_timeout_s:
            raise ConfigError(f"bus.block_ms ({self.block_ms}) must be shorter than bus.socket_timeout_s")
        if self.backlog_low > self.backlog_high:
            raise ConfigError(f"bus.backlog_low ({self.backlog_low}) must be <= bus.backlog_high ({self.backlog_high})")


@dataclass(frozen=True)
class RtspCfg:
    """Network camera sources (``rtsp://``, ``rtsps://``): timeouts and reconnect policy."""

    open_timeout_s: float = 10.0     # connecting and reading the stream header
    read_timeout_s: float = 5.0      # no frame for this long = the connection is dead
    backoff_initial_s: float = 0.5   # reconnect backoff: doubles up to backoff_max_s, with jitter
    backoff_max_s: float = 30.0
    max_reconnects: int = 0          # consecutive failed reconnects before status "failed"; 0 = never give up
    transport: Literal["tcp", "udp"] = "tcp"
    max_lag_s: float = 2.0           # processing this far behind the live stream: skip buffered frames; 0 = never

    def __post_init__(self) -> None:
        for name in ("open_timeout_s", "read_timeout_s", "backoff_initial_s", "backoff_max_s"):
            _positive(f"rtsp.{name}", getattr(self, name))
        if self.max_reconnects < 0 or self.max_lag_s < 0:
            raise ConfigError("rtsp.max_reconnects and rtsp.max_lag_s must be >= 0")


@dataclass(frozen=True)
class ReidCfg:
    """Re-ID stage: dynamic batching of clips into the encoder."""

    checkpoint: str | None = None   # X-ReID checkpoint; None: the committed tiny model (models.weights)
    device: str = "auto"            # auto | cpu | cuda[:n]
    amp: bool = True                # autocast (bf16/fp16) on GPU
    max_batch: int = 32             # clips per encoder call
    max_wait_ms: int = 50           # after the first clip, wait at most this long to fill the batch
    idle_block_ms: int = 200        # how long one step waits for a first clip
    min_crop_px: int = 8            # crops smaller than this on a side are poison ("bad_shape")
    max_crop_px: int = 4096         # ... and larger than this
    max_clip_frames: int = 64       # clips of 1..this many crops are sampled to the model's T; longer are poison
    # training camera index of deployed cameras that were in training: "cam" or, for a day/night
    # camera, "cam:rgb" / "cam:ir" (pipeline/reid/camera_index.py); others get their modality's mean embedding
    camera_index: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name in ("max_batch", "idle_block_ms", "min_crop_px", "max_crop_px", "max_clip_frames"):
            _positive(f"reid.{name}", getattr(self, name))
        bad = sorted(k for k, v in self.camera_index.items() if not isinstance(v, int) or v < 0)
        if bad:
            raise ConfigError(f"reid.camera_index values must be training camera indices >= 0, bad: {', '.join(bad)}")
        if self.max_wait_ms < 0:
            raise ConfigError(f"reid.max_wait_ms must be >= 0, got {self.max_wait_ms}")
        if self.min_crop_px > self.max_crop_px:
            raise ConfigError(f"reid.min_crop_px ({self.min_crop_px}) must be <= reid.max_crop_px ({self.max_crop_px})")


@dataclass(frozen=True)
class GalleryCfg:
    """The faiss index of one model's gallery (see pipeline/matcher/gallery.py)."""

    kind: Literal["flat", "hnsw", "ivf"] = "flat"
    hnsw_m: int = 16                 # graph degree: memory and build time grow with it
    hnsw_ef_construction: int = 40   # build-time beam width
    hnsw_ef_search: int = 64         # query-time beam width: recall vs latency
    ivf_nlist: int = 0               # IVF cells; 0 = 4*sqrt(n) of the first bulk add
    ivf_nprobe: int = 16             # IVF cells visited per query
    compact_ratio: float = 0.5       # rebuild once tombstones exceed this fraction of live tracks

    def __post_init__(self) -> None:
        for name in ("hnsw_m", "hnsw_ef_construction", "hnsw_ef_search", "ivf_nprobe", "compact_ratio"):
            _positive(f"matcher.gallery.{name}", getattr(self, name))
        if self.ivf_nlist < 0:
            raise ConfigError(f"matcher.gallery.ivf_nlist must be >= 0, got {self.ivf_nlist}")


@dataclass(frozen=True)
class PairThresholds:
    """Cosine similarity a track needs to join an identity, per modality pair (calibrated apart).

    ``None`` leaves the pair to site calibration (``matcher.calibration``); a number is a manual
    threshold and always wins.
    """

    rgb_rgb: float | None = None
    ir_ir: float | None = None
    rgb_ir: float | None = None

    def __post_init__(self) -> None:
        for name in PAIR_NAMES:
            value = getattr(self, name)
            if value is not None and not -1.0 <= value <= 1.0:
                raise ConfigError(f"matcher.thresholds.{name} must be in [-1, 1], got {value}")

    def get(self, pair: str) -> float | None:
        return getattr(self, pair)  # type: ignore[no-any-return]

    def for_pair(self, a: str, b: str) -> float | None:
        return self.rgb_rgb if a == b == "rgb" else self.ir_ir if a == b == "ir" else self.rgb_ir


PAIR_NAMES = ("rgb_rgb", "ir_ir", "rgb_ir")


@dataclass(frozen=True)
class FallbackThresholds:
    """What an uncalibrated pair uses. 1.0 abstains: without evidence of where a model's impostors score,
    no link is safe, and a wrong merge costs more than a missed link."""

    rgb_rgb: float = 1.0            # until the cameras have shown min_impostor pairs of people at once
    ir_ir: float = 1.0
    rgb_ir: float = 1.0             # until the cross-modal cohort has min_cohort scores (or cross_modal: none)

    def __post_init__(self) -> None:
        for name in PAIR_NAMES:
            if not -1.0 <= getattr(self, name) <= 1.0:
                raise ConfigError(f"matcher.calibration.fallback.{name} must be in [-1, 1], got {getattr(self, name)}")

    def get(self, pair: str) -> float:
        return getattr(self, pair)  # type: ignore[no-any-return]


@dataclass(frozen=True)
class CalibrationCfg:
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
    target_fmr: float = 0.01         # share of impostor pairs allowed at or above the threshold
    min_impostor: int = 100          # impostor samples before the calibrated value takes over (1/target_fmr: fewer
                                     # cannot show where a 1 % false-match rate lies)
    min_genuine: int = 5             # genuine samples before the calibrated value takes over
    floor: float = 0.5               # a calibrated threshold is never laxer than this
    ceiling: float = 1.0             # nor stricter than this (1.0: a model that cannot tell people apart links nothing)
    recompute_every: int = 1         # new tracks of a model between two recomputations (a sort of <= max_samples)
    max_samples: int = 5000          # newest samples per model, pair and kind that count (the site drifts)
    fallback: FallbackThresholds = field(default_factory=FallbackThresholds)
    cross_modal: Literal["cohort", "none"] = "cohort"  # how rgb_ir is placed: cohort scores, or none (fallback)
    cohort_size: int = 16            # random other-modality tracks a new track is scored against
    min_cohort: int = 50             # cohort scores before the cohort threshold takes over from the fallback
    cohort_z: float = 3.0            # least robust sigmas above the cohort median (auto rgb_rgb/ir_ir may demand more)

    def __post_init__(self) -> None:
        if self.cross_modal not in ("cohort", "none"):
            raise ConfigError(f"matcher.calibration.cross_modal must be cohort or none, got {self.cross_modal!r}")
        for name in ("cohort_size", "min_cohort", "cohort_z"):
            _positive(f"matcher.calibration.{name}", getattr(self, name))
        if self.cross_modal == "cohort" and self.max_samples < self.min_cohort:
            raise ConfigError("matcher.calibration.max_samples must be >= min_cohort (or cross_modal: none)")
        if not 0.0 < self.target_fmr < 1.0:
            raise ConfigError(f"matcher.calibration.target_fmr must be in (0, 1), got {self.target_fmr}")
        for name in ("min_impostor", "min_genuine", "recompute_every", "max_samples"):
            _positive(f"matcher.calibration.{name}", getattr(self, name))
        if not -1.0 <= self.floor <= self.ceiling <= 1.0:
            raise ConfigError(f"matcher.calibration: need -1 <= floor ({self.floor}) <= ceiling ({self.ceiling}) <= 1")
        if self.max_samples < max(self.min_impostor, self.min_genuine):
            raise ConfigError("matcher.calibration.max_samples must be >= min_impostor and min_genuine")


@dataclass(frozen=True)
class TransitionCfg:
    """A person leaving ``from_camera`` appears on ``to_camera`` between ``min_s`` and ``max_s`` later."""

    from_camera: str
    to_camera: str
    min_s: float = 0.0
    max_s: float = 600.0

    def __post_init__(self) -> None:
        if self.min_s > self.max_s:
            raise ConfigError(f"matcher.transitions {self.from_camera}->{self.to_camera}: min_s > max_s")


@dataclass(frozen=True)
class MatcherCfg:
    """Linking tracks into identities (DESIGN.md §4 Matcher)."""

    thresholds: PairThresholds = field(default_factory=PairThresholds)  # manual; unset pairs: calibration
    calibration: CalibrationCfg = field(default_factory=CalibrationCfg)
    top_k: int = 20                  # gallery tracks compared with each new track
    merge_margin: float = 0.1        # two identities merge when one track beats both thresholds by this
    min_gap: float | None = None     # a join or merge must lead the next identity by this (None: genuine score spread)
    min_clips: int = 2               # clips a track gathers before it may join an identity (then at each clip)
    overlap_slack_s: float = 0.2     # same-camera tracks overlapping less than this are not simultaneous (box jitter)
    transitions: list[TransitionCfg] = field(default_factory=list)  # empty: no transition constraint
    transitions_strict: bool = False  # true: camera pairs without a window cannot be linked at all
    gallery: GalleryCfg = field(default_factory=GalleryCfg)
    max_batch: int = 64              # embeddings per store transaction
    idle_block_ms: int = 200

    def __post_init__(self) -> None:
        for name in ("top_k", "max_batch", "idle_block_ms", "min_clips"):
            _positive(f"matcher.{name}", getattr(self, name))
        if self.merge_margin < 0 or self.overlap_slack_s < 0 or (self.min_gap or 0.0) < 0:
            raise ConfigError("matcher.merge_margin, matcher.min_gap and matcher.overlap_slack_s must be >= 0")


@dataclass(frozen=True)
class XreidCfg:
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
    cameras: list[CameraCfg] = field(default_factory=list)
