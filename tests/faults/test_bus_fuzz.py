"""Generated hostile bus entries (hypothesis) through the real decode + stage loop on a real Redis.

Each example publishes valid clips (or embeddings) and mutated copies of valid ones, shuffled,
to fresh streams, and drains the real ``ReidStage`` (or ``MatcherStage``). Whatever the mutations
(field deletions, type swaps, huge numbers, deep nesting, random bytes, truncated or replaced
frames, flipped bytes), the stage must not raise, every entry must end up either embedded/stored
or dead-lettered with a reason, and no valid neighbour may be lost. A mutated entry that was
embedded must really be a valid contract object (some mutations are harmless). Corpus sizes are
the ``max_examples`` below; docs/hardening.md records them with the results.
"""

from __future__ import annotations

import itertools
import json
import random

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from models.errors import ContractError
from pipeline.bus import create_bus
from pipeline.bus.messages import Clip, Embedding
from pipeline.config.settings import BusCfg, MatcherCfg, ReidCfg
from pipeline.matcher.matcher import Matcher
from pipeline.matcher.stage import MatcherStage
from pipeline.reid.stage import ReidStage
from pipeline.store.base import Store
from tests.support.hostile_payloads import reframe, split
from tests.support.matcher_helpers import emb, person
from tests.support.reid_helpers import CodeEncoder, make_clip

REID_EXAMPLES = 120
MATCHER_EXAMPLES = 80
CLIP_KEYS = ("clip_id", "camera_id", "modality", "track_uid", "segment", "t_start", "t_end", "n_seen", "blobs")
EMBEDDING_KEYS = ("clip_id", "camera_id", "modality", "track_uid", "segment", "t_start", "t_end", "model_id", "dim",
                  "blobs")
HUGE = ("1" + "0" * 400, "7" * 5000, "-1" + "0" * 400, "1e400", "-1e400", "1e308", str(2**64), str(-(2**63)),
        "123456789012345678901234567890.5", "NaN", "Infinity")

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3),
    max_leaves=6)

mutations = st.one_of(
    st.tuples(st.just("delete"), st.integers(0, 20)),
    st.tuples(st.just("swap"), st.integers(0, 20), json_values),
    st.tuples(st.just("huge"), st.integers(0, 20), st.sampled_from(HUGE)),
    st.tuples(st.just("deep"), st.integers(0, 20), st.sampled_from((900, 3000, 100_000))),
    st.tuples(st.just("random"), st.binary(max_size=600)),
    st.tuples(st.just("random_header"), st.binary(max_size=200)),
    st.tuples(st.just("truncate"), st.integers(0, 10**6)),
    st.tuples(st.just("flip"), st.integers(0, 10**6), st.integers(1, 255)),
    st.tuples(st.just("cut_blob"), st.integers(0, 20), st.integers(0, 400)),
    st.tuples(st.just("replace_blob"), st.integers(0, 20), st.binary(max_size=80)),
)


def mutate(payload: bytes, keys: tuple[str, ...], m: tuple) -> bytes:
    """Apply one generated mutation to a valid payload; framing stays valid unless the mutation is framing."""
    op = m[0]
    if op == "random":
        return m[1]
    if op == "truncate":
        return payload[: m[1] % len(payload)]
    if op == "flip":
        i = m[1] % len(payload)
        return payload[:i] + bytes([payload[i] ^ m[2]]) + payload[i + 1:]
    kind, header, body = split(payload)
    if op == "random_header":
        return reframe(kind, m[1], body)
    if op in ("cut_blob", "replace_blob"):
        sizes = header["blobs"]
        i = m[1] % len(sizes)
        start = sum(sizes[:i])
        blob = body[start:start + sizes[i]]
        new = blob[: m[2] % (len(blob) + 1)] if op == "cut_blob" else m[2]
        body = body[:start] + new + body[start + sizes[i]:]
        sizes[i] = len(new)
        return reframe(kind, json.dumps(header).encode(), body)
    key = keys[m[1] % len(keys)]
    if op == "delete":
        header.pop(key, None)
        return reframe(kind, json.dumps(header).encode(), body)
    if op == "swap":
        header[key] = m[2]
        return reframe(kind, json.dumps(header).encode(), body)
    raw = m[2] if op == "huge" else "[" * m[2] + "]" * m[2]
    header[key] = "\x00HOLE\x00"
    text = json.dumps(header).replace(json.dumps("\x00HOLE\x00"), raw)
    return reframe(kind, text.encode(), body)


_example = itertools.count()


def _check_outcome(bus, stream: str, valid: dict[str, str], mutated: dict[str, bytes], done_uids: list[str],
                   kind: type) -> None:
    """Every entry embedded/stored or dead-lettered with a reason; no valid neighbour lost."""
    dead = {d.source_id: d for d in bus.dead_letters(stream, count=1000)}
    assert not set(dead) & set(valid.values()), "a valid entry was dead-lettered"
    assert set(valid) <= set(done_uids), f"valid entries lost: {set(valid) - set(done_uids)}"
    for entry_id, payload in mutated.items():
        if entry_id in dead:
            assert dead[entry_id].reason.strip(), "dead-lettered without a reason"
            assert "\n" not in dead[entry_id].reason and len(dead[entry_id].reason) < 2000
        else:
            kind.from_bytes(payload)  # went through: must have been a harmless mutation
    assert len(done_uids) + len(dead) == len(valid) + len(mutated)


