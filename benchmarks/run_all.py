"""`make bench`: run every docs/design.md §6 benchmark once and write one report (markdown + JSON).

Each benchmark is its own script (its own table and ``bench-out/<name>.json``); this runner
invokes them with a CPU budget that keeps the whole report under ~20 minutes on 2 cores, reads
their JSON, and puts the headline figure of each next to its target with the machine it ran on.
Figures are ratios measured inside one run wherever the target is a ratio.

    .venv/bin/python benchmarks/run_all.py                  # everything
    .venv/bin/python benchmarks/run_all.py --only bus soak  # a subset
    .venv/bin/python benchmarks/run_all.py --report-only    # re-render from existing JSON
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "bench-out"

Figure = tuple[str, float | None, str, bool | None]  # (what, value, target text, met?)


def _load(name: str) -> dict:
    path = OUT / f"{name}.json"
    return json.loads(path.read_text()) if path.is_file() else {}


def _replay(d: dict) -> list[Figure]:
    ratio = d.get("ratio")
    share = d.get("in_run_detect_share")
    return [("replay fps / detector-only fps (HOG, vtest.avi)", ratio, ">= 0.9", None if ratio is None else ratio >= 0.9),
            ("detect+decode share of one replay's time (load-independent)", share, ">= 0.9",
             None if share is None else share >= 0.9)]


def _encoder(d: dict) -> list[Figure]:
    device = d.get("meta", {}).get("device", "cpu")
    target = 10.0 if str(device).startswith("cuda") else 3.0
    out = []
    for config in sorted({r["config"] for r in d.get("rows", [])}):
        rows = [r for r in d["rows"] if r["config"] == config and r["mode"].startswith("ReidEncoder")]
        fp32 = [r["speedup"] for r in rows if r["mode"] == "ReidEncoder"]
        best = max((r["speedup"] for r in rows), default=None)
        out.append((f"re-ID encoder seq/s vs per-clip fp32 loop, {config}, {device}, fp32 batching",
                    max(fp32, default=None), f">= {target:g}x", None if not fp32 else max(fp32) >= target))
        out.append((f"re-ID encoder seq/s vs per-clip fp32 loop, {config}, {device}, best mode", best,
                    f">= {target:g}x", None if best is None else best >= target))
    return out


def _default_vs_previous(d: dict) -> list[Figure]:
    best = {}
    for r in d.get("rows", []):
        if r["mode"].startswith("ReidEncoder"):
            best[r["config"]] = max(best.get(r["config"], 0.0), r["seq_per_s"])
    new, old = best.get("xreid-mnv2-synth"), best.get("xreid-tiny-synth")
    ratio = None if not new or not old else new / old
    return [("re-ID encoder seq/s, default xreid-mnv2-synth / previous xreid-tiny-synth (best mode each)", ratio,
             ">= 1", None if ratio is None else ratio >= 1)]


def _identity_vtest(d: dict) -> list[Figure]:
    rows = {r["row"]: r for r in d.get("rows", [])}
    r = rows.get("default")
    if r is None:
        return [("identity embeddings on vtest.avi (default model)", None, "Rank-1", None)]
    rgb, nir = r["same/rgb_rgb"]["rank1"], r["same/nir_rgb"]["rank1"]
    figs = [("default model RGB->RGB Rank-1 %, vtest.avi trajectories (other-RGB look)", rgb, ">= 90", rgb >= 90),
            ("default model NIR->RGB Rank-1 %, vtest.avi trajectories (night-NIR look)", nir, ">= 55", nir >= 55)]
    for key in ("halves/rgb_rgb", "halves/nir_rgb"):
        figs.append((f"default model {key} Rank-1 % (camera B from the other half of each trajectory)",
                     r[key]["rank1"], "-", None))
    return figs


def _matcher(d: dict) -> list[Figure]:
    rows = [r for r in d.get("rows", []) if r["kind"] in ("hnsw", "ivf") and r["recall_at_10"] >= 0.95]
    if not rows:
        return [("matcher query p99 at largest gallery, recall@10 >= 0.95", None, "< 5 ms", None)]
    n = max(r["n"] for r in rows)
    best = min((r for r in rows if r["n"] == n), key=lambda r: r["query_p99_ms"])
    exact = [r for r in d["rows"] if r["n"] == n and r["kind"] == "numpy"]
    figs = [(f"matcher query p99 ms at {n:,} tracks ({best['kind']} {best['params']}, recall@10 "
             f"{best['recall_at_10']:.3f})", best["query_p99_ms"], "< 5 ms", n >= 10**6 and best["query_p99_ms"] < 5)]
    if exact:
        figs.append((f"exact numpy scan p99 ms at {n:,} tracks (for comparison)", exact[0]["query_p99_ms"], "-", None))
    return figs


def _bus(d: dict) -> list[Figure]:
    ratio = d.get("ratio")
    return [("RedisBus clips/s / raw redis-py loop (64 KB clips)", ratio, ">= 0.8",
             None if ratio is None else ratio >= 0.8)]


def _soak(d: dict) -> list[Figure]:
    growth = d.get("max_growth_pct")
    lost = d.get("clips_lost")
    minutes = d.get("minutes")
    return [(f"worst worker RSS growth after warm-up, {minutes} min soak (%)", growth, "< 5",
             None if growth is None else growth < 5),
            (f"clips lost in the soak ({d.get('clips_published')} published)", lost, "0",
             None if lost is None else lost == 0)]


def _mot(d: dict) -> list[Figure]:
    rows = {r["config"]: r for r in d.get("rows", [])}
    r = rows.get("default")
    if r is None:
        return [("tracking on vtest.avi frames 1-400 (default)", None, "IDF1 >= 0.75", None)]
    per400 = r["num_switches"] * 400.0 / max(1, r["frames"])
    return [("IDF1, vtest.avi frames 1-400, offline default", r["idf1"], ">= 0.75", r["idf1"] >= 0.75),
            ("MOTA, vtest.avi frames 1-400, offline default", r["mota"], ">= 0.70", r["mota"] >= 0.70),
            ("ID switches per 400 frames", per400, "<= 10", per400 <= 10),
            ("end-to-end replay frames/s (CPU time basis: 2 cores)", r.get("e2e_fps_cpu_time"), ">= 10",
             None if r.get("e2e_fps_cpu_time") is None else r["e2e_fps_cpu_time"] >= 10),
            ("end-to-end replay frames/s (wall clock, machine shared)", r.get("e2e_fps"), ">= 10",
             None if r.get("e2e_fps") is None else r["e2e_fps"] >= 10)]


def _identity_chain(d: dict) -> list[Figure]:
    rows = {r["look"]: r for r in d.get("rows", [])}
    r = rows.get("rgb")
    if r is None:
        return [("cross-camera identity F1, two RGB cameras (vtest.avi + other-RGB look)", None,
                 ">= 0.80 at precision >= 0.90", None)]
    c = r["calibrated"]["cross_camera"]
    model = d.get("model_id", "?")
    figs: list[Figure] = [
        (f"cross-camera pairwise identity F1, two RGB cameras, {model}", c["f1"], ">= 0.80",
         c["f1"] >= 0.80 and c["precision"] >= 0.90),
        (f"cross-camera pairwise identity precision, two RGB cameras, {model}", c["precision"], ">= 0.90",
         c["precision"] >= 0.90),
        ("all-pairs identity F1, two RGB cameras", r["calibrated"]["all_pairs"]["f1"], "-", None)]
    for name, s in r.get("separability", {}).items():   # docs/matcher.md "What limits the chain"
        figs.append((f"evidence AUC (later clip vs own track, against simultaneous tracks), {name}",
                     s["evidence_auc"], "-", None))
    if "nir" in rows:
        figs.append(("cross-camera identity precision, RGB + night-NIR camera", rows["nir"]["calibrated"]
                     ["cross_camera"]["precision"], "-", None))
    return figs


def _crowd(d: dict) -> list[Figure]:
    figs: list[Figure] = []
    for per, what in ((False, "shipped config"), (True, "per_decision: true")):
        rows = [r for r in d.get("rows", []) if r.get("per_decision", False) == per]
        if not rows:
            continue
        worst = max(rows, key=lambda r: r["wrong_merges"])
        figs.append((f"synthetic crowd of {worst['people']}, nobody returns, {what}: people merged into someone "
                     f"else, worst of {len(rows)} runs (of {worst['people_after_calibration']} after calibration)",
                     worst["wrong_merges"], "0", worst["wrong_merges"] == 0))
    return figs or [("synthetic crowd: people merged into someone else (nobody returns)", None, "0", None)]


def _night(d: dict) -> list[Figure]:
    rows = d.get("rows", [])
    target = f"night NIR sigma {d.get('target_sigma', 8)} blur"

    def row(footage: str, name: str) -> dict | None:
        return next((r for r in rows if r["footage"] == footage and r["row"] == name), None)

    figs: list[Figure] = []
    for name, what in (("default", "ir camera defaults"), ("auto", "auto camera after dusk")):
        r = row(target, name)
        figs.append((f"IDF1, vtest frames 1-400 as {target}, {what}", None if r is None else r["idf1"], ">= 0.60",
                     None if r is None else r["idf1"] >= 0.60))
        figs.append((f"MOTA, vtest frames 1-400 as {target}, {what}", None if r is None else r["mota"], ">= 0.50",
                     None if r is None else r["mota"] >= 0.50))
    r = row(target, "default")
    fps = None if r is None else r.get("cpu_fps")
    figs.append(("night replay frames/s (CPU time basis: 2 cores)", fps, ">= 10", None if fps is None else fps >= 10))
    return figs


@dataclass(frozen=True)
class Bench:
    name: str
    argv: tuple[str, ...]
    extract: Callable[[dict], list[Figure]]
    timeout_s: int


BENCHES = (
    Bench("replay_fps", ("benchmarks/replay_fps.py", "--frames", "150", "--runs", "3"), _replay, 900),
    Bench("reid_encoder", ("benchmarks/reid_encoder.py",), lambda d: _encoder(d) + _default_vs_previous(d), 900),
    Bench("identity_vtest", ("benchmarks/identity_vtest.py",), _identity_vtest, 900),
    Bench("matcher", ("benchmarks/matcher.py", "--sizes", "1000", "100000", "1000000", "--kinds", "flat", "ivf"),
          _matcher, 1200),
    Bench("matcher_crowd", ("benchmarks/matcher_crowd.py",), _crowd, 300),
    Bench("bus", ("benchmarks/bus.py",), _bus, 600),
    Bench("mot_vtest", ("benchmarks/mot_vtest.py",), _mot, 1200),
    Bench("identity_chain", ("benchmarks/identity_chain.py",), _identity_chain, 1200),
    Bench("night_vtest", ("benchmarks/night_vtest.py", "--quick", "--only", "default", "auto", "--sigmas", "4", "8",
                          "12", "--no-daylight"), _night, 1200),
    Bench("soak", ("benchmarks/soak.py", "--minutes", "3", "--sample-s", "3"), _soak, 900),
)


def machine_info() -> dict[str, object]:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_gb = None
    try:
        mem_gb = round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)
    except (ValueError, OSError):
        pass
    gpu = None
    try:
        import torch

        if torch.cuda.is_available():
            gpu = torch.cuda.get_device_name(0)
    except ImportError:
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "memory_gb": mem_gb, "gpu": gpu, "python": platform.python_version(),
            "platform": platform.platform(), "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")}


def render(results: list[dict], machine: dict) -> str:
    lines = [f"# xreid benchmark report ({machine['date']})", "",
             f"Machine: {machine['cpu']}, {machine['cores']} cores, {machine['memory_gb']} GB, "
             f"GPU: {machine['gpu'] or 'none'}, Python {machine['python']}", "",
             "| benchmark | figure | value | target | met |", "|---|---|---|---|---|"]
    for res in results:
        for what, value, target, met in res["figures"]:
            shown = "n/a" if value is None else (f"{value:.3f}" if isinstance(value, float) else str(value))
            mark = {True: "yes", False: "**no**", None: "-"}[met]
            lines.append(f"| {res['name']} | {what} | {shown} | {target} | {mark} |")
    lines.append("")
    for res in results:
        if res.get("error"):
            lines.append(f"- {res['name']}: {res['error']}")
    return "\n".join(lines) + "\n"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", nargs="+", choices=[b.name for b in BENCHES], help="run just these")
    ap.add_argument("--report-only", action="store_true", help="do not run anything; report existing JSON")
    args = ap.parse_args()
    OUT.mkdir(exist_ok=True)
    chosen = [b for b in BENCHES if not args.only or b.name in args.only]
    results = []
    for bench in (BENCHES if args.report_only else chosen):
        res: dict[str, object] = {"name": bench.name}
        if not args.report_only:
            print(f"\n=== {bench.name}: {' '.join(bench.argv)}", flush=True)
            t0 = time.monotonic()
            try:
                proc = subprocess.run([sys.executable, *bench.argv], cwd=ROOT, timeout=bench.timeout_s)
                if proc.returncode != 0:
                    res["error"] = f"exited with {proc.returncode}"
            except subprocess.TimeoutExpired:
                res["error"] = f"timed out after {bench.timeout_s}s"
            res["seconds"] = round(time.monotonic() - t0, 1)
        res["figures"] = bench.extract(_load(bench.name))
        results.append(res)
    machine = machine_info()
    report = render(results, machine)
    (OUT / "report.md").write_text(report)
    (OUT / "report.json").write_text(json.dumps({"machine": machine, "results": results}, indent=2) + "\n")
    print("\n" + report)
    print(f"wrote {OUT / 'report.md'} and {OUT / 'report.json'}")
    return 1 if any(r.get("error") for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
