"""``/search`` under large uploads: how long ``/health`` waits while images decode, and the server's
peak memory, for one or several concurrent uploads (issue 19 item 2).

Starts ``xreid serve`` (the code on ``PYTHONPATH``; point it at an older tree to compare) over an
empty store, sends ``--concurrent`` uploads of ``--images`` compressible PNGs of ``--side``² pixels
each, polls ``/health`` every 50 ms meanwhile, and reports the answers' statuses, the slowest
``/health`` and the server's peak RSS (``VmHWM``). Prints a table and writes JSON.

    .venv/bin/python benchmarks/api_upload_load.py --images 2 --side 6300 --concurrent 2
"""

from __future__ import annotations

import argparse
import io
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import numpy as np
from PIL import Image


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def png(side: int, seed: int) -> bytes:
    """A person-ish image that compresses well (stripes), so it passes the byte limit at any size."""
    rgb = np.zeros((side, side, 3), np.uint8)
    rgb[:, :, seed % 3] = (np.arange(side) // 64 % 2 * 200).astype(np.uint8)[:, None]
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="PNG", compress_level=9)
    return buf.getvalue()


def vm_hwm_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=2, help="images per upload")
    ap.add_argument("--side", type=int, default=6300, help="pixels per side of each image")
    ap.add_argument("--concurrent", type=int, default=1, help="uploads sent at once")
    ap.add_argument("--label", default="", help="a name for this run in the output (e.g. the commit)")
    ap.add_argument("--out", default="bench-out/api_upload_load.json")
    args = ap.parse_args()
    blobs = [png(args.side, i) for i in range(args.images)]
    tmp = Path(tempfile.mkdtemp(prefix="xreid-upload-"))
    store = tmp / "xreid.sqlite"
    subprocess.run([sys.executable, "-c", f"from pipeline.store.base import Store; Store({str(store)!r}).close()"],
                   check=True)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("XREID_API")}
    proc = subprocess.Popen([sys.executable, "-m", "workers.cli", "serve", "--store", str(store), "--port", str(port)],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        rss_idle = vm_hwm_mb(proc.pid)
        statuses: list[int] = []
        files = [("images", (f"{i}.png", b, "image/png")) for i, b in enumerate(blobs)]

        def upload() -> None:
            statuses.append(httpx.post(f"{url}/search", files=files, timeout=600).status_code)

        workers = [threading.Thread(target=upload) for _ in range(args.concurrent)]
        t0 = time.monotonic()
        for w in workers:
            w.start()
        health_ms = []
        while any(w.is_alive() for w in workers):
            t = time.perf_counter()
            httpx.get(f"{url}/health", timeout=600)
            health_ms.append(1000 * (time.perf_counter() - t))
            time.sleep(0.05)
        wall = time.monotonic() - t0
        result = {"label": args.label, "images": args.images, "side": args.side, "concurrent": args.concurrent,
                  "upload_bytes": sum(map(len, blobs)), "statuses": sorted(statuses), "wall_s": round(wall, 2),
                  "health_polls": len(health_ms), "health_max_ms": round(max(health_ms or [0]), 1),
                  "health_median_ms": round(float(np.median(health_ms)) if health_ms else 0, 1),
                  "rss_idle_mb": round(rss_idle), "rss_peak_mb": round(vm_hwm_mb(proc.pid)),
                  "load_avg_1m": os.getloadavg()[0]}
    finally:
        proc.terminate()
        proc.wait(timeout=20)
    print(f"{'label':<10}{'imgs':>5}{'side':>6}{'conc':>5}  {'statuses':<16}{'wall s':>7}{'health max ms':>14}"
          f"{'median':>8}{'RSS idle MB':>12}{'peak MB':>9}")
    r = result
    print(f"{r['label']:<10}{r['images']:>5}{r['side']:>6}{r['concurrent']:>5}  {str(r['statuses']):<16}"
          f"{r['wall_s']:>7}{r['health_max_ms']:>14}{r['health_median_ms']:>8}{r['rss_idle_mb']:>12}{r['rss_peak_mb']:>9}")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    with open(args.out, "a", encoding="utf-8") as f:
        f.write(json.dumps(result) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
