"""A faiss gallery of track embeddings keyed by track number, with in-place updates.

A track's embedding changes as its clips arrive (running mean), so the gallery must replace
vectors. Only the flat index can delete cheaply, and even there a delete is an O(n) memmove, so
every kind uses the same scheme: each ``upsert`` adds the vector under a fresh *slot* (the id
faiss sees, through ``IndexIDMap2``), the slot it replaces becomes a tombstone, searches
over-fetch and drop tombstones, and ``compact`` rebuilds once tombstones pile up.

Kinds:
    ``flat``: exact inner product (``IndexFlatIP``); right up to ~10^5 tracks.
    ``hnsw``: ``IndexHNSWFlat`` over inner product; sub-millisecond queries at 10^6, approximate.
    ``ivf``:  ``IndexIVFFlat``; cheapest to build at 10^6, needs training vectors (taken from the
              first ``add``), approximate.

Vectors must be L2-normalised float32, so inner product is cosine similarity.
"""

from __future__ import annotations

import logging
import math

import faiss
import numpy as np

from models.errors import ContractError
from pipeline.config.settings import GalleryCfg

log = logging.getLogger(__name__)

_PARALLEL_QUERIES = 16  # batches at least this large are searched on every OpenMP thread


def l2_normalise(v: np.ndarray) -> np.ndarray:
    """Unit-length float32 copy of ``v`` along its last axis, ready for ``Gallery``; zero rows stay zero.

    Args:
        v: (D,) one vector or (N, D) rows, any float dtype (normalised in it, then cast).
    """
    v = np.asarray(v)
    # one vector: the dot-product norm; the per-row norm can round differently in the last bit
    norms = np.linalg.norm(v, axis=-1, keepdims=True) if v.ndim > 1 else np.linalg.norm(v)
    nonzero = norms > 0
    return np.where(nonzero, v / np.where(nonzero, norms, 1), v).astype(np.float32)

