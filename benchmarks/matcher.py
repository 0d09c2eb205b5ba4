"""Matcher gallery benchmark: insert and query latency, build time and recall@10 vs exact search.

Embeddings are clustered the way re-ID galleries are, not i.i.d. random (on which no ANN index
recalls anything): appearance groups -> identities -> views (one per clip/camera/modality), with
a shared per-modality offset. Each row is one index kind at one gallery size:

* ``numpy``: exact brute force (``X @ q`` + argpartition), the reference for recall.
* ``flat``: ``Gallery`` with faiss ``IndexFlatIP`` (exact).
* ``hnsw``: ``Gallery`` with ``IndexHNSWFlat`` (M, efConstruction from the flags, efSearch swept).
* ``ivf``: ``Gallery`` with ``IndexIVFFlat`` (nlist ~ 2*sqrt(n), nprobe swept).

Builds run on ``--build-threads`` threads; queries and single inserts on one thread, one vector
at a time (the matcher's access pattern). Each query's wall time and CPU time are both recorded:
on a shared host the difference is time other processes held the core. Prints a table, writes
``bench-out/matcher.json``.

    .venv/bin/python benchmarks/matcher.py                 # 10^3 .. 10^6
    .venv/bin/python benchmarks/matcher.py --sizes 1000 10000 --quick
"""

from __future__ import annotations

import os

# one query, one core: numpy's BLAS threads would only fight the other jobs on a shared host
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

import argparse  # noqa: E402
import gc
import json
import math
import platform
import time
from pathlib import Path

import faiss
import numpy as np

from pipeline.config.settings import GalleryCfg
from pipeline.matcher.gallery import Gallery, l2_normalise

DIM = 512
VIEWS_PER_ID = 10
K = 10


