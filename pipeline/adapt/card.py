"""The adapted model's card: where it came from, what it saw, how the loss went (JSON + a loss-curve PNG).

Both files sit beside the checkpoint (``model.pt`` -> ``model.card.json``, ``model.loss.png``) and are
written atomically; the card's dict also travels inside the checkpoint (``extra["adapt"]``), so a
checkpoint copied alone still says what it is.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np


def card_paths(checkpoint: str | Path) -> tuple[Path, Path]:
    """``(card JSON, loss PNG)`` paths of ``checkpoint``."""
    p = Path(checkpoint)
    return p.with_name(p.stem + ".card.json"), p.with_name(p.stem + ".loss.png")


def smooth(values: list[float], window: int = 20) -> np.ndarray:
    """Running mean over ``window`` steps (shorter at the start)."""
    v = np.asarray(values, np.float64)
    if v.size == 0:
        return v
    c = np.cumsum(np.insert(v, 0, 0.0))
    idx = np.arange(1, v.size + 1)
    lo = np.maximum(idx - window, 0)
    return (c[idx] - c[lo]) / (idx - lo)


def write_loss_png(losses: list[float], path: Path, title: str) -> None:
    """Loss per step and its running mean (matplotlib, Agg backend)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.2), dpi=100)
    steps = np.arange(1, len(losses) + 1)
    ax.plot(steps, losses, lw=0.6, alpha=0.4, label="step")
    ax.plot(steps, smooth(losses), lw=1.6, label="running mean (20)")
    ax.set_xlabel("step")
    ax.set_ylabel("SupCon loss")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp.png")
    fig.savefig(tmp)
    plt.close(fig)
    os.replace(tmp, path)


def write_card(card: dict[str, Any], path: Path) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(card, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, path)
