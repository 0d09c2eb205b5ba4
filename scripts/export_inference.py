"""Write the inference-only part of a training checkpoint (``models.xreid.checkpoint.inference_copy``).

    .venv/bin/python scripts/export_inference.py xreid-out/mnv2-synth/model.pt models/weights/xreid-mnv2-synth.pt
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from models.xreid.checkpoint import file_sha256, inference_copy, load_checkpoint, read_checkpoint, save_checkpoint  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("src", help="training checkpoint (xreid train's model.pt)")
    ap.add_argument("dst", help="inference checkpoint to write")
    args = ap.parse_args()
    extra = dict(read_checkpoint(args.src)["extra"], exported_from=load_checkpoint(args.src).model_id)
    model_id = save_checkpoint(inference_copy(load_checkpoint(args.src)), args.dst, extra=extra)
    size = Path(args.dst).stat().st_size
    print(f"{args.dst}: model_id {model_id}, {size / 1e6:.1f} MB, sha256 {file_sha256(args.dst)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
