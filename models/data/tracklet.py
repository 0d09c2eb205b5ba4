"""The reader contract: a tracklet (frame paths + identity, camera, modality) and a split dataset."""

from __future__ import annotations

from dataclasses import dataclass

from models.errors import ContractError

RGB, IR = 0, 1
MODALITY_NAMES = ("rgb", "ir")


@dataclass(frozen=True, slots=True)
class Tracklet:
    """One sequence of person crops from one camera in one modality.

    Attributes:
        frames: image paths in time order.
        pid: identity label (relabelled 0..N-1 in training splits, the dataset's own id in test splits).
        camid: camera index, 0-based.
        modality: ``RGB`` (0) or ``IR`` (1), the model's modality convention.
    """

    frames: tuple[str, ...]
    pid: int
    camid: int
    modality: int

    def __post_init__(self) -> None:
        if not self.frames:
            raise ContractError(f"Tracklet of pid {self.pid} camera {self.camid} has no frames")
        if self.modality not in (RGB, IR):
            raise ContractError(f"Tracklet.modality must be 0 (rgb) or 1 (ir), got {self.modality}")
        if self.camid < 0:
            raise ContractError(f"Tracklet.camid must be >= 0, got {self.camid}")

@dataclass(frozen=True)
class VVIDataset:
    """A benchmark split: training tracklets and the two test protocols.

    ``ir_query``/``rgb_gallery`` serve infrared→visible; ``rgb_query``/``ir_gallery`` serve
    visible→infrared. On HITSZ-VCM the second pair is the first with roles swapped; on
    BUPTCampus they are separate lists, as in the reference readers. The readers keep the
    benchmarks' split files verbatim, so a split is not re-filtered by modality here.
    """

    name: str
    train: tuple[Tracklet, ...]
    ir_query: tuple[Tracklet, ...]
    rgb_gallery: tuple[Tracklet, ...]
    rgb_query: tuple[Tracklet, ...]
    ir_gallery: tuple[Tracklet, ...]
    num_train_pids: int
    num_cameras: int

    def __post_init__(self) -> None:
        pids = {t.pid for t in self.train}
        if pids and pids != set(range(self.num_train_pids)):
            raise ContractError(f"{self.name}: training pids must be 0..{self.num_train_pids - 1}")
        cams = [t.camid for split in (self.train, self.ir_query, self.rgb_gallery) for t in split]
        if cams and max(cams) >= self.num_cameras:
            raise ContractError(f"{self.name}: camera {max(cams)} >= num_cameras {self.num_cameras}")

    def train_by_modality(self, modality: int) -> tuple[Tracklet, ...]:
        return tuple(t for t in self.train if t.modality == modality)

    def summary(self) -> str:
        rows = [("train rgb", self.train_by_modality(RGB)), ("train ir", self.train_by_modality(IR)),
                ("query ir", self.ir_query), ("gallery rgb", self.rgb_gallery),
                ("query rgb", self.rgb_query), ("gallery ir", self.ir_gallery)]
        lines = [f"{self.name}: {self.num_train_pids} training identities, {self.num_cameras} cameras",
                 f"{'subset':<12}{'ids':>6}{'tracklets':>11}{'frames':>9}"]
        for name, ts in rows:
            lines.append(f"{name:<12}{len({t.pid for t in ts}):>6}{len(ts):>11}{sum(len(t.frames) for t in ts):>9}")
        return "\n".join(lines)
