"""The shared retry policy: growth, cap, jitter bounds, seeded determinism, and a stop event that ends a wait."""

from __future__ import annotations

import random
import threading
import time

import pytest

from pipeline.runtime.backoff import Backoff


def test_delay_doubles_then_caps_and_jitter_stays_within_half():
    policy = Backoff(0.5, 8.0)
    rng = random.Random(1)
    bases = [0.5, 1, 2, 4, 8, 8, 8, 8]
    assert [policy.capped_s(a) for a in range(1, 9)] == bases
    delays = [policy.delay_s(a, rng) for a in range(1, 9)]
    assert all(0.5 * b <= d <= 1.5 * b for d, b in zip(delays, bases, strict=True))
    assert len({round(d, 6) for d in delays[4:]}) == 4, "capped delays still differ: jitter"


@pytest.mark.parametrize("spread", [(0.8, 1.2), (0.5, 1.0)])
def test_jitter_bounds_hold_over_many_draws_and_use_most_of_the_range(spread):
    low, high = spread
    policy = Backoff(1.0, 1.0, spread=spread)
    rng = random.Random(7)
    draws = [policy.delay_s(3, rng) for _ in range(2000)]
    assert min(draws) >= low and max(draws) <= high
    assert min(draws) < low + 0.02 and max(draws) > high - 0.02, "jitter covers the whole band"


def test_a_spread_below_one_keeps_the_cap_a_hard_bound():
    policy = Backoff(0.05, 0.3, spread=(0.5, 1.0))
    rng = random.Random(3)
    assert max(policy.delay_s(a, rng) for a in range(1, 50) for _ in range(20)) <= 0.3


def test_no_jitter_gives_the_exact_schedule():
    policy = Backoff(0.1, 1.0, factor=3.0, spread=(1.0, 1.0))
    assert [policy.delay_s(a) for a in (1, 2, 3, 4)] == pytest.approx([0.1, 0.3, 0.9, 1.0])


def test_cap_holds_for_a_very_long_outage():
    policy = Backoff(0.1, 5.0)
    assert policy.capped_s(100_000) == 5.0  # 2**99999 overflows a float: still the cap, no exception
    assert policy.delay_s(100_000, random.Random(0)) <= 5.0 * 1.5


def test_max_below_initial_caps_the_first_delay_too():
    assert Backoff(2.0, 0.5, spread=(1.0, 1.0)).delay_s(1) == 0.5


def test_seeded_rng_makes_the_schedule_reproducible():
    policy = Backoff(0.05, 2.0)
    first = [policy.delay_s(a, random.Random(42)) for a in range(1, 10)]
    again = [policy.delay_s(a, random.Random(42)) for a in range(1, 10)]
    other = [policy.delay_s(a, random.Random(43)) for a in range(1, 10)]
    assert first == again and first != other


@pytest.mark.parametrize("kwargs, key", [
    (dict(initial_s=0.0, max_s=1.0), "initial_s"), (dict(initial_s=0.1, max_s=0.0), "max_s"),
    (dict(initial_s=0.1, max_s=1.0, factor=0.5), "factor"),
    (dict(initial_s=0.1, max_s=1.0, spread=(1.2, 0.8)), "spread"), (dict(initial_s=0.1, max_s=1.0, spread=(-0.1, 1.0)), "spread")])
def test_out_of_range_parameters_are_refused_naming_the_key(kwargs, key):
    with pytest.raises(ValueError, match=key):
        Backoff(**kwargs)


def test_wait_sleeps_the_delay_when_not_stopped():
    stop = threading.Event()
    t0 = time.monotonic()
    assert Backoff(0.2, 0.2, spread=(1.0, 1.0)).wait(1, stop) is False
    assert time.monotonic() - t0 >= 0.19


def test_stop_event_interrupts_a_long_wait_promptly():
    stop = threading.Event()
    result: list[bool] = []
    waiter = threading.Thread(target=lambda: result.append(Backoff(30.0, 30.0).wait(1, stop)))
    waiter.start()
    time.sleep(0.1)  # let it enter the wait; the assertion below does not depend on this
    stop.set()
    waiter.join(timeout=5.0)
    assert not waiter.is_alive() and result == [True], "a 15-45 s wait ended once stop was set"


def test_wait_returns_at_once_when_already_stopped():
    stop = threading.Event()
    stop.set()
    t0 = time.monotonic()
    assert Backoff(30.0, 30.0).wait(1, stop) is True
    assert time.monotonic() - t0 < 5.0, "a 15-45 s wait was not waited out"