class Gallery:
    """Track embeddings of one model, searchable by inner product.

    Args:
        dim: embedding dimension D.
        cfg: index kind and parameters.
    """

    def __init__(self, dim: int, cfg: GalleryCfg | None = None) -> None:
        if dim <= 0:
            raise ContractError(f"gallery dim must be > 0, got {dim}")
        self.dim = dim
        self.cfg = cfg or GalleryCfg()
        self._index: faiss.IndexIDMap2 | None = None
        self._slot_key = np.empty(0, dtype=np.int64)   # slot -> key, -1 for a tombstone
        self._key_slot: dict[int, int] = {}
        self._next_slot = 0
        self._dead = 0
        self._trained_on = 0

    # ------------------------------------------------------------------ state

    def __len__(self) -> int:
        return len(self._key_slot)

    def __contains__(self, key: int) -> bool:
        return int(key) in self._key_slot

    @property
    def tombstones(self) -> int:
        return self._dead

    def keys(self) -> np.ndarray:
        return np.fromiter(self._key_slot.keys(), dtype=np.int64, count=len(self._key_slot))

    def vector(self, key: int) -> np.ndarray:
        """The stored vector of ``key`` (a copy); raises ``KeyError`` when absent."""
        slot = self._key_slot[int(key)]
        assert self._index is not None
        return self._index.reconstruct(slot)

    # ------------------------------------------------------------------ writes

    def upsert(self, keys: np.ndarray | list[int], vectors: np.ndarray) -> None:
        """Add vectors under ``keys``, replacing any vector already stored for a key.

        Args:
            keys: (N,) int64 track numbers, distinct.
            vectors: (N, D) float32, L2-normalised.
        """
        keys = np.asarray(keys, dtype=np.int64).reshape(-1)
        vectors = self._check(vectors)
        if len(keys) != len(vectors):
            raise ContractError(f"{len(keys)} keys for {len(vectors)} vectors")
        if len(np.unique(keys)) != len(keys):
            raise ContractError("upsert keys must be distinct")
        if len(keys) == 0:
            return
        if self._index is None:
            self._index = self._build(vectors)
            self._trained_on = len(vectors)
        for key in keys.tolist():
            self._kill(key)
        slots = np.arange(self._next_slot, self._next_slot + len(keys), dtype=np.int64)
        self._next_slot += len(keys)
        self._grow(self._next_slot)
        self._slot_key[slots] = keys
        self._key_slot.update(zip(keys.tolist(), slots.tolist(), strict=True))
        self._index.add_with_ids(vectors, slots)
        if self._dead > max(1024, self.cfg.compact_ratio * len(self._key_slot)):
            self.compact()
        elif self.cfg.kind == "ivf" and len(self._key_slot) >= max(1024, 8 * self._trained_on):
            self.rebuild()  # the IVF cells were trained on far fewer vectors: retrain on all of them

    def remove(self, keys: np.ndarray | list[int]) -> int:
        """Forget ``keys``; returns how many were present."""
        return sum(self._kill(int(k)) for k in np.asarray(keys, dtype=np.int64).reshape(-1).tolist())

    def compact(self) -> None:
        """Rebuild the index from live vectors only, dropping every tombstone."""
        if self._index is None or self._dead == 0:
            return
        self.rebuild()

    def rebuild(self) -> None:
        """Build a fresh index from the live vectors (drops tombstones, retrains IVF cells)."""
        if self._index is None:
            return
        keys = self.keys()
        slots = np.array([self._key_slot[k] for k in keys.tolist()], dtype=np.int64)
        vectors = np.vstack([self._index.reconstruct(int(s)) for s in slots]) if len(slots) else None
        log.info("compacting %s gallery: %d live, %d tombstones", self.cfg.kind, len(keys), self._dead)
        self._index, self._slot_key, self._key_slot, self._next_slot, self._dead = None, self._slot_key[:0], {}, 0, 0
        if vectors is not None:
            self.upsert(keys, vectors)

    # ------------------------------------------------------------------ reads

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Top-``k`` live tracks per query by inner product.

        Args:
            queries: (Q, D) float32 L2-normalised, or (D,).
            k: neighbours wanted.

        Returns:
            scores (Q, k) float32 and keys (Q, k) int64, best first; missing entries are
            score ``-inf`` and key ``-1``.
        """
        queries = self._check(queries)
        q = len(queries)
        scores = np.full((q, k), -np.inf, dtype=np.float32)
        keys = np.full((q, k), -1, dtype=np.int64)
        if self._index is None or not self._key_slot or k <= 0:
            return scores, keys
        total = self._index.ntotal
        fetch = min(total, k + min(self._dead, k))
        while True:
            raw_scores, raw_slots = self._search(queries, fetch)
            raw_keys = np.where(raw_slots >= 0, self._slot_key[np.maximum(raw_slots, 0)], -1)
            live = raw_keys >= 0
            hit_dead = ((raw_slots >= 0) & ~live).any(axis=1)
            # tombstones crowded a row out of its k live answers: fetch deeper (an approximate index
            # returning fewer than k on its own is not helped by asking for more)
            short = hit_dead & (live.sum(axis=1) < min(k, len(self._key_slot)))
            if not short.any() or fetch >= min(total, k + self._dead):
                break
            fetch = min(total, k + self._dead, fetch * 2)
        for i in range(q):
            row = np.flatnonzero(live[i])[:k]
            scores[i, :len(row)] = raw_scores[i, row]
            keys[i, :len(row)] = raw_keys[i, row]
        return scores, keys

    # ------------------------------------------------------------------ internals

    def _search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        assert self._index is not None
        if len(queries) >= _PARALLEL_QUERIES:
            return self._index.search(queries, k)
        # the matcher asks one query at a time: OpenMP fan-out costs more than it saves there
        # (6 ms against 0.15 ms per search measured on a busy 2-core host), so run it on one thread
        threads = faiss.omp_get_max_threads()
        faiss.omp_set_num_threads(1)
        try:
            return self._index.search(queries, k)
        finally:
            faiss.omp_set_num_threads(threads)

    def _check(self, vectors: np.ndarray) -> np.ndarray:
        v = np.asarray(vectors)
        if v.ndim == 1:
            v = v[None, :]
        if v.ndim != 2 or v.shape[1] != self.dim:
            raise ContractError(f"gallery vectors must be (N, {self.dim}), got {v.shape}")
        return np.ascontiguousarray(v, dtype=np.float32)

    def _kill(self, key: int) -> bool:
        slot = self._key_slot.pop(key, None)
        if slot is None:
            return False
        self._slot_key[slot] = -1
        self._dead += 1
        return True

    def _grow(self, size: int) -> None:
        if size > len(self._slot_key):
            grown = np.full(max(size, 2 * len(self._slot_key), 1024), -1, dtype=np.int64)
            grown[:len(self._slot_key)] = self._slot_key
            self._slot_key = grown

    def _build(self, first: np.ndarray) -> faiss.IndexIDMap2:
        cfg = self.cfg
        if cfg.kind == "flat":
            base = faiss.IndexFlatIP(self.dim)
        elif cfg.kind == "hnsw":
            base = faiss.IndexHNSWFlat(self.dim, cfg.hnsw_m, faiss.METRIC_INNER_PRODUCT)
            base.hnsw.efConstruction = cfg.hnsw_ef_construction
            base.hnsw.efSearch = cfg.hnsw_ef_search
        else:
            nlist = cfg.ivf_nlist or max(1, int(4 * math.sqrt(len(first))))
            nlist = max(1, min(nlist, len(first) // 39))
            quantizer = faiss.IndexFlatIP(self.dim)
            base = faiss.IndexIVFFlat(quantizer, self.dim, nlist, faiss.METRIC_INNER_PRODUCT)
            base.train(first[np.random.default_rng(0).permutation(len(first))[:nlist * 64]])
            base.nprobe = min(cfg.ivf_nprobe, nlist)
            base.make_direct_map()  # lets compact() reconstruct vectors
            self._quantizer = quantizer  # the IVF index does not own it: keep it alive
        return faiss.IndexIDMap2(base)