@settings(max_examples=REID_EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                             HealthCheck.too_slow], database=None, derandomize=True)
@given(muts=st.lists(mutations, min_size=1, max_size=6), n_valid=st.integers(1, 4), seed=st.integers(0, 2**16))
def test_generated_hostile_clips_never_stop_the_reid_stage_nor_cost_a_valid_clip(redis_server, muts, n_valid, seed):
    n = next(_example)
    clips, emb_stream = f"fz{n}:clips", f"fz{n}:emb"
    bus = create_bus(redis_server.url, BusCfg())
    try:
        stage = ReidStage(bus, CodeEncoder(), ReidCfg(max_batch=5, max_wait_ms=0), consumer="w1",
                          clips_stream=clips, embeddings_stream=emb_stream, group="reid")
        items = [("ok", make_clip("cam1", f"ok{i}", i % 12)) for i in range(n_valid)]
        items += [("bad", mutate(make_clip("cam1", f"m{j}", j % 12).to_bytes(), CLIP_KEYS, m)) for j, m in enumerate(muts)]
        random.Random(seed).shuffle(items)
        valid, mutated = {}, {}
        for what, item in items:
            if what == "ok":
                valid[item.track_uid] = bus.publish(clips, item.to_bytes())
            else:
                mutated[bus.publish(clips, item)] = item
        while stage.step(block_ms=0, wait_ms=0).consumed:
            pass
        bus.ensure_group(emb_stream, "probe")
        out = [Embedding.from_bytes(m.data) for m in bus.read(emb_stream, "probe", "p", 100, 0)]
        _check_outcome(bus, clips, valid, mutated, [e.track_uid for e in out], Clip)
        assert bus.pending(clips, "reid") == 0
    finally:
        bus.close()


@settings(max_examples=MATCHER_EXAMPLES, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow], database=None, derandomize=True)
@given(muts=st.lists(mutations, min_size=1, max_size=6), n_valid=st.integers(1, 4), seed=st.integers(0, 2**16))
def test_generated_hostile_embeddings_never_stop_the_matcher_nor_cost_a_valid_one(redis_server, tmp_path_factory,
                                                                                  muts, n_valid, seed):
    n = next(_example)
    stream = f"fz{n}:emb"
    bus = create_bus(redis_server.url, BusCfg())
    store = Store(tmp_path_factory.mktemp("fz") / "x.sqlite")
    try:
        stage = MatcherStage(bus, store, Matcher(MatcherCfg()), consumer="m1", stream=stream, group="matcher")
        items = [("ok", emb("cam1", f"ok{i}", person(i), 100 + 20 * i, 110 + 20 * i)) for i in range(n_valid)]
        items += [("bad", mutate(emb("cam2", f"m{j}", person(j % 16), 100, 110).to_bytes(), EMBEDDING_KEYS, m))
                  for j, m in enumerate(muts)]
        random.Random(seed).shuffle(items)
        valid, mutated = {}, {}
        for what, item in items:
            if what == "ok":
                valid[item.track_uid] = bus.publish(stream, item.to_bytes())
            else:
                mutated[bus.publish(stream, item)] = item
        while stage.step(block_ms=0).consumed:
            pass
        stored = [r[0] for r in store.execute("SELECT track_uid FROM tracks")]
        # a harmless mutation may repeat a track uid (folded in, not a new row): count entries, not rows
        accepted = stage.counters.acked
        dead = bus.dead_letters(stream, count=1000)
        assert accepted + len(dead) == len(valid) + len(mutated)
        assert set(valid) <= set(stored), f"valid embeddings lost: {set(valid) - set(stored)}"
        assert not {d.source_id for d in dead} & set(valid.values())
        for d in dead:
            assert d.reason.strip() and "\n" not in d.reason
        for entry_id, payload in mutated.items():
            if entry_id not in {d.source_id for d in dead}:
                Embedding.from_bytes(payload)
        assert bus.pending(stream, "matcher") == 0
    finally:
        store.close()
        bus.close()


def test_the_mutations_reach_the_defects_they_are_named_for():
    """A hand-picked instance of each mutation is rejected by the decoder (the generator is not toothless)."""
    good = make_clip("cam1", "x", 1).to_bytes()
    for m in [("delete", 0), ("swap", 4, "four"), ("huge", 5, "1" + "0" * 400), ("huge", 4, "7" * 5000),
              ("deep", 3, 100_000), ("random", b"\x00" * 10), ("random_header", b"\xff\xfe"), ("truncate", 100),
              ("replace_blob", 0, b"garbage")]:
        try:
            Clip.from_bytes(mutate(good, CLIP_KEYS, m))
        except ContractError:
            continue
        raise AssertionError(f"mutation {m[0]} left a valid clip")
