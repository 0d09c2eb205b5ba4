"""Does the matcher merge strangers in a crowd? Wrong merges per 100 people on a synthetic site.

The matcher places each threshold where ``target_fmr`` (1 %) of the site's impostor pairs reach it.
That is a rate per comparison; a new track is compared with every identity in the gallery, so the
chance that its best stranger passes grows with the crowd. This benchmark counts it.

The site: camera c1 sees ``--people`` different people, four at a time, each with two clips (the
site's free evidence: simultaneous tracks are impostor pairs, later clips genuine ones). Nobody
returns, so every join on c1 is a wrong merge. Looks are unit vectors in 64 dimensions: either
independent (``random``: strangers score about 0 ± 0.13) or drawn around one shared look
(``look-alike``: strangers score about 0.64 or 0.81, say a site where everyone wears the same
uniform); each clip is the person's look at cosine 0.95. Only the rule is measured here, not a model.
Each run is made twice: with the config as it is, and with ``calibration.per_decision: true``.

    .venv/bin/python benchmarks/matcher_crowd.py                 # ~10 s
    .venv/bin/python benchmarks/matcher_crowd.py --people 400 --seeds 0 1 2 3 4

Prints a table and writes ``bench-out/matcher_crowd.json``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pipeline.bus.messages import Embedding, make_clip_id  # noqa: E402
from pipeline.config.loader import load_config  # noqa: E402
from pipeline.config.settings import XreidCfg  # noqa: E402
from pipeline.matcher.matcher import Matcher  # noqa: E402

DIM = 64
CROWDS = {"random": None, "look-alike 0.64": 0.8, "look-alike 0.81": 0.9}   # name -> cosine of each look to the shared one


def _unit(v: np.ndarray) -> np.ndarray:
    return (v / np.linalg.norm(v)).astype(np.float32)


def _near(rng: np.random.Generator, base: np.ndarray, cos: float) -> np.ndarray:
    """A unit vector at cosine ``cos`` from unit ``base``."""
    noise = rng.normal(size=base.size)
    noise -= (noise @ base) * base
    return _unit(cos * base + np.sqrt(1 - cos ** 2) * noise / np.linalg.norm(noise))


def site(rng: np.random.Generator, people: int, spread: float | None) -> list[Embedding]:
    """Embeddings in arrival order: rounds of four people at once on c1, two 10-s clips each."""
    shared = _unit(rng.normal(size=DIM))
    looks = [_unit(rng.normal(size=DIM)) if spread is None else _near(rng, shared, spread) for _ in range(people)]
    out = []
    for r in range(people // 4):
        t0 = 1_700_000_000.0 + 30.0 * r
        for seg in (0, 1):
            for p in range(4 * r, 4 * r + 4):
                uid = f"p{p}"
                out.append(Embedding(make_clip_id("c1", uid, seg), "c1", "rgb", uid, seg, t0 + 10 * seg,
                                     t0 + 10 * seg + 10, _near(rng, looks[p], 0.95), "crowd@0"))
    return out


def run(crowd: str, people: int, seed: int, cfg: XreidCfg, per_decision: bool) -> dict[str, float | int | str]:
    embs = site(np.random.default_rng(seed), people, CROWDS[crowd])
    m = Matcher(dataclasses.replace(cfg.matcher, calibration=dataclasses.replace(cfg.matcher.calibration,
                                                                               per_decision=per_decision)))
    calibrated_at = None
    for i, e in enumerate(embs):
        m.observe(e)
        if calibrated_at is None and any(s.pair == "rgb_rgb" and s.source == "auto" for s in m.calibrator.state()):
            calibrated_at = i // 8 * 4 + 4   # people seen by then (a round is 8 clips)
    identities = {m.identity_of(key) for key in range(1, m.next_track)}
    [state] = [s for s in m.calibrator.state() if s.pair == "rgb_rgb"]
    wrong = people - len(identities)   # nobody returns: every person fewer is one wrong merge
    decided = people - (calibrated_at or people)
    return {"crowd": crowd, "seed": seed, "per_decision": per_decision, "people": people, "wrong_merges": wrong,
            "people_after_calibration": decided, "threshold": round(state.threshold, 3),
            "wrong_per_100_decisions": round(100 * wrong / decided, 1) if decided else None}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--people", type=int, default=96)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--config", default=str(ROOT / "configs" / "default.yaml"))
    ap.add_argument("--out", default="bench-out/matcher_crowd.json")
    args = ap.parse_args()
    if args.people < 8 or args.people % 4:
        print("error: --people must be a multiple of 4 and at least 8", file=sys.stderr)
        return 2
    cfg = load_config(XreidCfg, args.config)
    rows = [run(crowd, args.people, seed, cfg, per) for per in (cfg.matcher.calibration.per_decision, True)
            for crowd in CROWDS for seed in args.seeds]
    c = cfg.matcher.calibration
    print(f"matcher: target_fmr {c.target_fmr}, min_impostor {c.min_impostor}, min_gap {cfg.matcher.min_gap}, "
          f"min_clips {cfg.matcher.min_clips}; {args.people} people, nobody returns; the config's per_decision "
          f"({c.per_decision}), then per_decision: true\n")
    print("| per_decision | crowd | seed | rgb_rgb threshold | people after calibration | wrong merges | per 100 of them |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {str(r['per_decision']).lower()} | {r['crowd']} | {r['seed']} | {r['threshold']:.3f} | "
              f"{r['people_after_calibration']} | {r['wrong_merges']} | {r['wrong_per_100_decisions']} |")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"config": args.config, "rows": rows}, indent=2) + "\n", encoding="utf-8")
    print(f"\nwrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
