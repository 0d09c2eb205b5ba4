"""CMC curve figure (PNG) for an evaluation report."""

from __future__ import annotations

from pathlib import Path

from models.eval.metrics import RetrievalResult


def save_cmc_png(result: RetrievalResult, path: str | Path, title: str = "CMC") -> Path:
    """Draw both directions' CMC curves into ``path`` (matplotlib, headless backend)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.6), dpi=100)
    for d in result.directions():
        ranks = range(1, d.cmc.shape[0] + 1)
        ax.plot(list(ranks), [100 * float(v) for v in d.cmc],
                label=f"{d.name}  R1 {100 * d.rank(1):.1f}  mAP {100 * d.mAP:.1f}")
    ax.set_xlabel("rank")
    ax.set_ylabel("matching rate (%)")
    ax.set_ylim(0, 100.5)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out)
    plt.close(fig)
    return out