def clustered(n: int, n_ids: int, rng: np.random.Generator, ids: np.ndarray | None = None,
              centres: tuple[np.ndarray, np.ndarray] | None = None) -> tuple[np.ndarray, np.ndarray, tuple]:
    """``n`` unit vectors: views of ``n_ids`` identities in ``n_ids // 100`` appearance groups.

    Cosine(view, identity) ~ 0.8; identities of one group share ~0.35 of their direction, so
    neighbours of a query are its own views first, then look-alikes of its group.
    """
    if centres is None:
        n_groups = max(1, n_ids // 100)
        groups = l2_normalise(rng.standard_normal((n_groups, DIM), dtype=np.float32))
        member = rng.integers(0, n_groups, n_ids)
        id_centres = np.empty((n_ids, DIM), dtype=np.float32)
        for s in range(0, n_ids, 65536):
            e = min(n_ids, s + 65536)
            id_centres[s:e] = l2_normalise(0.6 * groups[member[s:e]] + 0.8 * l2_normalise(rng.standard_normal((e - s, DIM), dtype=np.float32)))
        modality = l2_normalise(rng.standard_normal((2, DIM), dtype=np.float32))
        centres = (id_centres, modality)
    id_centres, modality = centres
    if ids is None:
        ids = np.arange(n) % n_ids
    out = np.empty((n, DIM), dtype=np.float32)
    for s in range(0, n, 65536):
        e = min(n, s + 65536)
        noise = l2_normalise(rng.standard_normal((e - s, DIM), dtype=np.float32)) * 0.7
        mod = modality[rng.integers(0, 2, e - s)] * 0.3
        out[s:e] = l2_normalise(id_centres[ids[s:e]] + noise + mod)
    return out, ids, centres


def exact_topk(x: np.ndarray, q: np.ndarray, k: int) -> np.ndarray:
    out = np.empty((len(q), k), dtype=np.int64)
    for s in range(0, len(q), 64):
        sims = q[s:s + 64] @ x.T
        part = np.argpartition(-sims, k, axis=1)[:, :k]
        order = np.take_along_axis(sims, part, axis=1).argsort(axis=1)[:, ::-1]
        out[s:s + 64] = np.take_along_axis(part, order, axis=1)
    return out


def pct(samples: list[float]) -> tuple[float, float]:
    a = np.asarray(samples) * 1000.0
    return float(np.percentile(a, 50)), float(np.percentile(a, 99))


def time_queries(fn, queries: np.ndarray) -> tuple[list[float], list[float], np.ndarray]:
    """Wall and CPU seconds of each query: on a shared host the gap is time other jobs held the core."""
    times, cpu, keys = [], [], []
    for q in queries:
        t, c = time.perf_counter(), time.thread_time()
        keys.append(fn(q))
        cpu.append(time.thread_time() - c)
        times.append(time.perf_counter() - t)
    return times, cpu, np.vstack(keys)


def recall(found: np.ndarray, truth: np.ndarray) -> float:
    return float(np.mean([len(set(f.tolist()) & set(t.tolist())) / K for f, t in zip(found, truth, strict=True)]))


def bench_size(n: int, args: argparse.Namespace, rows: list[dict]) -> None:
    rng = np.random.default_rng(n)
    n_ids = max(1, n // VIEWS_PER_ID)
    x, _, centres = clustered(n, n_ids, rng)
    n_q = args.queries
    queries, _, _ = clustered(n_q, n_ids, rng, ids=rng.integers(0, n_ids, n_q), centres=centres)
    fresh, _, _ = clustered(args.inserts, n_ids, rng, ids=rng.integers(0, n_ids, args.inserts), centres=centres)
    truth = exact_topk(x, queries, K)
    n_slow = n_q if n <= 100_000 else min(n_q, args.slow_queries)

    def emit(kind: str, params: str, build_s: float | None, q_times, q_cpu, found, ins_times=None) -> None:
        q50, q99 = pct(q_times)
        i50, i99 = pct(ins_times) if ins_times else (math.nan, math.nan)
        row = {"n": n, "kind": kind, "params": params, "build_s": build_s, "query_p50_ms": q50, "query_p99_ms": q99,
               "query_cpu_p50_ms": pct(q_cpu)[0], "query_cpu_p99_ms": pct(q_cpu)[1],
               "insert_p50_ms": i50, "insert_p99_ms": i99, "recall_at_10": recall(found, truth[:len(found)]),
               "queries": len(q_times)}
        rows.append(row)
        print(_fmt(row), flush=True)

    faiss.omp_set_num_threads(1)
    times, cpu, found = time_queries(lambda q: exact_topk(x, q[None], K)[0], queries[:n_slow])
    emit("numpy", "exact", None, times, cpu, found)

    for kind in args.kinds:
        if kind == "hnsw":
            sweeps = [("hnsw_ef_search", ef) for ef in args.ef_search]
            cfg = GalleryCfg(kind="hnsw", hnsw_m=args.hnsw_m, hnsw_ef_construction=args.ef_construction)
            label = f"M={args.hnsw_m} efC={args.ef_construction}"
        elif kind == "ivf":
            nlist = max(1, min(int(2 * math.sqrt(n)), n // 39))
            sweeps = [("ivf_nprobe", p) for p in args.nprobe]
            cfg = GalleryCfg(kind="ivf", ivf_nlist=nlist)
            label = f"nlist={nlist}"
        else:
            sweeps, cfg, label = [(None, None)], GalleryCfg(kind="flat"), "IndexFlatIP"
        faiss.omp_set_num_threads(args.build_threads)
        gallery = Gallery(DIM, cfg)
        t = time.perf_counter()
        gallery.upsert(np.arange(n, dtype=np.int64), x)
        build_s = time.perf_counter() - t
        faiss.omp_set_num_threads(1)
        base = gallery._index.index  # noqa: SLF001 - the benchmark sweeps the index's own knob
        n_queries = n_slow if kind == "flat" else n_q
        for knob, value in sweeps:
            if knob == "hnsw_ef_search":
                faiss.downcast_index(base).hnsw.efSearch = value
            elif knob == "ivf_nprobe":
                faiss.downcast_index(base).nprobe = value
            times, cpu, found = time_queries(lambda q, g=gallery: g.search(q, K)[1][0], queries[:n_queries])
            params = label + (f" {knob.split('_', 1)[1]}={value}" if knob else "")
            emit(kind, params, build_s, times, cpu, found)
        ins = []
        for i, v in enumerate(fresh):
            t = time.perf_counter()
            gallery.upsert([n + i], v)
            ins.append(time.perf_counter() - t)
        rows[-1]["insert_p50_ms"], rows[-1]["insert_p99_ms"] = pct(ins)
        print(f"{'':>9} {'':<6} insert p50/p99 {rows[-1]['insert_p50_ms']:.3f}/{rows[-1]['insert_p99_ms']:.3f} ms",
              flush=True)
        del gallery, base
        gc.collect()


HEADER = (f"{'n':>9} {'kind':<6} {'params':<28} {'build s':>8} {'q p50 ms':>9} {'q p99 ms':>9} {'cpu p99':>8} "
          f"{'ins p50':>8} {'ins p99':>8} {'R@10':>6}")


def _fmt(r: dict) -> str:
    b = f"{r['build_s']:.1f}" if r["build_s"] is not None else "-"
    return (f"{r['n']:>9} {r['kind']:<6} {r['params']:<28} {b:>8} {r['query_p50_ms']:>9.3f} {r['query_p99_ms']:>9.3f} "
            f"{r['query_cpu_p99_ms']:>8.3f} {r['insert_p50_ms']:>8.3f} {r['insert_p99_ms']:>8.3f} "
            f"{r['recall_at_10']:>6.3f}")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", type=int, nargs="+", default=[1_000, 10_000, 100_000, 1_000_000])
    p.add_argument("--kinds", nargs="+", default=["flat", "hnsw", "ivf"], choices=["flat", "hnsw", "ivf"])
    p.add_argument("--queries", type=int, default=300)
    p.add_argument("--slow-queries", type=int, default=50, help="queries for exact scans past 10^5")
    p.add_argument("--inserts", type=int, default=200)
    p.add_argument("--hnsw-m", type=int, default=16)
    p.add_argument("--ef-construction", type=int, default=40)
    p.add_argument("--ef-search", type=int, nargs="+", default=[32, 64, 128])
    p.add_argument("--nprobe", type=int, nargs="+", default=[8, 16, 32])
    p.add_argument("--build-threads", type=int, default=2)
    p.add_argument("--out", default="bench-out/matcher.json")
    args = p.parse_args()
    rows: list[dict] = []
    print(HEADER, flush=True)
    for n in args.sizes:
        bench_size(n, args, rows)
    print("\nsummary (insert latency is measured once per index, after its query sweep)")
    print(HEADER)
    for r in rows:
        print(_fmt(r))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    meta = {"dim": DIM, "k": K, "views_per_identity": VIEWS_PER_ID, "build_threads": args.build_threads,
            "query_threads": 1, "faiss": faiss.__version__, "machine": platform.processor() or platform.machine(),
            "cpus": os.cpu_count(), "loadavg_at_end": os.getloadavg(), "hnsw_m": args.hnsw_m,
            "hnsw_ef_construction": args.ef_construction}
    out.write_text(json.dumps({"meta": meta, "rows": rows}, indent=2))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
